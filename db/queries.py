"""Query functions. Each takes a session and never commits: the caller owns the transaction.

Upserts and existence checks are pushed into SQL so that every write is idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    Select,
    Text,
    and_,
    bindparam,
    func,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningInsert

from db.tables import account, burst, conversation, delivery, message, reply, send_attempt


@dataclass(frozen=True)
class RecordedMessage:
    id: int
    created: bool
    burst_id: int | None


async def upsert_account(session: AsyncSession, *, key: str, kind: str, display_name: str) -> int:
    stmt = (
        insert(account)
        .values(key=key, kind=kind, display_name=display_name)
        .on_conflict_do_update(index_elements=[account.c.key], set_={"display_name": display_name})
        .returning(account.c.id)
    )
    return (await session.execute(stmt)).scalar_one()


async def account_active(session: AsyncSession, account_id: int) -> bool:
    """Whether the account is enabled (``account.active``): a disabled one is not served."""
    stmt = select(account.c.active).where(account.c.id == account_id)
    return bool((await session.execute(stmt)).scalar_one())


async def account_of_conversation(session: AsyncSession, conversation_id: int) -> int:
    stmt = select(conversation.c.account_id).where(conversation.c.id == conversation_id)
    return int((await session.execute(stmt)).scalar_one())


async def load_account(session: AsyncSession, account_id: int) -> Any:
    return (await session.execute(select(account).where(account.c.id == account_id))).one()


def _conversation_upsert(**values: Any) -> ReturningInsert[Any]:
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
    stmt = _conversation_upsert(
        account_id=account_id,
        chat_id=chat_id,
        topic_id=topic_id,
        owner_user_id=owner_user_id,
        last_message_at=last_message_at,
        chat_ref=chat_ref,
    )
    return (await session.execute(stmt)).scalar_one()


def _record_incoming_statement() -> Select[Any]:
    """One statement for the ingest's every message: upsert its conversation, insert the
    message once, and read the stored row back when it was there already. Built once with
    bind parameters: the ingest runs it hundreds of times a second, and building and
    hashing a fresh statement per call, and four round trips (begin, two statements,
    commit), were most of its time. Run alone, it needs no transaction of its own."""

    def param(name: str) -> Any:
        return bindparam(name, type_=message.c[name].type)

    conv = _conversation_upsert(
        account_id=param("account_id"),
        chat_id=param("chat_id"),
        topic_id=bindparam("topic_id", type_=conversation.c.topic_id.type),
        owner_user_id=param("sender_id"),
        last_message_at=param("sent_at"),
        chat_ref=bindparam("chat_ref", type_=conversation.c.chat_ref.type),
    ).cte("conv")
    columns = ("account_id", "chat_id", "message_id", "sender_id", "text", "kind", "sent_at")
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


async def insert_burst(
    session: AsyncSession,
    *,
    burst_key: str,
    conversation_id: int,
    message_ids: Sequence[int],
    reason: str,
    context_epoch: int,
    first_message_at: datetime,
    last_message_at: datetime,
    flushed_at: datetime,
) -> int:
    stmt = (
        insert(burst)
        .values(
            burst_key=burst_key,
            conversation_id=conversation_id,
            message_ids=list(message_ids),
            reason=reason,
            context_epoch=context_epoch,
            first_message_at=first_message_at,
            last_message_at=last_message_at,
            flushed_at=flushed_at,
        )
        .on_conflict_do_nothing(index_elements=[burst.c.burst_key])
        .returning(burst.c.id)
    )
    new_id = (await session.execute(stmt)).scalar_one_or_none()
    if new_id is not None:
        return new_id
    return (
        await session.execute(select(burst.c.id).where(burst.c.burst_key == burst_key))
    ).scalar_one()


def messages_in(conversation_id: int, message_ids: Sequence[int]) -> ColumnElement[bool]:
    """The rows of these Telegram message ids in this conversation."""
    return and_(
        message.c.conversation_id == conversation_id,
        message.c.message_id.in_(list(message_ids)),
    )


async def assign_messages(
    session: AsyncSession, *, burst_id: int, conversation_id: int, message_ids: Sequence[int]
) -> int:
    """Point the burst's messages at it; returns how many live messages it holds.

    A message may already belong to an orphan: a burst persisted by a local activity whose
    workflow task then timed out, so the workflow never saw it. The retried task can decide
    differently (a typing or edit signal that arrived meanwhile is applied first) and
    flush another set under another key. Such a burst is still 'persisted' with no reply,
    which no burst the workflow knows of can be while a later one is flushed: its messages
    move to the new burst, and a burst left with no live message is dropped as superseded.

    "Earlier" is by flush time, the workflow's clock (its task's start), not by row id: a
    stale local activity that runs late, its task long timed out, inserts the newest row
    but carries the older flush time, and must not rob the burst in use.
    """
    mine_row = burst.alias("mine_row")
    my_flush = select(mine_row.c.flushed_at).where(mine_row.c.id == burst_id).scalar_subquery()
    orphans = select(burst.c.id).where(
        burst.c.conversation_id == conversation_id,
        burst.c.status == "persisted",
        burst.c.id != burst_id,
        burst.c.flushed_at < my_flush,
        ~select(reply.c.id).where(reply.c.burst_id == burst.c.id).exists(),
    )
    mine = messages_in(conversation_id, message_ids)
    robbed = set(
        (
            await session.execute(
                select(message.c.burst_id).where(mine, message.c.burst_id.in_(orphans)).distinct()
            )
        ).scalars()
    )
    await session.execute(
        update(message)
        .where(mine, message.c.burst_id.is_(None) | message.c.burst_id.in_(robbed))
        .values(burst_id=burst_id)
    )
    for orphan in robbed:
        live = select(message.c.id).where(
            message.c.burst_id == orphan, message.c.deleted_at.is_(None)
        )
        await session.execute(
            update(burst)
            .where(burst.c.id == orphan, burst.c.status == "persisted", ~live.exists())
            .values(status="dropped", error_type="superseded")
        )
    stmt = select(func.count()).where(
        message.c.burst_id == burst_id, message.c.deleted_at.is_(None)
    )
    return int((await session.execute(stmt)).scalar_one())


async def unflushed_messages(
    session: AsyncSession, *, account_id: int, older_than: timedelta, limit: int
) -> list[Any]:
    """The account's messages to be answered, recorded over ``older_than`` ago, that no
    burst holds yet, oldest first per conversation."""
    stmt = (
        select(
            message.c.conversation_id,
            message.c.chat_id,
            conversation.c.topic_id,
            message.c.message_id,
            message.c.sender_id,
            message.c.text,
            message.c.received_at,
        )
        .join(conversation, conversation.c.id == message.c.conversation_id)
        .where(
            message.c.account_id == account_id,
            message.c.burst_id.is_(None),
            message.c.unanswered_reason.is_(None),
            message.c.deleted_at.is_(None),
            message.c.received_at < func.now() - older_than,
        )
        .order_by(message.c.conversation_id, message.c.message_id)
        .limit(limit)
    )
    return list(await session.execute(stmt))


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


async def context_epoch(session: AsyncSession, conversation_id: int) -> int:
    stmt = select(conversation.c.context_epoch).where(conversation.c.id == conversation_id)
    return int((await session.execute(stmt)).scalar_one())


async def load_burst(session: AsyncSession, burst_key: str) -> Any:
    """The burst joined with its conversation, or ``None``."""
    return (await session.execute(_burst_by_key(burst_key))).one_or_none()


def _burst_by_key(burst_key: str, *extra: ColumnElement[Any]) -> Select[Any]:
    """The burst with its conversation's account, chat and topic, and ``extra`` columns."""
    return (
        select(
            burst,
            conversation.c.account_id,
            conversation.c.chat_id,
            conversation.c.topic_id,
            *extra,
        )
        .join(conversation, conversation.c.id == burst.c.conversation_id)
        .where(burst.c.burst_key == burst_key)
    )


