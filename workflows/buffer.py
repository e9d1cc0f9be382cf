"""How signals change a conversation's buffer: pure functions of the buffer, the message
and the time (the workflow passes ``workflow.now()``), testable on their own."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from workflows.payloads import BufferedMessage, ConversationConfig, MessageReceived
from workflows.policy import burst_seq_for, head_burst, lease_after_message


def admitted(
    config: ConversationConfig,
    buffer: list[BufferedMessage],
    lease_until: datetime | None,
    msg: MessageReceived,
    arrived_at: datetime,
    *,
    join_until_due: bool,
) -> tuple[list[BufferedMessage], datetime | None]:
    """(buffer, typing lease) once ``msg`` joined its burst (``policy.burst_seq_for``)."""
    seq = burst_seq_for(
        config,
        buffer,
        lease_until,
        arrived_at,
        command=msg.command is not None,
        join_until_due=join_until_due,
    )
    lease = lease_after_message(buffer, lease_until, seq=seq, sender_id=msg.sender_id)
    message = BufferedMessage(
        msg.message_id, msg.sender_id, msg.chars, arrived_at, burst_seq=seq, command=msg.command
    )
    return [*buffer, message], lease


def edited(
    buffer: list[BufferedMessage], message_id: int, chars: int, now: datetime
) -> list[BufferedMessage]:
    """The buffer once ``message_id`` has its new length; its burst's quiet period restarts."""
    return [
        replace(m, chars=chars, touched_at=now) if m.message_id == message_id else m for m in buffer
    ]


def without(
    buffer: list[BufferedMessage], message_ids: list[int], now: datetime
) -> list[BufferedMessage] | None:
    """The buffer once deleted messages leave it (what is left of their bursts restarts its
    quiet period), or None when none of them was buffered."""
    gone = set(message_ids)
    hit = {m.burst_seq for m in buffer if m.message_id in gone}
    if not hit:
        return None
    return [
        replace(m, touched_at=now) if m.burst_seq in hit else m
        for m in buffer
        if m.message_id not in gone
    ]


def taken(
    buffer: list[BufferedMessage], *, through_seq: int | None
) -> tuple[list[BufferedMessage], list[BufferedMessage]]:
    """(the burst to flush, what stays buffered): the head burst, or with ``through_seq``
    (a clear) every burst up to it."""
    if through_seq is not None:
        batch = [m for m in buffer if m.burst_seq <= through_seq]
    else:
        batch = head_burst(buffer)
    # Later arrivals stay buffered and become the next burst.
    return batch, buffer[len(batch) :]
