"""The supersede rules as pure functions (workflows/mid_reply.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from workflows.mid_reply import Flight, author_wrote, hold_until, rejoined, verdict
from workflows.payloads import BufferedMessage, ConversationConfig
from workflows.policy import REASON_MAX_CHARS, REASON_MAX_MESSAGES

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
CONFIG = ConversationConfig(
    5, 10, 900, max_wait_seconds=60, mid_reply="supersede", hold_reply_while_typing=True
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def msg(mid: int, sender: int = 7, seq: int = 0, command: str | None = None) -> BufferedMessage:
    return BufferedMessage(mid, sender, 5, at(mid), burst_seq=seq, command=command)


def test_only_an_authors_plain_message_in_the_head_burst_interrupts() -> None:
    authors = frozenset({7})
    assert author_wrote([msg(3)], authors)
    assert not author_wrote([], authors)
    assert not author_wrote([msg(3, sender=8)], authors)  # someone else in the group
    assert not author_wrote([msg(3, command="help")], authors)  # commands never supersede
    # Behind a command, the author's message is not the head burst: bursts flush in order.
    assert not author_wrote([msg(3, command="help"), msg(4, seq=1)], authors)
    assert author_wrote([msg(3, sender=8), msg(4)], authors)


def test_the_bounds_and_the_cap_keep_a_reply_and_say_which_rule() -> None:
    first = at(0)
    assert verdict(CONFIG, first_at=first, now=at(10), in_row=0).rule == "superseded (1 of 2)"
    assert verdict(CONFIG, first_at=first, now=at(10), in_row=1).supersede
    kept = verdict(CONFIG, first_at=first, now=at(10), in_row=2)
    assert (kept.supersede, kept.rule) == (False, "kept: 2 supersedes in a row")
    late = verdict(CONFIG, first_at=first, now=at(60), in_row=0)
    assert (late.supersede, late.rule) == (False, "kept: max wait reached")
    for cap in (REASON_MAX_MESSAGES, REASON_MAX_CHARS):
        capped = verdict(CONFIG, first_at=first, now=at(10), in_row=0, reason=cap)
        assert (capped.supersede, capped.rule) == (False, "kept: burst at its cap")


def test_a_hold_lasts_the_typing_lease_never_past_the_max_wait() -> None:
    assert hold_until(CONFIG, at(20), first_at=at(0), now=at(10)) == at(20)
    assert hold_until(CONFIG, at(90), first_at=at(0), now=at(10)) == at(60)
    assert hold_until(CONFIG, at(5), first_at=at(0), now=at(10)) is None  # lease over
    assert hold_until(CONFIG, None, first_at=at(0), now=at(10)) is None
    off = ConversationConfig(5, 10, 900, hold_reply_while_typing=False)
    assert hold_until(off, at(20), first_at=at(0), now=at(10)) is None


def test_superseded_messages_rejoin_ahead_in_the_head_burst_or_alone() -> None:
    batch = [msg(1), msg(2)]
    merged = rejoined(batch, [msg(3, seq=4), msg(4, seq=5)])
    assert [(m.message_id, m.burst_seq) for m in merged] == [(1, 4), (2, 4), (3, 4), (4, 5)]
    assert merged[0].received_at == at(1)  # the max wait still counts from the first
    # The superseding message was deleted meanwhile: they stand alone again.
    assert rejoined(batch, []) == batch


def test_the_flight_follows_only_its_authors_typing_and_a_message_ends_it() -> None:
    flight = Flight(CONFIG, lambda: [], frozenset({7}), at(0), 0, "quiet", watching=True)
    flight.typed(sender_id=8, action="typing", at=at(1))
    assert (flight.typing_until, flight.typing_changes) == (None, 0)
    flight.typed(sender_id=7, action="typing", at=at(1))
    assert flight.typing_until == at(7)
    flight.typed(sender_id=7, action="record_audio", at=at(2))
    assert flight.typing_until == at(8)  # the default window: no per-action one here
    flight.wrote(7)
    assert flight.typing_until is None and flight.typing_changes == 3
    flight.typed(sender_id=7, action="typing", at=at(3))
    flight.typed(sender_id=7, action="cancel", at=at(4))
    assert flight.typing_until is None
