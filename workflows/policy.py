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
# Temporal fires timers shorter than this at about this long, so never leave one that short.
MIN_PRECISE_TIMER = timedelta(seconds=1)
REASON_MAX_MESSAGES = "max_messages"


@dataclass(frozen=True)
class FlushDecision:
    due_at: datetime
    reason: str
    # Human wording of the rule that set the deadline, used as the timer summary in the UI.
    rule: str


def head_burst(config: DebounceConfig, buffer: list[BufferedMessage]) -> list[BufferedMessage]:
    """The burst at the head of the buffer: each message arrived within the quiet period of
    the one before it, and there are at most the cap.

    Cutting at the first full quiet gap in *arrival* times keeps bursts apart even when the
    worker runs the timer late and a later message is already buffered by then.
    """
    burst = buffer[:1]
    quiet = timedelta(seconds=config.debounce_seconds)
    for msg in buffer[1:]:
        if len(burst) >= config.max_burst_messages:
            break
        if msg.received_at >= burst[-1].received_at + quiet:
            break
        burst.append(msg)
    return burst


def decide_flush(config: DebounceConfig, buffer: list[BufferedMessage]) -> FlushDecision | None:
    """When the burst at the head of the buffer is due to flush, or ``None`` if it is empty."""
    burst = head_burst(config, buffer)
    if not burst:
        return None
    last = burst[-1].received_at
    if len(burst) >= config.max_burst_messages:
        # The message that reached the cap is due at the moment it arrived: flush at once.
        return FlushDecision(last, REASON_MAX_MESSAGES, "max messages")
    quiet_end = last + timedelta(seconds=config.debounce_seconds)
    return FlushDecision(quiet_end, REASON_QUIET, "quiet period")


def must_rearm(armed_due: datetime, new_due: datetime) -> bool:
    """Whether a changed deadline needs the armed timer replaced now.

    Earlier: yes, or we would flush late. Later by at least ``MIN_PRECISE_TIMER``: no, the
    armed timer fires first and the loop re-arms for the remainder precisely. Later by
    less: yes, because a sub-second remainder timer would fire up to a second late.
    """
    if new_due == armed_due:
        return False
    return new_due < armed_due or new_due - armed_due < MIN_PRECISE_TIMER
