"""The pure debounce policy, without Temporal."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from workflows.payloads import BufferedMessage, ConversationConfig
from workflows.policy import (
    REASON_MAX_CHARS,
    REASON_MAX_MESSAGES,
    REASON_MAX_WAIT,
    REASON_QUIET,
    REASON_UNBUFFERED,
    arrival_time,
    burst_seq_for,
    command_after,
    decide_flush,
    extend_lease,
    head_burst,
    keep_armed_for,
    lease_after_message,
    must_rearm,
    tail_burst,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CONFIG = ConversationConfig(
    debounce_seconds=5,
    max_burst_messages=3,
    idle_close_seconds=60,
    max_wait_seconds=60,
    max_burst_chars=100,
    typing_window_seconds=6,
    typing_windows={"record_audio": 15},
)
AUTHOR = 7


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def msgs(*offsets: float, chars: int = 5, seq: int = 0) -> list[BufferedMessage]:
    return [
        BufferedMessage(i + 1, AUTHOR, chars, at(s), burst_seq=seq) for i, s in enumerate(offsets)
    ]


def test_empty_burst_never_flushes() -> None:
    assert decide_flush(CONFIG, []) is None


def test_quiet_period_runs_from_the_last_message() -> None:
    decision = decide_flush(CONFIG, msgs(0, 1.5))
    assert decision == decide_flush(CONFIG, msgs(1.5, 0))
    assert decision is not None
    assert (decision.due_at, decision.reason, decision.rule) == (
        at(6.5),
        REASON_QUIET,
        "quiet period",
    )


def test_fractional_debounce() -> None:
    decision = decide_flush(replace(CONFIG, debounce_seconds=0.25), msgs(1))
    assert decision is not None and decision.due_at == at(1.25)


def test_reaching_the_message_cap_is_due_at_once() -> None:
    decision = decide_flush(CONFIG, msgs(0, 1, 2))
    assert decision is not None
    assert (decision.due_at, decision.reason) == (at(2), REASON_MAX_MESSAGES)


def test_reaching_the_character_cap_is_due_at_once() -> None:
    decision = decide_flush(CONFIG, msgs(0, 1, chars=50))
    assert decision is not None
    assert (decision.due_at, decision.reason) == (at(1), REASON_MAX_CHARS)


def test_unbuffered_flushes_every_message_at_once() -> None:
    decision = decide_flush(replace(CONFIG, buffer_enabled=False), msgs(3))
    assert decision is not None
    assert (decision.due_at, decision.reason) == (at(3), REASON_UNBUFFERED)


def test_typing_lease_holds_the_flush_past_the_quiet_period() -> None:
    decision = decide_flush(CONFIG, msgs(0), lease_until=at(9))
    assert decision is not None
    assert (decision.due_at, decision.reason, decision.rule) == (
        at(9),
        REASON_QUIET,
        "typing lease",
    )


def test_a_lease_shorter_than_the_quiet_period_changes_nothing() -> None:
    decision = decide_flush(CONFIG, msgs(0), lease_until=at(2))
    assert decision is not None and decision.due_at == at(5)


def test_max_wait_bounds_everything() -> None:
    decision = decide_flush(CONFIG, msgs(0, 58), lease_until=at(100))
    assert decision is not None
    assert (decision.due_at, decision.reason) == (at(60), REASON_MAX_WAIT)


def test_typing_extends_the_lease_by_the_actions_window() -> None:
    buffer = msgs(0)
    lease = extend_lease(CONFIG, buffer, None, sender_id=AUTHOR, action="typing", at=at(4))
    assert lease == at(10)
    voice = extend_lease(CONFIG, buffer, lease, sender_id=AUTHOR, action="record_audio", at=at(5))
    assert voice == at(20)
    # A shorter action never shortens the lease; only a cancel does.
    assert extend_lease(CONFIG, buffer, voice, sender_id=AUTHOR, action="typing", at=at(6)) == voice
    assert extend_lease(CONFIG, buffer, voice, sender_id=AUTHOR, action="cancel", at=at(7)) is None


def test_typing_with_nothing_buffered_or_from_someone_else_does_nothing() -> None:
    assert extend_lease(CONFIG, [], None, sender_id=AUTHOR, action="typing", at=at(1)) is None
    lease = at(3)
    assert extend_lease(CONFIG, msgs(0), lease, sender_id=99, action="typing", at=at(1)) == lease


def test_a_message_joins_the_open_burst_until_it_is_due() -> None:
    buffer = msgs(0, 1)
    assert burst_seq_for(CONFIG, buffer, None, at(5.9)) == 0
    assert burst_seq_for(CONFIG, buffer, None, at(6)) == 1  # the burst was due: a new one
    assert burst_seq_for(CONFIG, buffer, at(10), at(8)) == 0  # the typing lease kept it open
    assert burst_seq_for(CONFIG, [], None, at(0)) == 0


def test_a_message_before_the_max_wait_joins_the_burst_the_max_wait_capped() -> None:
    config = replace(CONFIG, debounce_seconds=1, max_wait_seconds=3.9, max_burst_messages=10)
    buffer = msgs(0, 0.6, 1.2, 1.8, 2.4, 3.0)  # due at 3.9 by the max wait, not at 4.0
    assert burst_seq_for(config, buffer, None, at(3.6), join_until_due=True) == 0
    assert burst_seq_for(config, buffer, None, at(3.9), join_until_due=True) == 1
    # Runs from before the promises release replay as recorded: it split there.
    assert burst_seq_for(config, buffer, None, at(3.6)) == 1


def test_a_burst_at_a_cap_takes_no_more_messages() -> None:
    assert burst_seq_for(CONFIG, msgs(0, 1, 2), None, at(2.5)) == 1
    assert burst_seq_for(CONFIG, msgs(0, chars=100), None, at(0.5)) == 1
    assert burst_seq_for(replace(CONFIG, buffer_enabled=False), msgs(0), None, at(0)) == 1


def test_head_burst_is_the_oldest_burst() -> None:
    buffer = [*msgs(0, 1), *msgs(9, seq=1)]
    assert [m.burst_seq for m in head_burst(buffer)] == [0, 0]


@given(st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=12))
def test_head_and_tail_bursts_read_from_the_ends_are_the_bursts_by_seq(steps: list[int]) -> None:
    # Bursts sit together in the buffer, in order: the ends hold the head and tail bursts.
    seqs = [sum(steps[: i + 1]) for i in range(len(steps))]
    buffer = [BufferedMessage(i, AUTHOR, 5, at(i), burst_seq=seq) for i, seq in enumerate(seqs)]
    assert head_burst(buffer) == [m for m in buffer if m.burst_seq == seqs[0]]
    assert tail_burst(buffer) == [m for m in buffer if m.burst_seq == seqs[-1]]


def test_rearm_only_when_the_timer_would_fire_late() -> None:
    armed = at(5)
    assert must_rearm(armed, armed) is False
    assert must_rearm(armed, at(4)) is True  # earlier: a cap was reached
    assert must_rearm(armed, at(7)) is False  # fire, then re-arm for 2 s
    assert must_rearm(armed, at(5.3)) is True  # a 0.3 s remainder would fire late


def test_a_timer_with_little_left_to_run_is_replaced_rather_than_fired_early() -> None:
    armed, keep = at(5), keep_armed_for(ConversationConfig(4, 10, 600))
    assert keep == timedelta(seconds=2)
    # 3 s left: it may absorb more messages before it fires; keep it.
    assert must_rearm(armed, at(7), now=at(2), keep_only_with=keep) is False
    # 1.5 s left: an early fire (five events) would likely buy one message (two).
    assert must_rearm(armed, at(7), now=at(3.5), keep_only_with=keep) is True
    # The sub-second rule still holds on its own.
    assert must_rearm(armed, at(5.3), now=at(0), keep_only_with=keep) is True
    assert must_rearm(armed, armed, now=at(4.9), keep_only_with=keep) is False


def test_a_timer_already_due_is_left_to_fire() -> None:
    # Cancelling it would race its fire, which the server may not have written yet.
    armed, keep = at(5), keep_armed_for(ConversationConfig(4, 10, 600))
    for new_due in (at(9), at(5.3), at(4)):
        assert must_rearm(armed, new_due, now=at(5), keep_only_with=keep) is False
        assert must_rearm(armed, new_due, now=at(5.2), keep_only_with=keep) is False
    # Runs from before the timer rules replay as recorded: they replaced it.
    assert must_rearm(armed, at(4)) is True
    assert must_rearm(armed, at(5.3)) is True


# --- properties over random sequences of messages and chat actions ------------------------

event = st.tuples(
    st.floats(min_value=0.01, max_value=8.0),  # gap before the event
    st.sampled_from(["message", "message", "typing", "record_audio", "cancel", "command"]),
    st.sampled_from([AUTHOR, AUTHOR, 99]),
    st.integers(min_value=1, max_value=60),  # characters
)


def simulate(config: ConversationConfig, events: list[tuple[float, str, int, int]]):  # type: ignore[no-untyped-def]
    """Drive the policy as the workflow does, flushing exactly at each deadline."""
    buffer: list[BufferedMessage] = []
    lease: datetime | None = None
    flushed: list[tuple[list[BufferedMessage], datetime, str]] = []
    now, next_id = T0, 1

    def flush_due(until: datetime) -> None:
        nonlocal buffer, lease
        while buffer:
            head = head_burst(buffer)
            is_open = head[0].burst_seq == buffer[-1].burst_seq
            closed_by = command_after(buffer, head[0].burst_seq)
            decision = decide_flush(config, head, lease if is_open else None, closed_by)
            assert decision is not None
            if decision.due_at > until:
                return
            flushed.append((head, decision.due_at, decision.reason))
            buffer = buffer[len(head) :]
            if not buffer:
                lease = None

    for gap, kind, sender, chars in events:
        now += timedelta(seconds=gap)
        flush_due(now - timedelta(microseconds=1))
        if kind in ("message", "command"):
            command = "help" if kind == "command" else None
            seq = burst_seq_for(
                config, buffer, lease, now, command=command is not None, join_until_due=True
            )
            # The workflow's own rule, not a copy (a copy had drifted to buffer[-1]).
            lease = lease_after_message(buffer, lease, seq=seq, sender_id=sender)
            buffer.append(
                BufferedMessage(next_id, sender, chars, now, burst_seq=seq, command=command)
            )
            next_id += 1
        else:
            lease = extend_lease(config, buffer, lease, sender_id=sender, action=kind, at=now)
    flush_due(now + timedelta(days=1))
    return flushed, next_id - 1


@given(st.lists(event, max_size=60))
def test_every_message_lands_in_exactly_one_burst_in_order(events) -> None:  # type: ignore[no-untyped-def]
    flushed, sent = simulate(CONFIG, events)
    ids = [m.message_id for burst, _, _ in flushed for m in burst]
    assert ids == list(range(1, sent + 1))


@given(st.lists(event, max_size=60))
def test_no_burst_exceeds_the_caps_or_the_max_wait(events) -> None:  # type: ignore[no-untyped-def]
    flushed, _ = simulate(CONFIG, events)
    for burst, due, _ in flushed:
        assert len(burst) <= CONFIG.max_burst_messages
        # A burst may exceed the character cap only by the message that reached it.
        assert sum(m.chars for m in burst[:-1]) < CONFIG.max_burst_chars
        first = min(m.received_at for m in burst)
        assert due - first <= timedelta(seconds=CONFIG.max_wait_seconds)


@given(st.lists(event, max_size=60))
def test_a_message_that_came_before_its_predecessor_burst_was_due_is_in_it(events) -> None:  # type: ignore[no-untyped-def]
    # Caps, commands and the burst before a command aside: a message joins the burst that
    # was open when it came, exactly while that burst is not yet due. A short max wait
    # and roomy caps, so the max wait often sets the due time.
    config = replace(CONFIG, max_wait_seconds=7, max_burst_messages=50, max_burst_chars=5000)
    flushed, _ = simulate(config, events)
    for (burst, due, reason), (after, _, _) in zip(flushed, flushed[1:], strict=False):
        if reason not in (REASON_QUIET, REASON_MAX_WAIT) or after[0].command is not None:
            continue
        assert after[0].received_at >= due, (burst, due, reason, after)


@given(st.lists(event.filter(lambda e: e[1] not in ("message", "command")), max_size=30))
def test_typing_alone_never_flushes(events) -> None:  # type: ignore[no-untyped-def]
    flushed, sent = simulate(CONFIG, events)
    assert sent == 0 and flushed == []


@given(st.lists(event, max_size=60))
def test_a_quiet_burst_waited_at_least_the_quiet_period(events) -> None:  # type: ignore[no-untyped-def]
    flushed, _ = simulate(CONFIG, events)
    for burst, due, reason in flushed:
        if reason == REASON_QUIET:
            last = max(m.received_at for m in burst)
            assert due - last >= timedelta(seconds=CONFIG.debounce_seconds)


def test_a_command_is_a_burst_of_its_own_and_flushes_the_one_before() -> None:
    from workflows.policy import REASON_COMMAND

    buffer = msgs(0, 1)
    seq = burst_seq_for(CONFIG, buffer, None, at(2), command=True)
    assert seq == 1
    buffer.append(BufferedMessage(3, AUTHOR, 6, at(2), burst_seq=seq, command="help"))
    closed = decide_flush(CONFIG, head_burst(buffer), None, command_after(buffer, 0))
    assert closed is not None
    assert (closed.due_at, closed.reason) == (at(1), REASON_COMMAND)
    alone = decide_flush(CONFIG, buffer[2:])
    assert alone is not None and (alone.due_at, alone.reason) == (at(2), REASON_COMMAND)
    # What follows a command starts the next burst.
    assert burst_seq_for(CONFIG, buffer, None, at(2.1)) == 2


@given(st.lists(event, max_size=60))
def test_a_command_is_always_alone_and_never_waits(events) -> None:  # type: ignore[no-untyped-def]
    flushed, _ = simulate(CONFIG, events)
    for burst, due, _ in flushed:
        if any(m.command for m in burst):
            assert len(burst) == 1
            assert due == burst[0].received_at


def test_arrival_is_when_the_ingest_accepted_the_message() -> None:
    assert arrival_time(CONFIG, at(10), at(9.3)) == at(9.3)
    # Older senders carry no accepted time: the signal's own time counts.
    assert arrival_time(CONFIG, at(10), None) == at(10)


def test_arrival_is_never_after_now_nor_older_than_the_bound() -> None:
    # A listener clock ahead of the server's: the message is not from the future.
    assert arrival_time(CONFIG, at(10), at(12)) == at(10)
    # A message retried through an outage: two seconds old at most.
    assert arrival_time(CONFIG, at(100), at(40)) == at(98)
    # ...and at most half the quiet period, so it cannot arrive already due.
    short = replace(CONFIG, debounce_seconds=1)
    assert arrival_time(short, at(100), at(40)) == at(99.5)


@given(
    now=st.floats(0, 1000),
    accepted=st.floats(-1000, 2000),
    debounce=st.floats(0.1, 30),
)
def test_an_arrival_time_leaves_the_burst_open(
    now: float, accepted: float, debounce: float
) -> None:
    config = replace(CONFIG, debounce_seconds=debounce)
    arrived = arrival_time(config, at(now), at(accepted))
    assert arrived <= at(now)
    # The quiet period after the arrival has not ended when the signal is applied.
    assert arrived + timedelta(seconds=debounce) > at(now)