async def burst_to_answer(session: AsyncSession, burst_key: str) -> Any:
    """What generate_reply reads before its LLM call, in one round trip: the burst (as
    ``load_burst``); its account's ``model``, ``system_prompt``, ``start_text`` and
    ``help_text``; its stored reply's ``reply_id`` and ``reply_text`` (``None`` without
    one); and its messages' ``texts`` in order, deleted ones left out. ``None`` without
    the burst."""
    texts = (
        select(
            func.coalesce(
                func.array_agg(aggregate_order_by(message.c.text, message.c.message_id)),
                literal([], ARRAY(Text)),
            )
        )
        .where(message.c.burst_id == burst.c.id, message.c.deleted_at.is_(None))
        .scalar_subquery()
    )
    stmt = (
        _burst_by_key(
            burst_key,
            account.c.model,
            account.c.system_prompt,
            account.c.start_text,
            account.c.help_text,
            reply.c.id.label("reply_id"),
            reply.c.text.label("reply_text"),
            texts.label("texts"),
        )
        .join(account, account.c.id == conversation.c.account_id)
        .outerjoin(reply, reply.c.burst_id == burst.c.id)
    )
    return (await session.execute(stmt)).one_or_none()


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


async def load_reply(session: AsyncSession, burst_id: int) -> Any:
    return (await session.execute(select(reply).where(reply.c.burst_id == burst_id))).one_or_none()


