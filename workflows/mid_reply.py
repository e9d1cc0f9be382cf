"""What a message from a burst's author does while the burst's reply is on the way (the
supersede release). Pure functions and a small state holder; the workflow applies them.

Between a burst's flush and its reply's first chunk, a message from the burst's author
makes the reply stale: it answers what the user said before they said more. With
``mid_reply`` "supersede" the burst is superseded: its LLM call is cancelled or its
reply discarded, and its messages rejoin the buffer ahead of the new one, so the next
reply answers all of them, in order. Bounds keep a user who never pauses answered: a
burst whose first message has waited the max wait is kept, and so is one after
``max_supersedes`` supersedes in a row. Commands never supersede and are never superseded.

With ``hold_reply_while_typing``, a reply ready while its author is typing waits for the
typing lease (never past the max wait), so the bot does not talk over the user.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from workflows.payloads import BufferedMessage, ConversationConfig
from workflows.policy import (
    REASON_MAX_CHARS,
    REASON_MAX_MESSAGES,
    REASON_QUIET,
    head_burst,
    lease_after_action,
)

SUPERSEDE = "supersede"
QUEUE = "queue"


@dataclass(frozen=True)
class MidReplyVerdict:
    supersede: bool
    # Which rule decided, as the burst row and the UI say it.
    rule: str
    # The rule as a metric label: "superseded", "cap", "max_wait" or "max_supersedes".
    kind: str = "superseded"


def author_wrote(buffer: list[BufferedMessage], authors: frozenset[int]) -> bool:
    """Whether what arrived since the flush holds a message that may supersede: one of the
    burst's authors', not a command, in a burst that is not a command. Only the head
    burst counts: the superseded messages rejoin it, and bursts flush in order."""
    head = head_burst(buffer)
    if not head or head[0].command is not None:
        return False
    return any(m.sender_id in authors for m in head)


def verdict(
    config: ConversationConfig,
    *,
    first_at: datetime,
    now: datetime,
    in_row: int,
    reason: str = REASON_QUIET,
) -> MidReplyVerdict:
    """Supersede, or keep the reply because a bound says so. A burst its cap closed stays
    closed: merged with what came next it would be over the cap."""
    if reason in (REASON_MAX_MESSAGES, REASON_MAX_CHARS):
        return MidReplyVerdict(False, "kept: burst at its cap", "cap")
    if now >= first_at + timedelta(seconds=config.max_wait_seconds):
        return MidReplyVerdict(False, "kept: max wait reached", "max_wait")
    if in_row >= config.max_supersedes:
        return MidReplyVerdict(False, f"kept: {in_row} supersedes in a row", "max_supersedes")
    return MidReplyVerdict(True, f"superseded ({in_row + 1} of {config.max_supersedes})")


def rejoined(batch: list[BufferedMessage], buffer: list[BufferedMessage]) -> list[BufferedMessage]:
    """The buffer once a superseded burst's messages rejoin it: at its front, in its head
    burst. They keep their arrival times, so the max wait still counts from the first.
    If the message that superseded them was deleted meanwhile, they stand alone again."""
    if not buffer:
        return list(batch)
    seq = buffer[0].burst_seq
    return [replace(m, burst_seq=seq) for m in batch] + buffer


def hold_until(
    config: ConversationConfig,
    typing_until: datetime | None,
    *,
    first_at: datetime,
    now: datetime,
) -> datetime | None:
    """Until when a ready reply waits for its typing author: the typing lease, never past
    the max wait; None when it goes now."""
    if not config.hold_reply_while_typing or typing_until is None:
        return None
    until = min(typing_until, first_at + timedelta(seconds=config.max_wait_seconds))
    return until if until > now else None


@dataclass
class Flight:
    """A burst between its flush and its reply's first chunk, watched for its authors'
    messages and typing. ``buffer`` reads the conversation's buffer (what arrived since)."""

    config: ConversationConfig
    buffer: Callable[[], list[BufferedMessage]]
    authors: frozenset[int]
    first_at: datetime
    # Supersedes in a row before this burst (the bound).
    in_row: int
    # Why it flushed: a burst its cap closed is never superseded.
    reason: str
    # Whether a message of an author may supersede it (mode "supersede", not a command);
    # off once a bound kept it.
    watching: bool
    # The authors' typing lease: a ready reply waits for it.
    typing_until: datetime | None = None
    # Bumped on each typing change, so a hold wakes to re-read the lease.
    typing_changes: int = 0

    def interrupted(self) -> bool:
        """Whether an author wrote something that may supersede the reply."""
        return self.watching and author_wrote(self.buffer(), self.authors)

    def decide(self, now: datetime) -> MidReplyVerdict:
        """Supersede or keep, once interrupted; a kept burst is watched no more."""
        decided = verdict(
            self.config, first_at=self.first_at, now=now, in_row=self.in_row, reason=self.reason
        )
        if not decided.supersede:
            self.watching = False
        return decided

    def hold_until(self, now: datetime) -> datetime | None:
        return hold_until(self.config, self.typing_until, first_at=self.first_at, now=now)

    def typed(self, *, sender_id: int, action: str, at: datetime) -> None:
        """A chat action; only the burst's authors' count."""
        if sender_id not in self.authors:
            return
        self.typing_until = lease_after_action(self.config, self.typing_until, action=action, at=at)
        self.typing_changes += 1

    def wrote(self, sender_id: int) -> None:
        """An author's message ends their typing, as it ends a burst's typing lease."""
        if sender_id in self.authors and self.typing_until is not None:
            self.typing_until = None
            self.typing_changes += 1
