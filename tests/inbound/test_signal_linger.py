"""The signal linger: which message signals may wait at the seam for the next message of
their burst, and until when. The seam and SignalBatches apply it (test_signal_batches.py)."""

from __future__ import annotations

from typing import Any

import pytest

from inbound.signal_linger import MAX_LINGER_SECONDS, SignalLinger, default_linger
from workflows.payloads import ConversationConfig

CHAT, OTHER_CHAT = (77, None), (78, None)


def linger(
    debounce: float = 2.0, *, value: float | None = None, max_messages: int = 10, **config: Any
) -> SignalLinger:
    cfg = ConversationConfig(debounce, max_messages, 600, **config)
    return SignalLinger(cfg, linger=value)


def test_the_first_message_after_a_lull_goes_at_once_the_next_ones_wait() -> None:
    lg = linger()  # quiet period 2 s: a linger of 0.5 s
    assert lg.send_by(CHAT, 100.0, chars=5, command=False) == 100.0
    assert lg.send_by(CHAT, 100.4, chars=5, command=False) == pytest.approx(100.9)
    assert lg.send_by(OTHER_CHAT, 100.4, chars=5, command=False) == 100.4  # chats apart
    # 2 s of quiet: the burst is over, and the next message is a first again.
    assert lg.send_by(CHAT, 102.4, chars=5, command=False) == 102.4


def test_a_hold_ends_a_quarter_of_the_quiet_period_before_the_deadline_it_could_miss() -> None:
    lg = linger()
    lg.send_by(CHAT, 100.0, chars=5, command=False)
    # The previous message's quiet period ends at 102: the signal must go by 101.5.
    assert lg.send_by(CHAT, 101.2, chars=5, command=False) == pytest.approx(101.5)
    lg.send_by(CHAT, 103.4, chars=5, command=False)
    # Past that point already: at once.
    assert lg.send_by(CHAT, 105.0, chars=5, command=False) == 105.0


def test_a_hold_ends_before_the_bursts_max_wait() -> None:
    lg = linger(4.0, max_wait_seconds=10.0)  # linger 1 s, margin 1 s
    t = 100.0
    lg.send_by(CHAT, t, chars=1, command=False)
    holds = []
    for _ in range(8):
        t += 1.2
        holds.append(lg.send_by(CHAT, t, chars=1, command=False) - t)
    # Max wait ends at 110, so a hold ends by 109: the message at 109.6 goes at once.
    assert holds[:7] == pytest.approx([1.0] * 6 + [109.0 - 108.4])
    assert holds[7] == 0


@pytest.mark.parametrize(
    ("config", "chars"),
    [({"max_messages": 3}, 1), ({"max_burst_chars": 12}, 6)],
    ids=["max messages", "max chars"],
)
def test_the_message_that_takes_a_burst_to_a_cap_goes_at_once(
    config: dict[str, int], chars: int
) -> None:
    lg = linger(**config)
    sent = [lg.send_by(CHAT, 100.0 + i / 10, chars=chars, command=False) for i in range(4)]
    waits = [round(s - (100.0 + i / 10), 3) for i, s in enumerate(sent)]
    if "max_messages" in config:
        assert waits == [0, 0.5, 0, 0.5]  # the 3rd is due on arrival; the 4th opens a burst
    else:
        assert waits == [0, 0, 0.5, 0]  # 12 chars by the 2nd; 12 again by the 4th


def test_a_command_goes_at_once_and_the_message_after_it_may_wait() -> None:
    lg = linger()
    lg.send_by(CHAT, 100.0, chars=5, command=False)
    assert lg.send_by(CHAT, 100.2, chars=5, command=True) == 100.2
    assert lg.send_by(CHAT, 100.4, chars=5, command=False) == pytest.approx(100.9)


def test_nothing_waits_with_buffering_off_or_the_linger_off() -> None:
    for lg in (linger(buffer_enabled=False), linger(value=0.0)):
        lg.send_by(CHAT, 100.0, chars=5, command=False)
        assert lg.send_by(CHAT, 100.3, chars=5, command=False) == 100.3


def test_the_linger_is_at_most_a_quarter_of_the_quiet_period_and_a_second() -> None:
    assert linger(2.0, value=5.0).linger == 0.5
    assert linger(60.0, value=5.0).linger == MAX_LINGER_SECONDS
    assert default_linger(ConversationConfig(5.0, 10, 600)) == 1.0
