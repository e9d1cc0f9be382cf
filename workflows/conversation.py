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
    from workflows.answering import BurstToAnswer, answer_burst
    from workflows.config_check import MAX_PAUSE_SECONDS, checked_config, pause_seconds_ok
    from workflows.failures import tells_user
    from workflows.ids import burst_key
    from workflows.payloads import (
        CarriedState,
        ConversationInput,
        ConversationState,
        ForcedFlush,
        MessageEdited,
        MessageReceived,
        MessagesDeleted,
        MessagesReceived,
        PauseInput,
        TypingObserved,
    )
    from workflows.phase import PhaseBoard
    from workflows.policy import (
        REASON_CLEARED,
        REASON_MANUAL,
        FlushDecision,
        arrival_time,
        command_after,
        decide_flush,
        extend_lease,
        head_burst,
        keep_armed_for,
    )
    from workflows.timers import IdleTimer, sleep_until
    from workflows.versions import (
        PATCH_FAILURE_NOTICE,
        PATCH_PROMISES,
        PATCH_TIMERS,
        since,
    )

MAX_PAUSE_MINUTES = MAX_PAUSE_SECONDS / 60

# A held chat action's age is trusted up to this; a lease from longer ago is long over.
MAX_TYPING_AGE_SECONDS = 120.0

# Message ids remembered for de-duplication (listener retries, catch-up replays).
SEEN_IDS_KEPT = 1000


