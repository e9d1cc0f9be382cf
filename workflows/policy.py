"""The debounce policy: when does the open burst flush, and why. Pure functions only.

Deadlines are absolute times computed from what the buffer holds, never from "now", so
the workflow can tell whether a new message moved the deadline earlier (wake up) or
later (let the armed timer fire and re-arm; this saves history events per message).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from workflows.payloads import BufferedMessage, DebounceConfig

REASON_QUIET = "quiet"
REASON_MAX_MESSAGES = "max_messages"


@dataclass(frozen=True)
class FlushDecision:
    due_at: datetime
    reason: str
    # Human wording of the rule that set the deadline, used as the timer summary in the UI.
    rule: str


def decide_flush(config: DebounceConfig, buffer: list[BufferedMessage]) -> FlushDecision | None:
    """When the buffered burst is due to flush, or ``None`` for an empty buffer."""
    if not buffer:
        return None
    last = buffer[-1].received_at
    if len(buffer) >= config.max_burst_messages:
        # The message that reached the cap is due at the moment it arrived: flush at once.
        return FlushDecision(last, REASON_MAX_MESSAGES, "max messages")
    quiet_end = last + timedelta(seconds=config.debounce_seconds)
    return FlushDecision(quiet_end, REASON_QUIET, "quiet period")


def take_burst(config: DebounceConfig, buffer: list[BufferedMessage]) -> list[BufferedMessage]:
    """The messages of the next burst: at most the cap, oldest first by arrival."""
    return buffer[: config.max_burst_messages]
