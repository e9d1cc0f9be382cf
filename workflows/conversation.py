"""ConversationWorkflow: one per (account, chat, topic). Buffers messages, waits for the
lull, then persists the burst, asks the LLM once and sends the reply, in that order.

The debounce loop follows the "updatable timer" sample, with one twist: a message that
pushes the deadline at least a second later leaves the armed timer alone while it has half
a quiet period to run; it fires and the loop re-arms for the remainder. That saves a
cancelled and a new timer for each message it absorbs. The server fires any timer shorter
than about a second at about a second, so a remainder under a second would flush late:
then the timer is replaced at once instead, as it is when little is left to absorb more
(see ``policy.must_rearm``).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.bursts import BurstActivities
    from activities.sending import SendActivities
    from workflows import attributes, steps
    from workflows.config_check import MAX_PAUSE_SECONDS, checked_config, pause_seconds_ok
    from workflows.failures import tells_user
    from workflows.ids import burst_key
    from workflows.payloads import (
        BufferedMessage,
        CarriedState,
        ConversationInput,
        ConversationState,
        FailureNoticeInput,
        ForcedFlush,
        MessageEdited,
        MessageReceived,
        MessagesDeleted,
        MessagesReceived,
        PauseInput,
        PersistBurstInput,
        PersistBurstResult,
        TypingObserved,
    )
    from workflows.policy import (
        REASON_CLEARED,
        REASON_MANUAL,
        FlushDecision,
        arrival_time,
        burst_seq_for,
        command_after,
        decide_flush,
        extend_lease,
        head_burst,
        keep_armed_for,
        lease_after_message,
        must_rearm,
    )

# Runs started before this patch persisted bursts with a regular activity.
PATCH_LOCAL_PERSIST = "persist-burst-local-activity"
# send_reply heartbeats, so a dead listener is noticed in seconds, not after 60 s.
PATCH_SEND_HEARTBEAT = "send-reply-heartbeat"
# A failed burst's user gets the account's error message.
PATCH_FAILURE_NOTICE = "failed-burst-notice"
# Everything the 2026-12 release changed, behind one patch, because each patch a run
# calls costs it a marker event and a TemporalChangeVersion visibility write:
#   - a message's quiet period runs from when the ingest accepted it;
#   - LullPhase is "active" or "paused", upserted only for a handoff, not three times a
#     burst.
# It implies the three patches above, so runs that have it never call those.
PATCH_2026_12 = "lull-2026-12"
# Fewer timer events, behind one patch that implies lull-2026-12 (so a new run still calls
# one patch, this one):
#   - an armed timer with under half a quiet period left is replaced when the deadline
#     moves, not left to fire early and be re-armed (``policy.keep_armed_for``);
#   - the idle-close timer stays armed while bursts come and go (see _wait_for_message).
PATCH_TIMERS = "lull-2026-12-timers"
# The promises release, implying lull-2026-12-timers:
#   - a message joins the open burst whenever it arrives before that burst is due, also
#     when the max wait set the due time (``policy.burst_seq_for``);
#   - a pause wakes the idle wait, so a paused conversation never idle-closes.
PATCH_PROMISES = "lull-2026-12-promises"
# Persist with a regular activity again, implying lull-2026-12-promises. While a local
# activity runs, core completes the task empty and forces another (at 80 % of the task
# timeout, or to answer a query); on replay it merges the pair and runs the first task's
# signals at the second's clock, so a run that met it no longer replayed (see
# tests/workflows/test_empty_task_replay.py).
PATCH_NO_EMPTY_TASKS = "lull-2026-12-no-empty-tasks"
# Newest first: a run asks each until one answers, and each patch a run calls costs it a
# marker event and a visibility write.
RELEASES = (PATCH_NO_EMPTY_TASKS, PATCH_PROMISES, PATCH_TIMERS, PATCH_2026_12)

MAX_PAUSE_MINUTES = MAX_PAUSE_SECONDS / 60

# A held chat action's age is trusted up to this; a lease from longer ago is long over.
MAX_TYPING_AGE_SECONDS = 120.0

# Message ids remembered for de-duplication (listener retries, catch-up replays).
SEEN_IDS_KEPT = 1000

# The error notice is best effort: a few tries, then the failure stays with ops.
NOTICE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=5)


@workflow.defn
class ConversationWorkflow:
    @workflow.init
    def __init__(self, input: ConversationInput) -> None:
        # Initialised here, not in run(): the signal of signal-with-start runs before run().
        carried = input.carried or CarriedState()
        self._conv = input.conversation
        # A value that would fail every task (inf, 1e30) is clamped, and the run says so.
        self._config, problems = checked_config(input.config)
        if problems:
            workflow.logger.warning("conversation config out of bounds: %s", "; ".join(problems))
        self._send_task_queue = input.send_task_queue
        self._buffer: list[BufferedMessage] = list(carried.buffer)
        # The open burst author's typing lease: it holds the flush while they type.
        self._lease_until = carried.lease_until
        self._seen: dict[int, None] = dict.fromkeys(carried.seen_ids)
        self._bursts_flushed = carried.bursts_flushed
        self._last_burst_key = carried.last_burst_key
        self._phase = "collecting" if self._buffer else "idle"
        self._paused = carried.paused
        self._resume_at = carried.resume_at
        # The ingest starts a run with LullPhase set ("active"): no upsert is needed for
        # it then. A run started without it (an older ingest, stored histories) upserts it.
        self._shown_phase: str | None = workflow.info().typed_search_attributes.get(
            attributes.PHASE
        )
        self._forced = carried.forced
        # The idle-close timer, left armed while bursts come and go.
        self._idle_timer: asyncio.Task[None] | None = None

    @workflow.update
    async def flush_now(self) -> ConversationState:
        """Flush everything buffered now, each burst answered as usual (reason 'manual').
        Returns the state once the flush has taken what was buffered."""
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
        if self._since(PATCH_PROMISES):
            await workflow.wait_condition(lambda: self._forced is None)
        return self.state()

    @workflow.update
    def pause(self, input: PauseInput) -> ConversationState:
        """Stop replying (human handoff). Messages keep being recorded, as dropped bursts."""
        self._paused = True
        self._resume_at = (
            workflow.now() + timedelta(minutes=input.minutes) if input.minutes else None
        )
        self._show_phase()
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
        self._paused, self._resume_at = False, None
        self._show_phase()
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
        if msg.message_id in self._seen:
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
        self._remember(msg.message_id)
        now = workflow.now()
        if self._since():
            now = arrival_time(self._config, now, msg.accepted_at)
        is_command = msg.command is not None
        seq = burst_seq_for(
            self._config,
            self._buffer,
            self._lease_until,
            now,
            command=is_command,
            join_until_due=self._since(PATCH_PROMISES),
        )
        self._lease_until = lease_after_message(
            self._buffer, self._lease_until, seq=seq, sender_id=msg.sender_id
        )
        self._buffer.append(
            BufferedMessage(
                msg.message_id, msg.sender_id, msg.chars, now, burst_seq=seq, command=msg.command
            )
        )

    @workflow.signal
    def message_edited(self, edit: MessageEdited) -> None:
        """A buffered message's new length; the burst's quiet period restarts. An edit of
        a message no longer buffered (answered, or being answered) changes nothing here."""
        if edit.chars <= 0:
            return
        now = workflow.now()
        self._buffer = [
            replace(m, chars=edit.chars, touched_at=now) if m.message_id == edit.message_id else m
            for m in self._buffer
        ]

    @workflow.signal
    def messages_deleted(self, event: MessagesDeleted) -> None:
        """Deleted messages leave the buffer (an emptied burst is dropped); what is left of
        their bursts restarts its quiet period. Their ids stay seen, so no retry re-adds them."""
        gone = set(event.message_ids)
        hit = {m.burst_seq for m in self._buffer if m.message_id in gone}
        if not hit:
            return
        now = workflow.now()
        self._buffer = [
            replace(m, touched_at=now) if m.burst_seq in hit else m
            for m in self._buffer
            if m.message_id not in gone
        ]
        if not self._buffer:
            self._lease_until = None

    @workflow.signal
    def typing_observed(self, event: TypingObserved) -> None:
        # Older signals carry no age (0): their lease runs from now, as it always did.
        age = min(max(event.age_seconds, 0.0), MAX_TYPING_AGE_SECONDS)
        self._lease_until = extend_lease(
            self._config,
            self._buffer,
            self._lease_until,
            sender_id=event.sender_id,
            action=event.action,
            at=workflow.now() - timedelta(seconds=age),
        )

    @workflow.query
    def state(self) -> ConversationState:
        decision = self._decision()
        return ConversationState(
            phase=self._visible_phase(),
            buffered=len(self._buffer),
            first_message_at=self._buffer[0].received_at if self._buffer else None,
            last_message_at=self._buffer[-1].received_at if self._buffer else None,
            typing_lease_until=self._lease_until,
            deadline=decision.due_at if decision else None,
            deadline_rule=decision.rule if decision else None,
            bursts_flushed=self._bursts_flushed,
            last_burst_key=self._last_burst_key,
            paused=self._paused,
            resume_at=self._resume_at,
        )

    @workflow.run
    async def run(self, input: ConversationInput) -> None:
        while True:
            if self._history_is_long():
                # The buffer, lease and seen ids travel along; deadlines derive from them.
                await self._continue_as_new(input)
            if self._paused and self._resume_at and workflow.now() >= self._resume_at:
                self._paused, self._resume_at = False, None
                self._show_phase()
            decision = self._decision()
            if decision is None:
                self._enter("idle")
                if self._paused:
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
            now = workflow.now()
            if decision.due_at > now:
                self._enter("collecting")
                self._show_details(decision.due_at, decision.rule)
                await self._sleep_until(decision.due_at, decision.rule)
                continue
            await self._flush(decision.reason)

    async def _wait_for_message(self) -> bool:
        """Wait for the next message (or a pause); False once the conversation was idle
        for the idle close."""
        if self._since(PATCH_TIMERS):
            return await self._wait_for_message_on_idle_timer()
        try:
            await workflow.wait_condition(
                lambda: bool(self._buffer),
                timeout=timedelta(seconds=self._config.idle_close_seconds),
                timeout_summary="idle close",
            )
        except TimeoutError:
            return bool(self._buffer)
        return True

    async def _wait_for_message_on_idle_timer(self) -> bool:
        """The idle wait, on a timer that a message does not cancel.

        A wait with a timeout starts a timer each time the conversation goes idle and
        cancels it at the next message: two history events a burst. This timer stays
        armed instead; when it fires early (the conversation was busy meanwhile) it is
        re-armed for the rest, at most once an idle close (five events)."""
        close_at = workflow.now() + timedelta(seconds=self._config.idle_close_seconds)
        # Before the promises release a pause did not wake this wait, and the run
        # completed at its idle close with the pause forgotten.
        wake_on_pause = self._since(PATCH_PROMISES)
        while True:
            if self._idle_timer is None or self._idle_timer.done():
                self._idle_timer = asyncio.create_task(
                    workflow.sleep(close_at - workflow.now(), summary="idle close")
                )
            await workflow.wait_condition(
                lambda: self._message_or_idle_timer() or (wake_on_pause and self._paused)
            )
            if self._buffer or (wake_on_pause and self._paused):
                return True
            if workflow.now() >= close_at:
                return False

    def _message_or_idle_timer(self) -> bool:
        return bool(self._buffer) or (self._idle_timer is not None and self._idle_timer.done())

    async def _wait_while_paused(self) -> None:
        timeout = self._resume_at - workflow.now() if self._resume_at else None
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: bool(self._buffer) or not self._paused,
                timeout=timeout,
                timeout_summary="auto-resume",
            )

    async def _sleep_until(self, due_at: datetime, rule: str) -> None:
        keep_only_with = keep_armed_for(self._config) if self._since(PATCH_TIMERS) else None

        def deadline_moved() -> bool:
            current = self._decision()
            return current is not None and must_rearm(
                due_at, current.due_at, now=workflow.now(), keep_only_with=keep_only_with
            )

        # Timing out is the normal way out: the deadline came.
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                deadline_moved, timeout=due_at - workflow.now(), timeout_summary=rule
            )

    async def _flush(self, reason: str) -> None:
        forced = self._forced
        if reason == REASON_CLEARED and forced is not None:
            # One dropped burst for everything that was buffered when ops cleared it.
            batch = [m for m in self._buffer if m.burst_seq <= forced.through_seq]
        else:
            batch = head_burst(self._buffer)
        # Later arrivals stay buffered and become the next burst.
        self._buffer = self._buffer[len(batch) :]
        if not self._buffer:
            self._lease_until = None
        if forced is not None and not any(m.burst_seq <= forced.through_seq for m in self._buffer):
            self._forced = None
        drop_as = REASON_CLEARED if reason == REASON_CLEARED else None
        if drop_as is None and self._paused:
            drop_as = "paused"
        message_ids = sorted(m.message_id for m in batch)
        key = burst_key(workflow.info().workflow_id, message_ids)
        self._last_burst_key = key
        self._bursts_flushed += 1
        try:
            await self._answer(key, batch, message_ids, reason, drop_as)
        except ActivityError as err:
            # The conversation goes on: the burst is recorded as failed, ops are alerted
            # (once an hour per kind) and the user is told, then the next burst is served.
            workflow.logger.error("burst %s failed: %s", key, err.cause or err)
            error_type = await steps.mark_failed(key, err)
            silent_doubt = self._since(PATCH_PROMISES)
            if self._since(PATCH_FAILURE_NOTICE) and tells_user(
                error_type, in_doubt_is_silent=silent_doubt
            ):
                await self._notify_user(key)

    async def _answer(
        self,
        key: str,
        batch: list[BufferedMessage],
        message_ids: list[int],
        reason: str,
        drop_as: str | None,
    ) -> None:
        self._set_phase("persisting", f"persisting burst of {len(batch)} messages")
        persisted = await self._persist(
            PersistBurstInput(
                conversation_id=self._conv.conversation_id,
                burst_key=key,
                message_ids=message_ids,
                reason=reason,
                first_message_at=min(m.received_at for m in batch),
                last_message_at=max(m.received_at for m in batch),
                flushed_at=workflow.now(),
                drop_as=drop_as,
            ),
            summary=f"persist {len(batch)} messages" + (f" ({drop_as})" if drop_as else ""),
        )
        if persisted.message_count == 0 or drop_as is not None:
            return
        self._set_phase("generating", "generating reply")
        generated = await steps.generate_reply(key, outage_window=self._outage_window())
        self._set_phase("sending", f"sending reply ({generated.chars} chars)")
        await steps.send_reply(
            key,
            task_queue=self._send_task_queue,
            outage_window=self._outage_window(),
            heartbeat=steps.SEND_HEARTBEAT if self._since(PATCH_SEND_HEARTBEAT) else None,
        )

    async def _persist(self, input: PersistBurstInput, *, summary: str) -> PersistBurstResult:
        # Runs from lull-2026-12 to the promises release persisted with a local activity
        # (one marker event instead of about six); see PATCH_NO_EMPTY_TASKS for why no more.
        local = self._since(PATCH_LOCAL_PERSIST) and not self._since(PATCH_NO_EMPTY_TASKS)
        execute = (
            workflow.execute_local_activity_method if local else workflow.execute_activity_method
        )
        return await execute(
            BurstActivities.persist_burst,
            input,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=steps.DB_RETRY,
            summary=summary,
        )

    async def _notify_user(self, key: str) -> None:
        self._set_phase("sending", "sending the error message")
        try:
            await workflow.execute_activity_method(
                SendActivities.send_failure_notice,
                FailureNoticeInput(burst_key=key),
                task_queue=self._send_task_queue,
                start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(seconds=15),
                retry_policy=NOTICE_RETRY,
                summary="send error message",
            )
        except ActivityError as err:
            workflow.logger.warning("error message for burst %s not sent: %s", key, err.cause)

    def _since(self, patch: str = PATCH_2026_12) -> bool:
        """Whether this run has ``patch``'s behaviour: a release (``RELEASES``) implies its
        own and every earlier patch's. Runs from before a patch replay as they were
        recorded: ``patched`` is False for them."""
        for release in RELEASES:
            if workflow.patched(release):
                return True
            if release == patch:
                return False
        return workflow.patched(patch)

    def _outage_window(self) -> timedelta:
        return timedelta(seconds=self._config.outage_window_seconds)

    async def _continue_as_new(self, input: ConversationInput) -> None:
        await workflow.wait_condition(workflow.all_handlers_finished)
        carried = CarriedState(
            buffer=self._buffer,
            lease_until=self._lease_until,
            paused=self._paused,
            resume_at=self._resume_at,
            forced=self._forced,
            seen_ids=list(self._seen),
            bursts_flushed=self._bursts_flushed,
            last_burst_key=self._last_burst_key,
        )
        workflow.continue_as_new(
            ConversationInput(input.conversation, self._config, input.send_task_queue, carried)
        )

    def _history_is_long(self) -> bool:
        info = workflow.info()
        limit = self._config.max_history_events
        return info.is_continue_as_new_suggested() or info.get_current_history_length() >= limit

    def _decision(self) -> FlushDecision | None:
        """The next flush: the head burst's, with the typing lease if it is the open one."""
        head = head_burst(self._buffer)
        if not head:
            return None
        seq = head[0].burst_seq
        if self._forced is not None and seq <= self._forced.through_seq:
            return FlushDecision(self._forced.at, self._forced.reason, self._forced.reason)
        is_open = seq == self._buffer[-1].burst_seq
        return decide_flush(
            self._config,
            head,
            self._lease_until if is_open else None,
            command_after(self._buffer, seq),
        )

    def _force(self, reason: str) -> None:
        if not self._buffer:
            return
        if self._forced is not None and self._forced.reason == REASON_CLEARED:
            reason = REASON_CLEARED  # a clear already asked for wins over a flush
        self._forced = ForcedFlush(self._buffer[-1].burst_seq, reason, workflow.now())

    def _remember(self, message_id: int) -> None:
        self._seen[message_id] = None
        while len(self._seen) > SEEN_IDS_KEPT:
            del self._seen[next(iter(self._seen))]

    def _set_phase(self, phase: str, details: str) -> None:
        self._enter(phase)
        workflow.set_current_details(details)

    def _enter(self, phase: str) -> None:
        self._phase = phase
        self._show_phase()

    def _show_phase(self) -> None:
        """Keep the LullPhase search attribute current, upserting only when its value
        changes: each upsert is a history event and a visibility write."""
        phase = self._coarse_phase()
        if self._config.search_attributes and phase != self._shown_phase:
            workflow.upsert_search_attributes([attributes.PHASE.value_set(phase)])
            self._shown_phase = phase

    def _visible_phase(self) -> str:
        """The phase as ops see it: waiting while paused shows as "paused"."""
        if self._paused and self._phase in ("idle", "collecting"):
            return "paused"
        return self._phase

    def _coarse_phase(self) -> str:
        phase = self._visible_phase()
        if self._since():
            return attributes.steady_phase(phase)
        return attributes.COARSE_PHASE.get(phase, phase)

    def _show_details(self, due_at: datetime, rule: str) -> None:
        when = due_at.strftime("%H:%M:%S")
        workflow.set_current_details(
            f"collecting {len(self._buffer)} messages, flush at {when} UTC ({rule})"
        )