async def insert_reply(session: AsyncSession, **values: Any) -> int | None:
    """Store the reply; ``None`` when a reply for this burst was stored first by another attempt."""
    stmt = (
        insert(reply)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[reply.c.burst_id])
        .returning(reply.c.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def reply_to_send(session: AsyncSession, burst_key: str) -> Any:
    """The burst (as ``load_burst``), its reply's ``reply_id`` and ``reply_text`` (``None``
    without one) and the chunk indexes already ``delivered``, in one round trip: the send
    path reads all of it before its first send call."""
    delivered = (
        select(func.coalesce(func.array_agg(delivery.c.chunk_index), literal([], ARRAY(Integer))))
        .where(delivery.c.reply_id == reply.c.id)
        .scalar_subquery()
    )
    stmt = _burst_by_key(
        burst_key,
        reply.c.id.label("reply_id"),
        reply.c.text.label("reply_text"),
        delivered.label("delivered"),
    ).outerjoin(reply, reply.c.burst_id == burst.c.id)
    return (await session.execute(stmt)).one_or_none()


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


async def set_burst_status(
    session: AsyncSession, burst_id: int, status: str, *, only_from: Sequence[str], **values: Any
) -> None:
    """Move a burst forward; a retried step never moves it back (e.g. from sent to replied)."""
    await session.execute(
        update(burst)
        .where(burst.c.id == burst_id, burst.c.status.in_(list(only_from)))
        .values(status=status, **values)
    )


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


async def finished_bursts(session: AsyncSession, account_id: int) -> list[Any]:
    """The account's sent and failed bursts with their chat and reply, in send order."""
    stmt = (
        select(
            burst.c.burst_key,
            burst.c.message_ids,
            burst.c.reason,
            burst.c.status,
            burst.c.error_type,
            burst.c.error,
            burst.c.first_message_at,
            burst.c.last_message_at,
            burst.c.flushed_at,
            burst.c.sent_at,
            conversation.c.chat_id,
            conversation.c.topic_id,
            reply.c.text,
        )
        .join(conversation, conversation.c.id == burst.c.conversation_id)
        .outerjoin(reply, reply.c.burst_id == burst.c.id)
        .where(conversation.c.account_id == account_id, burst.c.status.in_(["sent", "failed"]))
        .order_by(burst.c.sent_at.nulls_last(), burst.c.id)
    )
    return list(await session.execute(stmt))


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


async def bump_context_epoch(session: AsyncSession, conversation_id: int) -> None:
    """/refresh: later bursts start a new context; earlier history leaves the prompt."""
    await session.execute(
        update(conversation)
        .where(conversation.c.id == conversation_id)
        .values(context_epoch=conversation.c.context_epoch + 1, updated_at=func.now())
    )


async def account_chats(session: AsyncSession, account_id: int) -> list[tuple[int, int | None]]:
    """(chat, topic) of every conversation of the account."""
    stmt = select(conversation.c.chat_id, conversation.c.topic_id).where(
        conversation.c.account_id == account_id
    )
    return [(row.chat_id, row.topic_id) for row in await session.execute(stmt)]


async def claim_generation(session: AsyncSession, burst_id: int, *, seconds: float) -> bool:
    """Claim the burst's LLM call for ``seconds`` unless another attempt holds a claim
    that has not lapsed (or the reply is stored); renewing one's own claim is a claim."""
    stmt = (
        update(burst)
        .where(
            burst.c.id == burst_id,
            burst.c.status == "persisted",
            or_(burst.c.generating_until.is_(None), burst.c.generating_until < func.now()),
        )
        .values(generating_until=func.now() + timedelta(seconds=seconds))
        .returning(burst.c.id)
    )
    return (await session.execute(stmt)).first() is not None


async def renew_generation(session: AsyncSession, burst_id: int, *, seconds: float) -> None:
    await session.execute(
        update(burst)
        .where(burst.c.id == burst_id)
        .values(generating_until=func.now() + timedelta(seconds=seconds))
    )


async def release_generation(session: AsyncSession, burst_id: int) -> None:
    """The call failed: the next attempt may claim at once."""
    await session.execute(update(burst).where(burst.c.id == burst_id).values(generating_until=None))


async def reply_or_claim_lapsed(session: AsyncSession, burst_id: int) -> tuple[bool, bool]:
    """(a reply is stored, the generation claim has lapsed) for a waiting attempt."""
    row = (
        await session.execute(
            select(
                burst.c.status != "persisted",
                or_(burst.c.generating_until.is_(None), burst.c.generating_until < func.now()),
            ).where(burst.c.id == burst_id)
        )
    ).one()
    return bool(row[0]), bool(row[1])
