"""How long a message's signal may wait at the seam for the next message of its burst.

Each message signal costs the server a history write and the conversation a workflow task
and a re-armed timer: about six history events. A burst's messages come a second or so
apart, so the in-flight batching of ``SignalBatches`` seldom joins them. The seam may
hold a message's signal a little while (the linger) for the burst's next message: its
quiet period runs from when the seam accepted it (``MessageReceived.accepted_at``), so
the burst flushes when it would have, and the reply is no later.

A signal is not held where holding it could change the answer or its timing:
- the first message after a lull goes at once: it starts the conversation and its timer,
  and a message on its own gains nothing from waiting;
- a command, or a message that takes its burst to a cap (``max_burst_messages``,
  ``max_burst_chars``), is due on arrival: it goes at once, and takes the held ones along;
- with buffering off every message is due on arrival;
- a hold ends ``margin`` before the earliest deadline the seam knows of (the previous
  message's quiet period, the burst's max wait), so the signal lands before the timer
  that would flush the burst without it.
The linger is at most a quarter of the quiet period and ``MAX_LINGER_SECONDS``: the
workflow trusts an accepted time only so far back (``policy.MAX_ARRIVAL_AGE``, half the
quiet period).

The seam's count of a burst is an estimate (it does not see typing leases or edits). Each
estimate errs early: a hold it ends too soon costs a signal, never a late message.

Pure bookkeeping on a clock the caller passes in, as the typing gate is.
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
