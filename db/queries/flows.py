"""Flow ownership in groups: which user a thread the bot answers belongs to. Each query
takes a session and never commits: the caller owns the transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.tables import conversation, message


@dataclass(frozen=True)
class Flow:
    owner_user_id: int | None
    last_answered_at: datetime | None


async def load_flow(
    session: AsyncSession, *, account_id: int, chat_id: int, topic_id: int | None
) -> Flow:
    """Who owns the conversation's flow, and when one of its messages was last answered."""
    last_answered = (
        select(func.max(message.c.sent_at))
        .where(
            message.c.conversation_id == conversation.c.id,
            message.c.burst_id.is_not(None),
        )
        .scalar_subquery()
    )
    stmt = select(conversation.c.owner_user_id, last_answered).where(
        conversation.c.account_id == account_id,
        conversation.c.chat_id == chat_id,
        conversation.c.topic_id.is_not_distinct_from(topic_id),
    )
    row = (await session.execute(stmt)).first()
    return Flow(row[0], row[1]) if row else Flow(None, None)


async def set_flow_owner(
    session: AsyncSession,
    *,
    account_id: int,
    chat_id: int,
    topic_id: int | None,
    owner_user_id: int,
) -> None:
    await session.execute(
        update(conversation)
        .where(
            conversation.c.account_id == account_id,
            conversation.c.chat_id == chat_id,
            conversation.c.topic_id.is_not_distinct_from(topic_id),
        )
        .values(owner_user_id=owner_user_id)
    )
