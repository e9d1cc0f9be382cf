"""How signals change a conversation's buffer (workflows/buffer.py), without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from workflows import buffer
from workflows.payloads import BufferedMessage, ConversationConfig, MessageReceived

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
CONFIG = ConversationConfig(2.0, 10, 60)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def admit_all(*arrivals: tuple[int, float, str | None]) -> list[BufferedMessage]:
    buf: list[BufferedMessage] = []
    lease = None
    for message_id, second, command in arrivals:
        msg = MessageReceived(message_id, 7, 5, command)
        buf, lease = buffer.admitted(CONFIG, buf, lease, msg, at(second), join_until_due=True)
    return buf


def test_a_message_before_the_quiet_period_ends_joins_the_burst_and_one_after_opens_the_next() -> (
    None
):
    buf = admit_all((1, 0, None), (2, 1.5, None), (3, 4.0, None))
    assert [m.burst_seq for m in buf] == [0, 0, 1]


def test_a_command_is_a_burst_of_its_own() -> None:
    buf = admit_all((1, 0, None), (2, 0.5, "help"), (3, 0.6, None))
    assert [m.burst_seq for m in buf] == [0, 1, 2]
    assert buf[1].command == "help"


def test_an_edit_changes_the_length_and_restarts_only_its_message() -> None:
    buf = admit_all((1, 0, None), (2, 1, None))
    edited = buffer.edited(buf, 2, 40, at(3))
    assert [(m.chars, m.touched_at) for m in edited] == [(5, None), (40, at(3))]
    assert buffer.edited(buf, 99, 40, at(3)) == buf


def test_a_delete_drops_the_message_and_restarts_what_is_left_of_its_burst() -> None:
    buf = admit_all((1, 0, None), (2, 1, None), (3, 5, None))
    left = buffer.without(buf, [2], at(6))
    assert left is not None
    assert [(m.message_id, m.touched_at) for m in left] == [(1, at(6)), (3, None)]
    assert buffer.without(buf, [42], at(6)) is None


def test_taken_is_the_head_burst_or_with_a_clear_everything_through_its_burst() -> None:
    buf = admit_all((1, 0, None), (2, 1, None), (3, 5, None), (4, 9, None))
    batch, rest = buffer.taken(buf, through_seq=None)
    assert [m.message_id for m in batch] == [1, 2] and [m.message_id for m in rest] == [3, 4]
    batch, rest = buffer.taken(buf, through_seq=1)
    assert [m.message_id for m in batch] == [1, 2, 3] and [m.message_id for m in rest] == [4]
