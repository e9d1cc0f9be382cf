"""The debounce policy: which burst a message joins, when a burst flushes, and why.
Pure functions only; the workflow applies them.

Deadlines are absolute times computed from what the buffer holds, never from "now", so
the workflow can tell whether a change moved the deadline earlier (wake up) or later
(let the armed timer fire and re-arm).

A message's burst is decided when it arrives: it joins the open burst if that burst was
not yet due, else it opens the next one. So a timer the worker runs late never merges a
message into a burst that was already over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from workflows.payloads import BufferedMessage, ConversationConfig

REASON_QUIET = "quiet"
REASON_MAX_WAIT = "max_wait"
REASON_MAX_MESSAGES = "max_messages"
REASON_MAX_CHARS = "max_chars"
REASON_UNBUFFERED = "unbuffered"
REASON_COMMAND = "command"
REASON_MANUAL = "manual"
REASON_CLEARED = "cleared"

CANCEL = "cancel"
# Temporal fires timers shorter than this at about this long, so never leave one that short.
MIN_PRECISE_TIMER = timedelta(seconds=1)


# A message's accepted time is trusted up to this far back (and never ahead of the
# workflow's clock): it covers the seam and the signal's trip, not a listener that retried
# through an outage, whose message would otherwise open and close a burst in one go.
MAX_ARRIVAL_AGE = timedelta(seconds=2)


def arrival_time(
    config: ConversationConfig, now: datetime, accepted_at: datetime | None
) -> datetime:
    """When a message counts as arrived: when the ingest accepted it, within
    ``MAX_ARRIVAL_AGE`` and half the quiet period before ``now``, and never after it."""
    if accepted_at is None:
        return now
    max_age = min(MAX_ARRIVAL_AGE, timedelta(seconds=config.debounce_seconds / 2))
    return min(now, max(accepted_at, now - max_age))


@dataclass(frozen=True)
class FlushDecision:
    due_at: datetime
    reason: str
    # Human wording of the rule that set the deadline, used as the timer summary in the UI.
    rule: str


# A burst's messages sit together in the buffer, bursts in order (a message joins the
# newest burst or opens the next; superseded messages rejoin the head burst at the front),
# so the head and tail bursts are read from the ends: a message's admission costs its
# burst's length, not the buffer's (a chat's backlog behind a slow burst can be long).


def head_burst(buffer: list[BufferedMessage]) -> list[BufferedMessage]:
    """The oldest burst in the buffer (the one to flush next)."""
    if not buffer:
        return []
    first, end = buffer[0].burst_seq, 1
    while end < len(buffer) and buffer[end].burst_seq == first:
        end += 1
    return buffer[:end]


def tail_burst(buffer: list[BufferedMessage]) -> list[BufferedMessage]:
    """The newest burst in the buffer (the one new messages and typing may extend)."""
    if not buffer:
        return []
    last, start = buffer[-1].burst_seq, len(buffer) - 1
    while start > 0 and buffer[start - 1].burst_seq == last:
        start -= 1
    return buffer[start:]


def decide_flush(
    config: ConversationConfig,
    burst: list[BufferedMessage],
    lease_until: datetime | None = None,
    command_after: datetime | None = None,
) -> FlushDecision | None:
    """When ``burst`` is due, and why. ``lease_until`` is the author's typing lease;
    ``command_after`` is when a command arrived after this burst (it flushes the burst)."""
    if not burst:
        return None
    first = min(m.received_at for m in burst)
    last = max(m.active_at for m in burst)
    if burst[0].command is not None:
        return FlushDecision(first, REASON_COMMAND, "command")
    if command_after is not None:
        return FlushDecision(min(command_after, last), REASON_COMMAND, "command")
    if not config.buffer_enabled:
        return FlushDecision(first, REASON_UNBUFFERED, "unbuffered")
    if len(burst) >= config.max_burst_messages:
        # The message that reached the cap is due at the moment it arrived: flush at once.
        return FlushDecision(last, REASON_MAX_MESSAGES, "max messages")
    if sum(m.chars for m in burst) >= config.max_burst_chars:
        return FlushDecision(last, REASON_MAX_CHARS, "max characters")
    due, rule = last + timedelta(seconds=config.debounce_seconds), "quiet period"
    if lease_until is not None and lease_until > due:
        due, rule = lease_until, "typing lease"
    max_wait_end = first + timedelta(seconds=config.max_wait_seconds)
    if due > max_wait_end:
        return FlushDecision(max_wait_end, REASON_MAX_WAIT, "max wait")
    return FlushDecision(due, REASON_QUIET, rule)


def burst_seq_for(
    config: ConversationConfig,
    buffer: list[BufferedMessage],
    lease_until: datetime | None,
    arrived_at: datetime,
    *,
    command: bool = False,
    join_until_due: bool = False,
) -> int:
    """The burst a message arriving now joins: the open one, or a new one after it.
    A command is always a burst of its own.

    With ``join_until_due`` (the lull-2026-12-promises rule) a message joins the open
    burst whenever it arrives before that burst is due, also when the max wait set the
    due time; before it, a burst whose deadline the max wait capped took no more, so a
    message that came before the cap (or a voice note recorded under a long typing
    lease) split the burst and its first part was answered alone."""
    tail = tail_burst(buffer)
    if not tail:
        return 0
    open_seq = tail[0].burst_seq
    if command or tail[0].command is not None:
        return open_seq + 1
    decision = decide_flush(config, tail, lease_until)
    assert decision is not None
    joinable = (REASON_QUIET, REASON_MAX_WAIT) if join_until_due else (REASON_QUIET,)
    if decision.reason not in joinable or arrived_at >= decision.due_at:
        # A burst at a cap, unbuffered or already due takes no more.
        return open_seq + 1
    return open_seq


def lease_after_message(
    buffer: list[BufferedMessage], lease_until: datetime | None, *, seq: int, sender_id: int
) -> datetime | None:
    """The typing lease once a message joins burst ``seq``: a new burst starts with none,
    and the open burst's author sending ends their typing."""
    tail = tail_burst(buffer)
    if not tail or tail[0].burst_seq != seq or tail[0].sender_id == sender_id:
        return None
    return lease_until


