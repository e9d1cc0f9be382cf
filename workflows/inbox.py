"""What a conversation takes in: the signals (messages, edits, deletes, typing), the ops
updates (flush, clear, pause, resume) and the state query. ConversationWorkflow
(workflows/conversation.py) inherits them and runs the loop they feed."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows import buffer
    from workflows.config_check import MAX_PAUSE_SECONDS, checked_config, pause_seconds_ok
    from workflows.mid_reply import Flight
    from workflows.payloads import (
        CarriedState,
        ConversationConfig,
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
    )
    from workflows.versions import (
        PATCH_ACCOUNT_SETTINGS,
        PATCH_PROMISES,
        since,
    )


MAX_PAUSE_MINUTES = MAX_PAUSE_SECONDS / 60

# A held chat action's age is trusted up to this; a lease from longer ago is long over.
MAX_TYPING_AGE_SECONDS = 120.0

# What a run is doing while it answers a burst (workflows/answering.py).
ANSWERING_PHASES = frozenset({"persisting", "generating", "holding", "sending"})

# Message ids remembered for de-duplication (listener retries, catch-up replays).
SEEN_IDS_KEPT = 1000


class ConversationInbox:
    # Set by ConversationWorkflow.__init__ (a signal of signal-with-start runs before run).
    _s: CarriedState
    # ``_s.seen_ids`` as a set, for the membership test each message signal makes.
    _seen: set[int]
    _config: ConversationConfig
    _board: PhaseBoard
    # The burst between its flush and its reply's first chunk (supersede release).
    _flight: Flight | None

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
        if msg.config is not None and since(PATCH_ACCOUNT_SETTINGS):
            self._offer_config(msg.config)
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
        s.seen_ids.append(msg.message_id)
        self._seen.add(msg.message_id)
        if len(s.seen_ids) > SEEN_IDS_KEPT:
            self._seen.discard(s.seen_ids.pop(0))
        now = workflow.now()
        if since():
            now = arrival_time(self._config, now, msg.accepted_at)
        s.buffer, s.lease_until = buffer.admitted(
            self._config, s.buffer, s.lease_until, msg, now, join_until_due=since(PATCH_PROMISES)
        )
        if self._flight is not None:
            self._flight.wrote(msg.sender_id)

    def _offer_config(self, config: ConversationConfig) -> None:
        """The account's settings as they are now: taken at once unless a burst is being
        answered, else when it is (the conversation's loop takes them)."""
        checked, problems = checked_config(config)
        if problems:
            workflow.logger.warning("account settings out of bounds: %s", "; ".join(problems))
        if checked == self._config:
            self._s.pending_config = None
            return
        self._s.pending_config = checked
        self._take_pending_config()

    def _take_pending_config(self, *, answering: bool | None = None) -> None:
        """Use the held settings unless a burst is being answered: the bursts still
        buffered are then decided under them (their due times are pure functions of the
        config and the buffer). A burst in flight finishes under the settings it had."""
        s = self._s
        if answering is None:
            answering = self._board.phase in ANSWERING_PHASES
        if s.pending_config is None or answering:
            return
        self._config, s.pending_config = s.pending_config, None

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
        at = workflow.now() - timedelta(seconds=age)
        self._s.lease_until = extend_lease(
            self._config,
            self._s.buffer,
            self._s.lease_until,
            sender_id=event.sender_id,
            action=event.action,
            at=at,
        )
        if self._flight is not None:
            # A reply on its way waits while its author types (the typing hold).
            self._flight.typed(sender_id=event.sender_id, action=event.action, at=at)

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
            bursts_superseded=s.bursts_superseded,
        )

    @workflow.query
    def unseen(self, message_ids: list[int]) -> list[int]:
        """Of these message ids, the ones this run never took (neither seen nor buffered).
        The ingest's sweep signals only those again: a run holding a backlog behind a slow
        burst is not sent it over and over (each resend is history the run must decode,
        and enough of them in one task outlasts the SDK's deadlock timeout)."""
        held = self._seen.union(m.message_id for m in self._s.buffer)
        return [i for i in message_ids if i not in held]

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
