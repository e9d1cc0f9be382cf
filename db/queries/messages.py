"""Messages: recorded on arrival (the durable "accepted" point), edited, deleted, and found
again. Each query takes a session and never commits: the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    func,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.queries.conversations import conversation_upsert
from db.queries.rows import UnflushedMessageRow
from db.tables import burst, conversation, message


@dataclass(frozen=True)
class RecordedMessage:
    id: int
    created: bool
    burst_id: int | None


def _record_incoming_statement() -> Select[Any]:
    """One statement for the ingest's every message: upsert its conversation, insert the
    message once, and read the stored row back when it was there already. Built once with
    bind parameters: the ingest runs it hundreds of times a second, and building and
    hashing a fresh statement per call, and four round trips (begin, two statements,
    commit), were most of its time. Run alone, it needs no transaction of its own."""

    def param(name: str) -> Any:
        return bindparam(name, type_=message.c[name].type)

    conv = conversation_upsert(
        account_id=param("account_id"),
        chat_id=param("chat_id"),
        topic_id=bindparam("topic_id", type_=conversation.c.topic_id.type),
        owner_user_id=param("sender_id"),
        last_message_at=param("sent_at"),
        chat_ref=bindparam("chat_ref", type_=conversation.c.chat_ref.type),
    ).cte("conv")
    columns = (
        "account_id",
        "chat_id",
        "message_id",
        "sender_id",
        "text",
        "kind",
        "command",
        "sent_at",
    )
    new = (
        insert(message)
        .from_select(
            [*columns, "unanswered_reason", "conversation_id"],
            select(*(param(c) for c in columns), param("unanswered_reason"), conv.c.id),
        )
        .on_conflict_do_nothing(constraint="uq_message_channel_id")
        .returning(message.c.id)
        .cte("new")
    )
    # The statement reads the snapshot from before its own insert: a row found here was
    # stored by an earlier call.
    stored = message.alias("stored")
    return select(
        conv.c.id.label("conversation_id"),
        new.c.id.label("new_id"),
        stored.c.id.label("stored_id"),
        stored.c.burst_id,
    ).select_from(
        conv.outerjoin(new, true()).outerjoin(
            stored,
            and_(
                stored.c.account_id == param("account_id"),
                stored.c.chat_id == param("chat_id"),
                stored.c.message_id == param("message_id"),
            ),
        )
    )


_RECORD_INCOMING = _record_incoming_statement()


async def record_incoming(
    session: AsyncSession,
    *,
    account_id: int,
    chat_id: int,
    topic_id: int | None,
    message_id: int,
    sender_id: int,
    text: str,
    kind: str,
    sent_at: datetime,
    unanswered_reason: str | None = None,
    command: str | None = None,
    chat_ref: str | None = None,
) -> tuple[int, RecordedMessage]:
    """Record an incoming message once, with its conversation (created if new, its
    ``last_message_at`` kept): the conversation's id, and the message as stored, with
    whether this call created it and the burst that answered it."""
    where = {"account_id": account_id, "chat_id": chat_id, "message_id": message_id}
    params = {
        **where,
        "topic_id": topic_id,
        "sender_id": sender_id,
        "text": text,
        "kind": kind,
        "command": command,
        "sent_at": sent_at,
        "unanswered_reason": unanswered_reason,
        "chat_ref": chat_ref,
    }
    row = (await session.execute(_RECORD_INCOMING, params)).one()
    if row.new_id is not None:
        return row.conversation_id, RecordedMessage(row.new_id, created=True, burst_id=None)
    if row.stored_id is not None:
        return row.conversation_id, RecordedMessage(
            row.stored_id, created=False, burst_id=row.burst_id
        )
    # The same message was being stored by a call that committed after this statement
    # began: its insert did nothing, and its row shows only to a statement begun now.
    again = (
        await session.execute(
            select(message.c.id, message.c.burst_id).where(
                *(message.c[name] == value for name, value in where.items())
            )
        )
    ).one()
    return row.conversation_id, RecordedMessage(again.id, created=False, burst_id=again.burst_id)


async def next_message_id(session: AsyncSession, *, account_id: int, chat_id: int) -> int:
    stmt = select(func.coalesce(func.max(message.c.message_id), 0) + 1).where(
        message.c.account_id == account_id, message.c.chat_id == chat_id
    )
    return int((await session.execute(stmt)).scalar_one())


def messages_in(conversation_id: int, message_ids: Sequence[int]) -> ColumnElement[bool]:
    """The rows of these Telegram message ids in this conversation."""
    return and_(
        message.c.conversation_id == conversation_id,
        message.c.message_id.in_(list(message_ids)),
    )


async def unflushed_messages(
    session: AsyncSession,
    *,
    account_id: int,
    older_than: timedelta,
    limit: int,
    stranded_after: timedelta | None = None,
) -> list[UnflushedMessageRow]:
    """The account's messages to be answered, recorded over ``older_than`` ago, that no
    burst holds yet, oldest first per conversation. With ``stranded_after``, also those of
    a burst still unfinished (persisted or replied) that long after its flush: no live run
    takes that long (it fails the burst first), so its run was lost mid-burst."""
    unheld: ColumnElement[bool] = message.c.burst_id.is_(None)
    if stranded_after is not None:
        stranded = select(burst.c.id).where(
            burst.c.conversation_id == message.c.conversation_id,
            burst.c.status.in_(["persisted", "replied"]),
            burst.c.flushed_at < func.now() - stranded_after,
        )
        unheld = unheld | message.c.burst_id.in_(stranded.scalar_subquery())
    stmt = (
        select(
            message.c.conversation_id,
            message.c.chat_id,
            conversation.c.topic_id,
            message.c.message_id,
            message.c.sender_id,
            message.c.text,
            message.c.command,
            message.c.received_at,
        )
        .join(conversation, conversation.c.id == message.c.conversation_id)
        .where(
            message.c.account_id == account_id,
            unheld,
            message.c.unanswered_reason.is_(None),
            message.c.deleted_at.is_(None),
            message.c.received_at < func.now() - older_than,
        )
        .order_by(message.c.conversation_id, message.c.message_id)
        .limit(limit)
    )
    return cast(list[UnflushedMessageRow], list(await session.execute(stmt)))


async def missing_message_ids(
    session: AsyncSession, *, conversation_id: int, message_ids: Sequence[int]
) -> list[int]:
    """Of these ids, the ones with no row at all (not even deleted): signalled, yet not in
    Postgres, as after a failover that lost its last commits."""
    stmt = select(message.c.message_id).where(messages_in(conversation_id, message_ids))
    present = set((await session.execute(stmt)).scalars())
    return sorted(set(message_ids) - present)


async def held_by_another_burst(
    session: AsyncSession, *, burst_id: int, conversation_id: int, message_ids: Sequence[int]
) -> bool:
    """Whether a live message of these belongs to another burst: a burst that got none of
    its messages lost them to the burst the workflow flushed, not to deletions."""
    stmt = select(message.c.id).where(
        messages_in(conversation_id, message_ids),
        message.c.deleted_at.is_(None),
        message.c.burst_id.is_not(None),
        message.c.burst_id != burst_id,
    )
    return bool((await session.execute(stmt.exists().select())).scalar())


async def pending_message_count(session: AsyncSession, account_id: int) -> int:
    """Live messages of the account not yet in a finished (sent, failed, dropped) burst."""
    stmt = (
        select(func.count())
        .select_from(message.outerjoin(burst, burst.c.id == message.c.burst_id))
        .where(
            message.c.account_id == account_id,
            message.c.deleted_at.is_(None),
            message.c.unanswered_reason.is_(None),
            (message.c.burst_id.is_(None)) | (burst.c.status.not_in(["sent", "failed", "dropped"])),
        )
    )
    return int((await session.execute(stmt)).scalar_one())


async def record_edit(
    session: AsyncSession,
    *,
    account_id: int,
    chat_id: int,
    message_id: int,
    text: str,
    edited_at: datetime,
) -> RecordedMessage | None:
    """Store an edit; ``None`` if the message was never recorded (sent before we listened)."""
    stmt = (
        update(message)
        .where(
            message.c.account_id == account_id,
            message.c.chat_id == chat_id,
            message.c.message_id == message_id,
        )
        .values(text=text, edited_at=edited_at)
        .returning(message.c.id, message.c.burst_id)
    )
    row = (await session.execute(stmt)).one_or_none()
    return None if row is None else RecordedMessage(row.id, created=False, burst_id=row.burst_id)


async def record_deletes(
    session: AsyncSession,
    *,
    account_id: int,
    chat_id: int,
    message_ids: Sequence[int],
    deleted_at: datetime,
) -> list[int]:
    """Mark messages deleted; returns the ids of those not yet in a burst."""
    stmt = (
        update(message)
        .where(
            message.c.account_id == account_id,
            message.c.chat_id == chat_id,
            message.c.message_id.in_(list(message_ids)),
            message.c.deleted_at.is_(None),
        )
        .values(deleted_at=deleted_at)
        .returning(message.c.message_id, message.c.burst_id)
    )
    return [row.message_id for row in await session.execute(stmt) if row.burst_id is None]