def command_after(buffer: list[BufferedMessage], burst_seq: int) -> datetime | None:
    """When the first command after burst ``burst_seq`` arrived, if one did."""
    return next(
        (m.received_at for m in buffer if m.burst_seq > burst_seq and m.command is not None),
        None,
    )


def extend_lease(
    config: ConversationConfig,
    buffer: list[BufferedMessage],
    lease_until: datetime | None,
    *,
    sender_id: int,
    action: str,
    at: datetime,
) -> datetime | None:
    """The typing lease after a chat action. Only the open burst's author extends it;
    with nothing buffered typing starts nothing; a cancel ends the lease at once."""
    tail = tail_burst(buffer)
    if not tail or tail[0].sender_id != sender_id:
        return lease_until
    return lease_after_action(config, lease_until, action=action, at=at)


def lease_after_action(
    config: ConversationConfig, lease_until: datetime | None, *, action: str, at: datetime
) -> datetime | None:
    """A typing lease once its holder acted at ``at``: a cancel ends it, any other action
    holds it for that action's window (never shortening it)."""
    if action == CANCEL:
        return None
    window = config.typing_windows.get(action, config.typing_window_seconds)
    until = at + timedelta(seconds=window)
    return until if lease_until is None or until > lease_until else lease_until


def must_rearm(
    armed_due: datetime,
    new_due: datetime,
    *,
    now: datetime | None = None,
    keep_only_with: timedelta | None = None,
) -> bool:
    """Whether a changed deadline needs the armed timer replaced now: an earlier one, one
    later by under ``MIN_PRECISE_TIMER``, and (with ``keep_only_with``, lull-2026-12-timers)
    one whose timer has less than that left; never a timer already due at ``now``, whose
    fire is on its way. Why: docs/decisions/0001-keep-armed-timers.md."""
    if new_due == armed_due:
        return False
    if keep_only_with is not None and now is not None and armed_due <= now:
        return False
    if new_due < armed_due or new_due - armed_due < MIN_PRECISE_TIMER:
        return True
    return keep_only_with is not None and now is not None and armed_due - now < keep_only_with


def keep_armed_for(config: ConversationConfig) -> timedelta:
    """How long an armed timer must still have to run for a later deadline to leave it:
    half a quiet period (docs/decisions/0001-keep-armed-timers.md)."""
    return timedelta(seconds=config.debounce_seconds / 2)
