"""Replies and what was sent of them: the LLM context, stored replies, deliveries, send
attempts. Each query takes a session and never commits: the caller owns the transaction."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    Integer,
    Text,
    and_,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by, insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.queries.bursts import burst_by_key
from db.queries.rows import ReplyRow, ReplyToSendRow
from db.tables import burst, delivery, message, reply, send_attempt


async def begin_send_attempt(session: AsyncSession, *, reply_id: int, chunk_index: int) -> float:
    """A send of this chunk starts. An earlier attempt still in flight never got Telegram's
    answer, so it may have been delivered: the first such attempt's start is kept. Returns
    how many seconds ago that was (0: every earlier attempt was answered)."""
    stmt = (
        insert(send_attempt)
        .values(reply_id=reply_id, chunk_index=chunk_index, in_flight_since=func.now())
        .on_conflict_do_update(
            index_elements=[send_attempt.c.reply_id, send_attempt.c.chunk_index],
            set_={
                "unknown_since": func.coalesce(
                    send_attempt.c.unknown_since, send_attempt.c.in_flight_since
                ),
                "in_flight_since": func.now(),
            },
        )
        .returning(
            func.coalesce(func.extract("epoch", func.now() - send_attempt.c.unknown_since), 0)
        )
    )
    return float((await session.execute(stmt)).scalar_one())


async def send_attempt_answered(session: AsyncSession, *, reply_id: int, chunk_index: int) -> None:
    """Telegram refused the attempt: it was not delivered."""
    await session.execute(
        update(send_attempt)
        .where(send_attempt.c.reply_id == reply_id, send_attempt.c.chunk_index == chunk_index)
        .values(in_flight_since=None)
    )


async def recent_turns(
    session: AsyncSession, *, conversation_id: int, epoch: int, before_burst_id: int, limit: int
) -> list[tuple[str, str]]:
    """The last ``limit`` answered bursts of this context as (user text, reply text) pairs."""
    if limit == 0:
        return []
    earlier = (
        select(burst.c.id, reply.c.text.label("reply_text"))
        .join(reply, reply.c.burst_id == burst.c.id)
        .where(
            burst.c.conversation_id == conversation_id,
            burst.c.context_epoch == epoch,
            burst.c.id < before_burst_id,
        )
        .order_by(burst.c.id.desc())
        .limit(limit)
        .subquery()
    )
    user_text = func.string_agg(
        message.c.text, aggregate_order_by(literal("\n", Text), message.c.message_id)
    )
    stmt = (
        select(earlier.c.id, user_text, earlier.c.reply_text)
        .join(message, and_(message.c.burst_id == earlier.c.id, message.c.deleted_at.is_(None)))
        .group_by(earlier.c.id, earlier.c.reply_text)
        .order_by(earlier.c.id)
    )
    return [(row[1], row[2]) for row in await session.execute(stmt)]


async def load_reply(session: AsyncSession, burst_id: int) -> ReplyRow | None:
    stmt = select(reply).where(reply.c.burst_id == burst_id)
    return cast(ReplyRow | None, (await session.execute(stmt)).one_or_none())


async def insert_reply(session: AsyncSession, **values: Any) -> int | None:
    """Store the reply; ``None`` when a reply for this burst was stored first by another attempt."""
    stmt = (
        insert(reply)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[reply.c.burst_id])
        .returning(reply.c.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def reply_to_send(session: AsyncSession, burst_key: str) -> ReplyToSendRow | None:
    """The burst (as ``load_burst``), its reply's ``reply_id`` and ``reply_text`` (``None``
    without one) and the chunk indexes already ``delivered``, in one round trip: the send
    path reads all of it before its first send call."""
    delivered = (
        select(func.coalesce(func.array_agg(delivery.c.chunk_index), literal([], ARRAY(Integer))))
        .where(delivery.c.reply_id == reply.c.id)
        .scalar_subquery()
    )
    stmt = burst_by_key(
        burst_key,
        reply.c.id.label("reply_id"),
        reply.c.text.label("reply_text"),
        delivered.label("delivered"),
    ).outerjoin(reply, reply.c.burst_id == burst.c.id)
    return cast(ReplyToSendRow | None, (await session.execute(stmt)).one_or_none())


async def insert_delivery(
    session: AsyncSession,
    *,
    reply_id: int,
    chunk_index: int,
    random_id: int,
    channel_message_id: int | None,
) -> None:
    stmt = (
        insert(delivery)
        .values(
            reply_id=reply_id,
            chunk_index=chunk_index,
            random_id=random_id,
            channel_message_id=channel_message_id,
        )
        .on_conflict_do_nothing()
    )
    await session.execute(stmt)
