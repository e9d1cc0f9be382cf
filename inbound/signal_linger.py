"""How long a message's signal may wait at the seam for the next message of its burst, so
the two share one signal (each costs a workflow task and about six history events).

Never past a deadline, never for a burst's first message, a command, a message at a cap,
or with buffering off; at most a quarter of the quiet period and ``MAX_LINGER_SECONDS``.
The quiet period runs from when the seam accepted each message, so no reply is later.
Why and how it was measured: docs/decisions/0002-signal-linger.md. Pure bookkeeping on a
clock the caller passes in, as the typing gate is.
"""

from __future__ import annotations

from dataclasses import dataclass

from inbound.typing_gate import CHATS_KEPT, ChatKey, landing_room
from workflows.payloads import ConversationConfig

MAX_LINGER_SECONDS = 1.0


def default_linger(config: ConversationConfig) -> float:
    """The linger when none is configured: the most the rules above allow."""
    return min(config.debounce_seconds / 4, MAX_LINGER_SECONDS)


@dataclass
class _Run:
    """The chat's messages since its last lull, as far as the seam can tell a burst."""

    started_at: float
    last_at: float
    messages: int = 0
    chars: int = 0


class SignalLinger:
    def __init__(self, config: ConversationConfig, *, linger: float | None = None) -> None:
        """``linger``: as configured (None: the default), capped by the rules above."""
        self._config = config
        most = default_linger(config)
        self._linger = most if linger is None else min(linger, most)
        self._margin = landing_room(config)
        self._runs: dict[ChatKey, _Run] = {}

    def use_config(self, config: ConversationConfig) -> None:
        """The account's settings changed (Ingestor.reconfigure)."""
        self._config = config

    @property
    def linger(self) -> float:
        return self._linger

    def send_by(self, chat: ChatKey, now: float, *, chars: int, command: bool) -> float:
        """When the signal of a message accepted ``now`` must be sent (``now``: at once)."""
        config = self._config
        run = self._runs.get(chat)
        previous: float | None = None
        if run is None or now - run.last_at >= config.debounce_seconds:
            run = self._runs[chat] = _Run(now, now)
            self._forget_lulled(now)
        else:
            previous = run.last_at
        run.last_at = now
        if command:
            # A command is a burst of its own, and ends the one before it.
            self._runs[chat] = _Run(now, now)
            return now
        run.messages += 1
        run.chars += chars
        if run.messages >= config.max_burst_messages or run.chars >= config.max_burst_chars:
            # The burst is due now; the next message opens another.
            self._runs[chat] = _Run(now, now)
            return now
        if previous is None or self._linger <= 0 or not config.buffer_enabled:
            return now
        until = min(
            now + self._linger,
            previous + config.debounce_seconds - self._margin,
            run.started_at + config.max_wait_seconds - self._margin,
        )
        return max(now, until)

    def _forget_lulled(self, now: float) -> None:
        if len(self._runs) <= CHATS_KEPT:
            return
        quiet = self._config.debounce_seconds
        self._runs = {k: r for k, r in self._runs.items() if now - r.last_at < quiet}
