"""Which chat actions (typing, recording, uploading) are worth a signal, and when: only
one that can still move a burst's deadline, sent shortly before that deadline with its
age (docs/decisions/0003-typing-gate.md). Pure bookkeeping on a clock the caller passes
in; the seam does the signalling (inbound/typing_signals.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from workflows.payloads import ConversationConfig
from workflows.policy import CANCEL

# Chats remembered before the expired ones are forgotten.
CHATS_KEPT = 10_000

# (chat id, topic id): a conversation of the account.
ChatKey = tuple[int, int | None]


def landing_room(config: ConversationConfig) -> float:
    """How long before a deadline the ingest lets a signal it held go, so it lands before
    the timer: a quarter of the quiet period. The signal linger's margin, and the cap on
    this gate's lead."""
    return config.debounce_seconds / 4


@dataclass(frozen=True)
class Hold:
    """Ask again (``due``) at ``fire_at``; the author's message may make it moot."""

    fire_at: float


@dataclass(frozen=True)
class Send:
    """Signal ``action`` now, ``age`` seconds after it was seen."""

    action: str
    age: float


@dataclass
class _Held:
    action: str
    seen_at: float
    lease_until: float


@dataclass
class _Chat:
    # When the chat's quiet period last restarted: a message, or an edit or delete of a
    # buffered one.
    quiet_from: float
    # The end of the lease the workflow was last told of (by the ingest's clock).
    lease_until: float = 0.0


class TypingGate:
    def __init__(self, config: ConversationConfig, *, lead: float) -> None:
        self._config = config
        # The lead scales with quiet periods under 4 s, as the signal linger's margin does:
        # a scaled-down debounce is a scaled-down conversation, and a lead fixed at 1 s
        # would signal the typing of nearly every message of a 2 s one.
        self._lead = min(lead, landing_room(config))
        # A chat is forgotten this long after its quiet period last restarted: no burst of
        # it can be open any more (max wait + quiet period).
        self._open_for = config.max_wait_seconds + config.debounce_seconds
        self._chats: dict[ChatKey, _Chat] = {}
        self._held: dict[tuple[ChatKey, int], _Held] = {}

    def use_config(self, config: ConversationConfig) -> None:
        """The account's settings changed (Ingestor.reconfigure)."""
        self._config = config

    def message(self, chat: ChatKey, sender_id: int, now: float) -> None:
        """A message was signalled: its author's held action is moot."""
        entry = self._chats.get(chat)
        if entry is None:
            self._chats[chat] = entry = _Chat(now)
            self._forget_expired(now)
        entry.quiet_from = now
        # The workflow ends the lease when the author writes or a new burst opens. Forget
        # it for any sender: underestimating the deadline only fires a hold early.
        entry.lease_until = 0.0
        self._held.pop((chat, sender_id), None)

    def touched(self, chat: ChatKey, now: float) -> None:
        """A buffered message was edited or deleted: the workflow restarts its burst's quiet
        period, so the deadline moves on as for a message; held actions stay held."""
        entry = self._chats.get(chat)
        if entry is not None:
            entry.quiet_from = max(entry.quiet_from, now)

    def action(self, chat: ChatKey, sender_id: int, action: str, now: float) -> Hold | Send | None:
        """What to do with a chat action seen ``now``: send it, hold it, or drop it (None).
        A newer action replaces a held one unless the held one's lease ends later."""
        entry = self._chats.get(chat)
        if entry is None or now >= self._deadline(entry):
            # No burst of this chat is open: the last one's deadline passed, so it is
            # flushed or flushing, and typing with nothing buffered starts nothing. (Users
            # type before a new burst's first message too: signalled, that typing was a
            # workflow task spent on nothing.) A lease that comes after the deadline would
            # only hold a burst already due, as a message that comes after it starts a new
            # burst instead of joining.
            self._held.pop((chat, sender_id), None)
            return None
        if action == CANCEL:
            self._held.pop((chat, sender_id), None)
            if entry.lease_until > now:
                entry.lease_until = now
                return Send(CANCEL, 0.0)
            # A held action's lease was never sent: forgetting it is the whole cancel.
            return None
        window = self._config.typing_windows.get(action, self._config.typing_window_seconds)
        lease_until = now + window
        held = self._held.get((chat, sender_id))
        if held is None or lease_until >= held.lease_until:
            self._held[(chat, sender_id)] = _Held(action, now, lease_until)
        return self.due(chat, sender_id, now)

    def due(self, chat: ChatKey, sender_id: int, now: float) -> Send | Hold | None:
        """The held action's fate now: send it (its time came), hold it on (until
        ``lead`` before the known deadline, which may have moved), or None (moot)."""
        held = self._held.get((chat, sender_id))
        entry = self._chats.get(chat)
        if held is None or entry is None:
            return None
        fire_at = self._deadline(entry) - self._lead
        if fire_at > now:
            return Hold(fire_at)
        del self._held[(chat, sender_id)]
        if held.lease_until <= self._deadline(entry):
            return None  # the workflow already holds the burst at least this long
        entry.lease_until = held.lease_until
        return Send(held.action, now - held.seen_at)

    def held(self) -> list[tuple[ChatKey, int]]:
        """(chat, sender) of every held action."""
        return list(self._held)

    def _deadline(self, entry: _Chat) -> float:
        return max(entry.quiet_from + self._config.debounce_seconds, entry.lease_until)

    def _forget_expired(self, now: float) -> None:
        if len(self._chats) <= CHATS_KEPT:
            return
        expired = {k for k, c in self._chats.items() if now - c.quiet_from >= self._open_for}
        self._chats = {k: c for k, c in self._chats.items() if k not in expired}
        self._held = {k: h for k, h in self._held.items() if k[0] not in expired}
