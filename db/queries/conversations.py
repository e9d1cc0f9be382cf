"""Conversations: one per (account, chat, topic), and their LLM context epoch. Each query
takes a session and never commits: the caller owns the transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningInsert

from db.tables import conversation


def conversation_upsert(**values: Any) -> ReturningInsert[Any]:
    """Insert a conversation, or on a repeat keep its ``last_message_at`` (never moving
    back: a late retry of an old message leaves it); returns its id."""
    new = insert(conversation).values(**values)
    return new.on_conflict_do_update(
        constraint="uq_conversation_chat",
        set_={
            "updated_at": func.now(),
            # greatest() skips NULLs: no message time given leaves the stored one.
            "last_message_at": func.greatest(
                conversation.c.last_message_at, new.excluded.last_message_at
            ),
            "chat_ref": func.coalesce(new.excluded.chat_ref, conversation.c.chat_ref),
        },
    ).returning(conversation.c.id)


async def ensure_conversation(
    session: AsyncSession,
    *,
    account_id: int,
    chat_id: int,
    topic_id: int | None,
    owner_user_id: int | None,
    last_message_at: datetime | None = None,
    chat_ref: str | None = None,
) -> int:
    """The conversation's id, creating it if new, in one statement."""
    stmt = conversation_upsert(
        account_id=account_id,
        chat_id=chat_id,
        topic_id=topic_id,
        owner_user_id=owner_user_id,
        last_message_at=last_message_at,
        chat_ref=chat_ref,
    )
    return (await session.execute(stmt)).scalar_one()


async def context_epoch(session: AsyncSession, conversation_id: int) -> int:
    stmt = select(conversation.c.context_epoch).where(conversation.c.id == conversation_id)
    return int((await session.execute(stmt)).scalar_one())


async def bump_context_epoch(session: AsyncSession, conversation_id: int) -> None:
    """/refresh: later bursts start a new context; earlier history leaves the prompt."""
    await session.execute(
        update(conversation)
        .where(conversation.c.id == conversation_id)
        .values(context_epoch=conversation.c.context_epoch + 1, updated_at=func.now())
    )
