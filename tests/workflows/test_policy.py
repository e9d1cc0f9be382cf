from datetime import UTC, datetime, timedelta

from workflows.payloads import BufferedMessage, DebounceConfig
from workflows.policy import (
    REASON_MAX_MESSAGES,
    REASON_QUIET,
    decide_flush,
    head_burst,
    must_rearm,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CONFIG = DebounceConfig(debounce_seconds=5, max_burst_messages=3, idle_close_seconds=60)


def msgs(*offsets: float) -> list[BufferedMessage]:
    return [BufferedMessage(i + 1, 7, 5, T0 + timedelta(seconds=s)) for i, s in enumerate(offsets)]


def test_empty_buffer_never_flushes() -> None:
    assert decide_flush(CONFIG, []) is None


def test_quiet_period_runs_from_the_last_message() -> None:
    decision = decide_flush(CONFIG, msgs(0, 1.5))
    assert decision is not None
    assert decision.due_at == T0 + timedelta(seconds=6.5)
    assert decision.reason == REASON_QUIET
    assert decision.rule == "quiet period"


def test_fractional_debounce() -> None:
    config = DebounceConfig(debounce_seconds=0.25, max_burst_messages=3, idle_close_seconds=60)
    decision = decide_flush(config, msgs(1))
    assert decision is not None and decision.due_at == T0 + timedelta(seconds=1.25)


def test_reaching_the_cap_is_due_at_once() -> None:
    decision = decide_flush(CONFIG, msgs(0, 1, 2))
    assert decision is not None
    assert decision.reason == REASON_MAX_MESSAGES
    assert decision.due_at == T0 + timedelta(seconds=2)


def test_a_later_message_never_moves_the_quiet_deadline_earlier() -> None:
    earlier = decide_flush(CONFIG, msgs(0))
    later = decide_flush(CONFIG, msgs(0, 2))
    assert earlier is not None and later is not None
    assert later.due_at > earlier.due_at


def test_head_burst_takes_at_most_the_cap_in_arrival_order() -> None:
    buffer = msgs(0, 1, 2, 3, 4)
    assert [m.message_id for m in head_burst(CONFIG, buffer)] == [1, 2, 3]


def test_a_quiet_gap_closes_the_burst_even_when_a_later_message_is_already_buffered() -> None:
    # The timer for the first two ran late: message 3 came 6 s after message 2.
    buffer = msgs(0, 1, 7)
    assert [m.message_id for m in head_burst(CONFIG, buffer)] == [1, 2]
    decision = decide_flush(CONFIG, buffer)
    assert decision is not None
    assert decision.due_at == T0 + timedelta(seconds=6)
    assert decision.reason == REASON_QUIET


def test_rearm_only_when_the_timer_would_fire_late() -> None:
    armed = T0 + timedelta(seconds=5)
    assert must_rearm(armed, armed) is False
    assert must_rearm(armed, armed - timedelta(seconds=1)) is True  # earlier: cap reached
    assert must_rearm(armed, armed + timedelta(seconds=2)) is False  # fire, then re-arm 2 s
    assert must_rearm(armed, armed + timedelta(milliseconds=300)) is True  # 0.3 s would be late
