"""The typing gate: which chat actions are signalled, and when.

The property test checks the point of it: a conversation told only what the gate lets
through (with each action's age) flushes at exactly the moments it would if it were told
every action at once, edits included.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from inbound.typing_gate import Hold, Send, TypingGate
from workflows.payloads import ConversationConfig

CHAT = (77, None)
AUTHOR, OTHER = 5, 6


def gate(debounce: float = 5, typing: float = 6, lead: float = 1.0, **windows: float) -> TypingGate:
    config = ConversationConfig(
        debounce, 10, 600, typing_window_seconds=typing, typing_windows=windows
    )
    return TypingGate(config, lead=lead)


def test_typing_in_a_chat_with_no_recent_message_is_dropped() -> None:
    g = gate()
    assert g.action(CHAT, AUTHOR, "typing", 100.0) is None
    g.message(CHAT, AUTHOR, 100.0)
    # max wait 60 + quiet period 5: no burst of the chat can be open any more.
    assert g.action(CHAT, AUTHOR, "typing", 165.0) is None
    assert g.held() == []


def test_typing_after_the_open_bursts_deadline_is_dropped_not_signalled() -> None:
    """Users type before a new burst's first message: the last burst is flushed (or due)
    by then, and a lease could only hold a burst that is already due."""
    g = gate()
    g.message(CHAT, AUTHOR, 100.0)
    assert g.action(CHAT, AUTHOR, "typing", 103.0) == Hold(104.0)
    assert g.action(CHAT, AUTHOR, "typing", 105.0) is None
    assert g.held() == []
    assert g.due(CHAT, AUTHOR, 105.0) is None
    # A lease that was sent moves the deadline: typing before its end still counts.
    g.message(CHAT, AUTHOR, 200.0)
    g.action(CHAT, AUTHOR, "typing", 203.5)
    assert g.due(CHAT, AUTHOR, 204.0) == Send("typing", 0.5)  # lease to 209.5
    assert g.action(CHAT, AUTHOR, "typing", 208.0) == Hold(208.5)
    assert g.action(CHAT, AUTHOR, "typing", 209.5) is None


def test_an_edit_or_delete_restarts_the_deadline_the_gate_holds_typing_against() -> None:
    g = gate()
    g.message(CHAT, AUTHOR, 100.0)
    g.action(CHAT, AUTHOR, "typing", 101.0)
    g.touched(CHAT, 103.0)  # the workflow's quiet period now ends at 108
    assert g.held() == [(CHAT, AUTHOR)]
    assert g.due(CHAT, AUTHOR, 104.0) == Hold(107.0)
    assert g.action(CHAT, AUTHOR, "typing", 106.0) == Hold(107.0)
    # An edit never brings the deadline back.
    g.touched(CHAT, 102.0)
    assert g.due(CHAT, AUTHOR, 106.5) == Hold(107.0)


def test_typing_is_held_until_lead_before_the_quiet_period_ends_and_a_message_drops_it() -> None:
    g = gate()
    g.message(CHAT, AUTHOR, 100.0)
    assert g.action(CHAT, AUTHOR, "typing", 101.0) == Hold(104.0)
    assert g.due(CHAT, AUTHOR, 103.9) == Hold(104.0)
    g.message(CHAT, AUTHOR, 102.0)
    assert g.held() == []
    assert g.due(CHAT, AUTHOR, 106.0) is None


def test_a_held_action_is_sent_with_its_age_when_due() -> None:
    g = gate()
    g.message(CHAT, AUTHOR, 100.0)
    g.action(CHAT, AUTHOR, "typing", 101.0)
    assert g.due(CHAT, AUTHOR, 104.0) == Send("typing", 3.0)
    # The lease it sent (to 107) is now the deadline: the next typing is held against it.
    assert g.action(CHAT, AUTHOR, "typing", 105.0) == Hold(106.0)


def test_another_senders_message_does_not_drop_a_held_action() -> None:
    g = gate()
    g.message(CHAT, AUTHOR, 100.0)
    g.action(CHAT, AUTHOR, "typing", 101.0)
    g.message(CHAT, OTHER, 101.5)
    assert g.held() == [(CHAT, AUTHOR)]
    assert g.due(CHAT, AUTHOR, 105.5) == Send("typing", 4.5)


def test_a_lease_shorter_than_the_quiet_period_is_never_sent() -> None:
    g = gate(debounce=5, typing=2)
    g.message(CHAT, AUTHOR, 100.0)
    g.action(CHAT, AUTHOR, "typing", 101.0)  # lease to 103, the quiet period to 105
    assert g.due(CHAT, AUTHOR, 104.0) is None


def test_a_longer_window_wins_over_a_later_shorter_one() -> None:
    g = gate(record_audio=30)
    g.message(CHAT, AUTHOR, 100.0)
    g.action(CHAT, AUTHOR, "record_audio", 101.0)  # to 131
    g.action(CHAT, AUTHOR, "typing", 102.0)  # to 108: keeps the recording
    assert g.due(CHAT, AUTHOR, 104.0) == Send("record_audio", 3.0)


def test_cancel_forgets_a_held_action_and_ends_a_sent_lease_at_once() -> None:
    g = gate()
    g.message(CHAT, AUTHOR, 100.0)
    g.action(CHAT, AUTHOR, "typing", 101.0)
    assert g.action(CHAT, AUTHOR, "cancel", 101.5) is None
    assert g.held() == []
    g.action(CHAT, AUTHOR, "typing", 103.5)
    assert g.due(CHAT, AUTHOR, 104.0) == Send("typing", 0.5)
    assert g.action(CHAT, AUTHOR, "cancel", 105.0) == Send("cancel", 0.0)
    assert g.action(CHAT, AUTHOR, "cancel", 105.5) is None


def test_a_short_quiet_period_caps_the_lead_at_a_quarter_of_it() -> None:
    g = gate(debounce=1.0, typing=1.5, lead=1.0)
    g.message(CHAT, AUTHOR, 100.0)
    assert g.action(CHAT, AUTHOR, "typing", 100.1) == Hold(100.75)


# -- the property --------------------------------------------------------------------------
DEBOUNCE, WINDOW, LEAD = 5.0, 6.0, 1.0

events = st.lists(
    st.tuples(
        st.floats(min_value=0.05, max_value=8.0),  # gap before the event
        st.sampled_from(["message", "typing", "typing", "cancel", "edit"]),
    ),
    min_size=1,
    max_size=30,
)


class Conversation:
    """The workflow's deadline rules for one author: a message restarts the quiet period
    and ends the lease; an action extends the lease from when it was seen; cancel ends it."""

    def __init__(self) -> None:
        self.last: float | None = None
        self.lease: float | None = None
        self.flushes: list[float] = []

    def deadline(self) -> float | None:
        if self.last is None:
            return None
        return max(self.last + DEBOUNCE, self.lease or 0.0)

    def advance(self, now: float) -> None:
        due = self.deadline()
        if due is not None and due <= now:
            self.flushes.append(round(due, 6))
            self.last = self.lease = None

    def message(self, now: float) -> None:
        self.advance(now)
        self.last, self.lease = now, None

    def edit(self, now: float) -> None:
        """An edit (or delete) of a buffered message restarts the quiet period."""
        self.advance(now)
        if self.last is not None:
            self.last = now

    def action(self, action: str, seen_at: float, now: float) -> None:
        self.advance(now)
        if self.last is None:
            return
        if action == "cancel":
            self.lease = None
        else:
            self.lease = max(self.lease or 0.0, seen_at + WINDOW)


@settings(max_examples=300, deadline=None)
@given(events)
def test_a_conversation_told_only_what_the_gate_lets_through_flushes_at_the_same_moments(
    script: list[tuple[float, str]],
) -> None:
    told_all, told_gated = Conversation(), Conversation()
    g = gate(DEBOUNCE, WINDOW, LEAD)
    hold_at: float | None = None
    now = 0.0

    def release_until(t: float) -> None:
        nonlocal hold_at
        while hold_at is not None and hold_at <= t:
            at, hold_at = hold_at, None
            apply(g.due(CHAT, AUTHOR, at), at)

    def apply(decision: Hold | Send | None, at: float) -> None:
        nonlocal hold_at
        if isinstance(decision, Hold):
            hold_at = decision.fire_at
        elif isinstance(decision, Send):
            told_gated.action(decision.action, at - decision.age, at)

    for gap, kind in script:
        now += gap
        release_until(now)
        if kind == "message":
            told_all.message(now)
            told_gated.message(now)
            g.message(CHAT, AUTHOR, now)
            hold_at = None
        elif kind == "edit":
            told_all.edit(now)
            told_gated.edit(now)
            if told_gated.last == now:  # the ingest signals only a buffered message's edit
                g.touched(CHAT, now)
        else:
            told_all.action(kind, now, now)
            hold_at = None
            apply(g.action(CHAT, AUTHOR, kind, now), now)
    release_until(now + 120)
    told_all.advance(now + 120)
    told_gated.advance(now + 120)
    assert told_gated.flushes == told_all.flushes
