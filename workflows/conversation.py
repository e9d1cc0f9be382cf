"""ConversationWorkflow: one per (account, chat, topic). Buffers messages, waits for the
lull, then persists the burst, asks the LLM once and sends the reply, in that order.

The loop follows the updatable-timer sample (``workflows/timers.py``); which burst a
message joins and when a burst is due are pure functions (``workflows/policy.py``).
Behaviour changes are gated by release (``workflows/versions.py``).
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from workflows import buffer, steps
    from workflows.answering import SUPERSEDED, BurstToAnswer, answer_burst
    from workflows.config_check import checked_config
    from workflows.failures import tells_user
    from workflows.ids import burst_key
    from workflows.inbox import ConversationInbox
    from workflows.mid_reply import SUPERSEDE, Flight, rejoined
    from workflows.payloads import BufferedMessage, CarriedState, ConversationInput, SupersededBurst
    from workflows.phase import PhaseBoard
    from workflows.policy import REASON_CLEARED, keep_armed_for
    from workflows.timers import IdleTimer, sleep_until
    from workflows.versions import (
        PATCH_FAILURE_NOTICE,
        PATCH_PROMISES,
        PATCH_SUPERSEDE,
        PATCH_TIMERS,
        since,
    )


@workflow.defn
class ConversationWorkflow(ConversationInbox):
    @workflow.init
    def __init__(self, input: ConversationInput) -> None:
        # Initialised here, not in run(): the signal of signal-with-start runs before run().
        # ``_s`` is everything that survives continue-as-new, carried whole.
        self._s = input.carried or CarriedState()
        self._seen = set(self._s.seen_ids)
        self._conv = input.conversation
        # A value that would fail every task (inf, 1e30) is clamped, and the run says so.
        self._config, problems = checked_config(input.config)
        if problems:
            workflow.logger.warning("conversation config out of bounds: %s", "; ".join(problems))
        self._send_task_queue = input.send_task_queue
        self._board = PhaseBoard(
            "collecting" if self._s.buffer else "idle",
            upsert=self._config.search_attributes,
            steady=since,
        )
        self._idle = IdleTimer()
        # The burst between its flush and its reply's first chunk (supersede release).
        self._flight: Flight | None = None

    @workflow.run
    async def run(self, input: ConversationInput) -> None:
        s = self._s
        while True:
            if self._history_is_long():
                # The state travels whole; deadlines derive from it.
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(replace(input, config=self._config, carried=s))
            if s.paused and s.resume_at and workflow.now() >= s.resume_at:
                s.paused, s.resume_at = False, None
                self._board.show(paused=False)
            # Settings that changed while a burst was being answered apply from now on.
            self._take_pending_config(answering=False)
            decision = self._decision()
            if decision is None:
                self._enter("idle")
                if s.paused:
                    # Never idle-close while paused: the handoff would be forgotten.
                    workflow.set_current_details("paused (human handoff)")
                    await self._wait_while_paused()
                    continue
                if not await self._wait_for_message():
                    # Completing is safe against a racing signal: the server rejects the
                    # completion if a signal landed meanwhile, and we run again with it.
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    return
                continue
            if decision.due_at > workflow.now():
                self._enter(
                    "collecting",
                    PhaseBoard.collecting_details(len(s.buffer), decision.due_at, decision.rule),
                )
                keep = keep_armed_for(self._config) if since(PATCH_TIMERS) else None
                await sleep_until(
                    decision.due_at, decision.rule, self._current_due, keep_only_with=keep
                )
                continue
            await self._flush(decision.reason)

    async def _wait_for_message(self) -> bool:
        """Wait for the next message (or a pause); False once the conversation was idle
        for the idle close."""
        idle_close = timedelta(seconds=self._config.idle_close_seconds)
        if not since(PATCH_TIMERS):
            try:
                await workflow.wait_condition(
                    lambda: bool(self._s.buffer), timeout=idle_close, timeout_summary="idle close"
                )
            except TimeoutError:
                return bool(self._s.buffer)
            return True
        # Before the promises release a pause did not wake this wait, and the run
        # completed at its idle close with the pause forgotten.
        wake_on_pause = since(PATCH_PROMISES)
        return await self._idle.wait(
            workflow.now() + idle_close,
            lambda: bool(self._s.buffer) or (wake_on_pause and self._s.paused),
        )

    async def _wait_while_paused(self) -> None:
        s = self._s
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: bool(s.buffer) or not s.paused,
                timeout=s.resume_at - workflow.now() if s.resume_at else None,
                timeout_summary="auto-resume",
            )

    async def _flush(self, reason: str) -> None:
        s, forced = self._s, self._s.forced
        # A clear drops everything that was buffered when ops asked, as one burst.
        clear_through = forced.through_seq if reason == REASON_CLEARED and forced else None
        batch, s.buffer = buffer.taken(s.buffer, through_seq=clear_through)
        # The typing lease of the burst taken, if it was the open one (nothing is left).
        taken_lease = None if s.buffer else s.lease_until
        if not s.buffer:
            s.lease_until = None
        if forced is not None and not any(m.burst_seq <= forced.through_seq for m in s.buffer):
            s.forced = None
        drop_as = REASON_CLEARED if reason == REASON_CLEARED else None
        if drop_as is None and s.paused:
            drop_as = "paused"
        message_ids = sorted(m.message_id for m in batch)
        takes_over = s.superseded
        if takes_over is not None and not set(takes_over.message_ids) & set(message_ids):
            takes_over = None  # its messages were all deleted meanwhile
        s.superseded = None
        key = burst_key(
            workflow.info().workflow_id,
            message_ids,
            after=takes_over.burst_key if takes_over else None,
        )
        s.last_burst_key = key
        s.bursts_flushed += 1
        self._flight = self._watch(batch, reason, drop_as, taken_lease)
        try:
            outcome = await answer_burst(
                BurstToAnswer(
                    self._conv.conversation_id,
                    key,
                    batch,
                    message_ids,
                    reason,
                    drop_as,
                    takes_over=takes_over.burst_key if takes_over else None,
                ),
                send_task_queue=self._send_task_queue,
                outage_window=self._outage_window(),
                enter=self._enter,
                flight=self._flight,
            )
            if outcome == SUPERSEDED:
                # Its messages rejoin the buffer ahead of what superseded it: the next
                # reply answers all of them, in order.
                s.buffer = rejoined(batch, s.buffer)
                s.superseded = SupersededBurst(key, message_ids)
                s.supersedes_in_row += 1
                s.bursts_superseded += 1
                return
            s.supersedes_in_row = 0
        except ActivityError as err:
            s.supersedes_in_row = 0
            # The conversation goes on: the burst is recorded as failed, ops are alerted
            # (once an hour per kind) and the user is told, then the next burst is served.
            workflow.logger.error("burst %s failed: %s", key, err.cause or err)
            error_type = await steps.mark_failed(key, err)
            silent_doubt = since(PATCH_PROMISES)
            if since(PATCH_FAILURE_NOTICE) and tells_user(
                error_type, in_doubt_is_silent=silent_doubt
            ):
                self._enter("sending", "sending the error message")
                await steps.notify_user(key, task_queue=self._send_task_queue)
        finally:
            self._flight = None

    def _watch(
        self,
        batch: list[BufferedMessage],
        reason: str,
        drop_as: str | None,
        lease: datetime | None,
    ) -> Flight | None:
        """The flight of a burst about to be answered, from the supersede release: watched
        for its authors' messages (mode "supersede") and typing (the typing hold)."""
        config = self._config
        supersede = config.mid_reply == SUPERSEDE
        if drop_as is not None or not (supersede or config.hold_reply_while_typing):
            return None
        if not since(PATCH_SUPERSEDE):
            return None
        authors = frozenset(m.sender_id for m in batch)
        return Flight(
            config,
            lambda: self._s.buffer,
            authors,
            first_at=min(m.received_at for m in batch),
            in_row=self._s.supersedes_in_row,
            reason=reason,
            # Commands never supersede and are never superseded.
            watching=supersede and batch[0].command is None,
            typing_until=lease,
        )

    def _outage_window(self) -> timedelta:
        return timedelta(seconds=self._config.outage_window_seconds)

    def _history_is_long(self) -> bool:
        info = workflow.info()
        limit = self._config.max_history_events
        return info.is_continue_as_new_suggested() or info.get_current_history_length() >= limit

    def _enter(self, phase: str, details: str | None = None) -> None:
        self._board.enter(phase, paused=self._s.paused, details=details)