@workflow.defn
class ConversationWorkflow:
    @workflow.init
    def __init__(self, input: ConversationInput) -> None:
        # Initialised here, not in run(): the signal of signal-with-start runs before run().
        # ``_s`` is everything that survives continue-as-new, carried whole.
        self._s = input.carried or CarriedState()
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

    @workflow.update
    async def flush_now(self) -> ConversationState:
        """Flush everything buffered now, each burst answered as usual (reason 'manual').
        Returns the state once the buffer has been taken."""
        self._force(REASON_MANUAL)
        return await self._state_once_forced()

    @workflow.update
    async def clear(self) -> ConversationState:
        """Drop everything buffered unanswered; it stays recorded as a 'cleared' burst.
        Returns the state once the buffer has been taken."""
        self._force(REASON_CLEARED)
        return await self._state_once_forced()

    async def _state_once_forced(self) -> ConversationState:
        # Before the promises release the state was returned at once: from before the
        # flush acted, still showing the buffer it was about to take.
        if since(PATCH_PROMISES):
            await workflow.wait_condition(lambda: self._s.forced is None)
        return self.state()

    @workflow.update
    def pause(self, input: PauseInput) -> ConversationState:
        """Stop replying (human handoff). Messages keep being recorded, as dropped bursts."""
        self._s.paused = True
        self._s.resume_at = (
            workflow.now() + timedelta(minutes=input.minutes) if input.minutes else None
        )
        self._board.show(paused=True)
        return self.state()

    @pause.validator
    def _check_pause(self, input: PauseInput) -> None:
        if not pause_seconds_ok(input.minutes):
            raise ValueError(
                f"pause minutes must be a number above 0 and at most {MAX_PAUSE_MINUTES:g} "
                f"(366 days), got {input.minutes!r}"
            )

    @workflow.update
    def resume(self) -> ConversationState:
        self._s.paused, self._s.resume_at = False, None
        self._board.show(paused=False)
        return self.state()

    @workflow.signal
    def message_received(self, msg: MessageReceived) -> None:
        self._receive(msg)

    @workflow.signal
    def messages_received(self, batch: MessagesReceived) -> None:
        """Messages the ingest sent together: they reached it while this conversation's
        previous signal was in flight. Each keeps its own accepted time."""
        for msg in batch.messages:
            self._receive(msg)

    def _receive(self, msg: MessageReceived) -> None:
        s = self._s
        if msg.message_id in s.seen_ids:
            return
        if msg.resent:
            # Only a log line (no command): replays and older runs are unaffected.
            workflow.logger.warning(
                "message %s was recorded but its signal never arrived; taking it now",
                msg.message_id,
            )
        if msg.chars <= 0:
            # The ingest seam rejects empty messages; this guards against other senders.
            workflow.logger.warning("ignored empty message %s", msg.message_id)
            return
        s.seen_ids.append(msg.message_id)
        del s.seen_ids[:-SEEN_IDS_KEPT]
        now = workflow.now()
        if since():
            now = arrival_time(self._config, now, msg.accepted_at)
        s.buffer, s.lease_until = buffer.admitted(
            self._config, s.buffer, s.lease_until, msg, now, join_until_due=since(PATCH_PROMISES)
        )

    @workflow.signal
    def message_edited(self, edit: MessageEdited) -> None:
        """A buffered message's new length; the burst's quiet period restarts. An edit of
        a message no longer buffered (answered, or being answered) changes nothing here."""
        if edit.chars > 0:
            self._s.buffer = buffer.edited(
                self._s.buffer, edit.message_id, edit.chars, workflow.now()
            )

    @workflow.signal
    def messages_deleted(self, event: MessagesDeleted) -> None:
        """Deleted messages leave the buffer (an emptied burst is dropped); what is left of
        their bursts restarts its quiet period. Their ids stay seen, so no retry re-adds them."""
        left = buffer.without(self._s.buffer, event.message_ids, workflow.now())
        if left is not None:
            self._s.buffer = left
            if not left:
                self._s.lease_until = None

    @workflow.signal
    def typing_observed(self, event: TypingObserved) -> None:
        # Older signals carry no age (0): their lease runs from now, as it always did.
        age = min(max(event.age_seconds, 0.0), MAX_TYPING_AGE_SECONDS)
        self._s.lease_until = extend_lease(
            self._config,
            self._s.buffer,
            self._s.lease_until,
            sender_id=event.sender_id,
            action=event.action,
            at=workflow.now() - timedelta(seconds=age),
        )

    @workflow.query
    def state(self) -> ConversationState:
        s, decision = self._s, self._decision()
        return ConversationState(
            phase=self._board.visible(paused=s.paused),
            buffered=len(s.buffer),
            first_message_at=s.buffer[0].received_at if s.buffer else None,
            last_message_at=s.buffer[-1].received_at if s.buffer else None,
            typing_lease_until=s.lease_until,
            deadline=decision.due_at if decision else None,
            deadline_rule=decision.rule if decision else None,
            bursts_flushed=s.bursts_flushed,
            last_burst_key=s.last_burst_key,
            paused=s.paused,
            resume_at=s.resume_at,
        )

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
        if not s.buffer:
            s.lease_until = None
        if forced is not None and not any(m.burst_seq <= forced.through_seq for m in s.buffer):
            s.forced = None
        drop_as = REASON_CLEARED if reason == REASON_CLEARED else None
        if drop_as is None and s.paused:
            drop_as = "paused"
        message_ids = sorted(m.message_id for m in batch)
        key = burst_key(workflow.info().workflow_id, message_ids)
        s.last_burst_key = key
        s.bursts_flushed += 1
        try:
            await answer_burst(
                BurstToAnswer(self._conv.conversation_id, key, batch, message_ids, reason, drop_as),
                send_task_queue=self._send_task_queue,
                outage_window=self._outage_window(),
                enter=self._enter,
            )
        except ActivityError as err:
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

    def _outage_window(self) -> timedelta:
        return timedelta(seconds=self._config.outage_window_seconds)

    def _history_is_long(self) -> bool:
        info = workflow.info()
        limit = self._config.max_history_events
        return info.is_continue_as_new_suggested() or info.get_current_history_length() >= limit

    def _decision(self) -> FlushDecision | None:
        """The next flush: the head burst's, with the typing lease if it is the open one."""
        s = self._s
        head = head_burst(s.buffer)
        if not head:
            return None
        seq = head[0].burst_seq
        if s.forced is not None and seq <= s.forced.through_seq:
            return FlushDecision(s.forced.at, s.forced.reason, s.forced.reason)
        is_open = seq == s.buffer[-1].burst_seq
        return decide_flush(
            self._config,
            head,
            s.lease_until if is_open else None,
            command_after(s.buffer, seq),
        )

    def _current_due(self) -> datetime | None:
        decision = self._decision()
        return decision.due_at if decision else None

    def _force(self, reason: str) -> None:
        s = self._s
        if not s.buffer:
            return
        if s.forced is not None and s.forced.reason == REASON_CLEARED:
            reason = REASON_CLEARED  # a clear already asked for wins over a flush
        s.forced = ForcedFlush(s.buffer[-1].burst_seq, reason, workflow.now())

    def _enter(self, phase: str, details: str | None = None) -> None:
        self._board.enter(phase, paused=self._s.paused, details=details)
