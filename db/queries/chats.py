"""Conversations as the admin API browses them: the list (filtered, keyset-paginated by
last activity), one chat, its transcript, and an operator's message recorded as a reply.
Each query takes a session and never commits."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.tables import account, burst, conversation, message, reply

# A chat's last activity: its last message, or its creation for a chat with none yet. The
# list is ordered by it, newest first (index ix_conversation_activity).
ACTIVITY = func.coalesce(conversation.c.last_message_at, conversation.c.created_at)

# The reason of an operator's message, recorded as a burst with no messages of the chat.
OPERATOR_REASON = "operator"


def _has_failed() -> Any:
    """The chat has a failed burst (a column of the list, and its phase=failed filter)."""
    return exists().where(burst.c.conversation_id == conversation.c.id, burst.c.status == "failed")


def _chat_columns() -> tuple[Any, ...]:
    return (
        conversation.c.id,
        conversation.c.account_id,
        account.c.key.label("account_key"),
        conversation.c.chat_id,
        conversation.c.topic_id,
        conversation.c.chat_ref,
        conversation.c.created_at,
        ACTIVITY.label("last_activity"),
        _has_failed().label("has_failed"),
    )


async def list_chats(
    session: AsyncSession,
    *,
    account_id: int | None = None,
    user_id: int | None = None,
    failed: bool = False,
    chat_refs: Collection[str] | None = None,
    active_since: datetime | None = None,
    active_before: datetime | None = None,
    after: tuple[datetime, int] | None = None,
    limit: int = 50,
) -> list[Any]:
    """One page, newest activity first; ``after`` is the (activity, id) of the last row of
    the previous page. ``chat_refs`` narrows to those chats (a phase from Temporal)."""
    stmt = (
        select(*_chat_columns())
        .join(account, account.c.id == conversation.c.account_id)
        .where(account.c.deleted_at.is_(None))
        .order_by(ACTIVITY.desc(), conversation.c.id.desc())
        .limit(limit)
    )
    if account_id is not None:
        stmt = stmt.where(conversation.c.account_id == account_id)
    if user_id is not None:
        # A private chat is its user's; in a group, a user is in it once they wrote.
        wrote = exists().where(
            message.c.conversation_id == conversation.c.id, message.c.sender_id == user_id
        )
        stmt = stmt.where(or_(conversation.c.chat_id == user_id, wrote))
    if failed:
        stmt = stmt.where(_has_failed())
    if chat_refs is not None:
        stmt = stmt.where(conversation.c.chat_ref.in_(list(chat_refs)))
    if active_since is not None:
        stmt = stmt.where(active_since <= ACTIVITY)
    if active_before is not None:
        stmt = stmt.where(active_before > ACTIVITY)
    if after is not None:
        stmt = stmt.where(tuple_(ACTIVITY, conversation.c.id) < tuple_(*after))
    return list(await session.execute(stmt))


async def get_chat(session: AsyncSession, conversation_id: int) -> Any:
    stmt = (
        select(*_chat_columns(), account.c.active.label("account_active"))
        .join(account, account.c.id == conversation.c.account_id)
        .where(conversation.c.id == conversation_id, account.c.deleted_at.is_(None))
    )
    return (await session.execute(stmt)).one_or_none()


async def transcript(
    session: AsyncSession, conversation_id: int, *, before: int | None, limit: int
) -> dict[str, Any]:
    """The last ``limit`` messages (before the message row ``before``), oldest first, and
    the bursts that took them or were sent among them (operator messages), with replies."""
    page = (
        select(message)
        .where(message.c.conversation_id == conversation_id)
        .order_by(message.c.id.desc())
        .limit(limit)
    )
    if before is not None:
        page = page.where(message.c.id < before)
    messages = list(reversed(list(await session.execute(page))))
    complete = len(messages) < limit
    since = messages[0].received_at if messages and not complete else None
    burst_ids = {m.burst_id for m in messages if m.burst_id is not None}
    among = [burst.c.id.in_(burst_ids)] if burst_ids else []
    # Operator messages sent within the page's span (a burst of no messages of the chat).
    operator_sends = [burst.c.reason == OPERATOR_REASON]
    if since is not None:
        operator_sends.append(burst.c.flushed_at >= since)
    if before is not None:
        # Up to the later page's first message, where that page's own span begins.
        later = select(message.c.received_at).where(message.c.id == before).scalar_subquery()
        operator_sends.append(burst.c.flushed_at < later)
    bursts_stmt = (
        select(
            burst.c.id,
            burst.c.burst_key,
            burst.c.message_ids,
            burst.c.reason,
            burst.c.command,
            burst.c.status,
            burst.c.error_type,
            burst.c.mid_reply,
            burst.c.superseded_by,
            burst.c.flushed_at,
            burst.c.sent_at,
            burst.c.failed_at,
            reply.c.text.label("reply_text"),
            reply.c.model,
            reply.c.author,
            reply.c.prompt_tokens,
            reply.c.completion_tokens,
            reply.c.cost,
            reply.c.cancelled,
        )
        .outerjoin(reply, reply.c.burst_id == burst.c.id)
        .where(burst.c.conversation_id == conversation_id, or_(*among, and_(*operator_sends)))
        .order_by(burst.c.id)
    )
    bursts = list(await session.execute(bursts_stmt))
    total_cost = (
        await session.execute(
            select(func.coalesce(func.sum(reply.c.cost), 0))
            .join(burst, burst.c.id == reply.c.burst_id)
            .where(burst.c.conversation_id == conversation_id)
        )
    ).scalar_one()
    return {"messages": messages, "bursts": bursts, "total_cost": total_cost, "complete": complete}


async def record_operator_message(
    session: AsyncSession, *, conversation_id: int, burst_key: str, text: str, author: str
) -> tuple[bool, Any]:
    """Store an operator's message as a burst with no messages and its reply, ready to
    send. Returns (created, the burst and reply as stored): a repeat of the key returns
    the first one's rows untouched, for the caller to compare."""
    epoch = select(conversation.c.context_epoch).where(conversation.c.id == conversation_id)
    now = func.now()
    new_id = (
        await session.execute(
            insert(burst)
            .values(
                burst_key=burst_key,
                conversation_id=conversation_id,
                message_ids=[],
                reason=OPERATOR_REASON,
                status="replied",
                context_epoch=epoch.scalar_subquery(),
                first_message_at=now,
                last_message_at=now,
                flushed_at=now,
                replied_at=now,
            )
            .on_conflict_do_nothing(index_elements=[burst.c.burst_key])
            .returning(burst.c.id)
        )
    ).scalar_one_or_none()
    if new_id is not None:
        await session.execute(
            reply.insert().values(burst_id=new_id, text=text, model=OPERATOR_REASON, author=author)
        )
    stored = (
        await session.execute(
            select(
                burst.c.id,
                burst.c.conversation_id,
                burst.c.status,
                burst.c.sent_at,
                reply.c.text,
                reply.c.author,
            )
            .join(reply, reply.c.burst_id == burst.c.id)
            .where(burst.c.burst_key == burst_key)
        )
    ).one()
    return new_id is not None, stored
