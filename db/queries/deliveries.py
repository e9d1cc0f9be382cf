"""What the Telegram listener looks up while mapping updates: our own sent messages, chats
in generation. Each query takes a session and never commits: the caller owns the
transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.tables import burst, conversation, delivery, message, reply

# Telethon's marked ids: channels and supergroups are below this; their message ids are
# per channel, while private chats and basic groups share the account's own numbering.
_CHANNEL_ID_CEILING = -1_000_000_000_000


async def sent_by_us(
    session: AsyncSession, *, account_id: int, chat_id: int, channel_message_id: int
) -> bool:
    """Whether this message of the chat is one of our delivered reply chunks."""
    stmt = (
        select(delivery.c.id)
        .join(reply, reply.c.id == delivery.c.reply_id)
        .join(burst, burst.c.id == reply.c.burst_id)
        .join(conversation, conversation.c.id == burst.c.conversation_id)
        .where(
            conversation.c.account_id == account_id,
            conversation.c.chat_id == chat_id,
            delivery.c.channel_message_id == channel_message_id,
        )
        .limit(1)
    )
    return (await session.execute(stmt)).first() is not None


async def recent_replies(
    session: AsyncSession, *, account_id: int, chat_id: int, since: datetime
) -> list[tuple[int, str, str]]:
    """(reply id, burst key, text) of this chat's replies since ``since``, newest first."""
    stmt = (
        select(reply.c.id, burst.c.burst_key, reply.c.text)
        .join(burst, burst.c.id == reply.c.burst_id)
        .join(conversation, conversation.c.id == burst.c.conversation_id)
        .where(
            conversation.c.account_id == account_id,
            conversation.c.chat_id == chat_id,
            burst.c.flushed_at >= since,
        )
        .order_by(reply.c.id.desc())
    )
    return [(row.id, row.burst_key, row.text) for row in await session.execute(stmt)]


async def record_seen_delivery(
    session: AsyncSession,
    *,
    reply_id: int,
    chunk_index: int,
    random_id: int,
    channel_message_id: int,
) -> None:
    """A chunk of ours seen in Telegram: it is delivered, with this id. Fills the id of a
    delivery stored without one (its retried send was answered RANDOM_ID_DUPLICATE), or
    records the delivery first, so a send still to be retried skips the chunk."""
    stmt = insert(delivery).values(
        reply_id=reply_id,
        chunk_index=chunk_index,
        random_id=random_id,
        channel_message_id=channel_message_id,
    )
    await session.execute(
        stmt.on_conflict_do_update(
            constraint="uq_delivery_chunk",
            set_={"channel_message_id": stmt.excluded.channel_message_id},
            where=delivery.c.channel_message_id.is_(None),
        )
    )


async def generating_in(session: AsyncSession, *, account_id: int, chat_id: int) -> bool:
    """Whether a burst of this chat is being generated, so the listener shows "typing…"
    there itself (channels/telegram/reply_typing.py)."""
    stmt = (
        select(burst.c.id)
        .join(conversation, conversation.c.id == burst.c.conversation_id)
        .where(
            conversation.c.account_id == account_id,
            conversation.c.chat_id == chat_id,
            burst.c.status == "persisted",
        )
        .limit(1)
    )
    return (await session.execute(stmt)).first() is not None


async def chats_of_messages(
    session: AsyncSession, *, account_id: int, message_ids: list[int]
) -> dict[int, list[int]]:
    """For deletes Telegram reports without a chat (private chats, basic groups): which of
    our chats each message id belongs to."""
    stmt = select(message.c.chat_id, message.c.message_id).where(
        message.c.account_id == account_id,
        message.c.message_id.in_(message_ids),
        message.c.chat_id > _CHANNEL_ID_CEILING,
    )
    found: dict[int, list[int]] = {}
    for chat_id, message_id in await session.execute(stmt):
        found.setdefault(chat_id, []).append(message_id)
    return found
