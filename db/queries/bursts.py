"""Bursts: persisted once per burst key, their status, and the generation lease. Each query
takes a session and never commits: the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Select,
    Text,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by, insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.queries.messages import messages_in
from db.queries.rows import BurstRow, BurstToAnswerRow, FinishedBurstRow
from db.tables import account, burst, conversation, delivery, message, reply, send_attempt


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
    command: str | None = None,
) -> tuple[int, bool]:
    """The burst's id, and whether this call created it (False: its key was stored
    before, by an earlier attempt or an earlier run flushing the same messages)."""
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
            command=command,
        )
        .on_conflict_do_nothing(index_elements=[burst.c.burst_key])
        .returning(burst.c.id)
    )
    new_id = (await session.execute(stmt)).scalar_one_or_none()
    if new_id is not None:
        return new_id, True
    existing = select(burst.c.id).where(burst.c.burst_key == burst_key)
    return (await session.execute(existing)).scalar_one(), False


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

    A message may also belong to a burst stranded by a run Temporal lost mid-burst: the
    ingest's sweep signalled its messages to a new run, which flushed them with others
    (so under another key). A live run never flushes a message twice (it remembers the
    ids it took; a supersede marks the burst it discards first), so an earlier burst
    still 'replied' whose reply has no chunk delivered or attempted is such a burst: its
    messages move too, and it is superseded by the new burst (its reply never sent: the
    send refuses a superseded burst). A reply whose sending began keeps its messages.

    "Earlier" is by flush time, the workflow's clock (its task's start), not by row id: a
    stale local activity that runs late, its task long timed out, inserts the newest row
    but carries the older flush time, and must not rob the burst in use.
    """
    mine_row = burst.alias("mine_row")
    my_flush = select(mine_row.c.flushed_at).where(mine_row.c.id == burst_id).scalar_subquery()
    its_reply = select(reply.c.id).where(reply.c.burst_id == burst.c.id)
    sending_began = its_reply.where(
        select(delivery.c.id).where(delivery.c.reply_id == reply.c.id).exists()
        | select(send_attempt.c.reply_id).where(send_attempt.c.reply_id == reply.c.id).exists()
    )
    orphans = select(burst.c.id).where(
        burst.c.conversation_id == conversation_id,
        burst.c.id != burst_id,
        burst.c.flushed_at < my_flush,
        ((burst.c.status == "persisted") & ~its_reply.exists())
        | ((burst.c.status == "replied") & ~sending_began.exists()),
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
        # A stranded burst's reply is discarded, as a supersede discards one, once its
        # messages have all moved (the new run may split them over two bursts).
        await session.execute(
            update(burst)
            .where(burst.c.id == orphan, burst.c.status == "replied", ~live.exists())
            .values(status="superseded", superseded_by=burst_id)
        )
    stmt = select(func.count()).where(
        message.c.burst_id == burst_id, message.c.deleted_at.is_(None)
    )
    return int((await session.execute(stmt)).scalar_one())


async def load_burst(session: AsyncSession, burst_key: str) -> BurstRow | None:
    """The burst joined with its conversation, or ``None``."""
    return cast(BurstRow | None, (await session.execute(burst_by_key(burst_key))).one_or_none())


def burst_by_key(burst_key: str, *extra: ColumnElement[Any]) -> Select[Any]:
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


async def burst_to_answer(session: AsyncSession, burst_key: str) -> BurstToAnswerRow | None:
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
        burst_by_key(
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
    return cast(BurstToAnswerRow | None, (await session.execute(stmt)).one_or_none())


async def reopen_if_found(session: AsyncSession, burst_id: int) -> bool:
    """A burst dropped because its messages' rows had vanished (reported LOST) whose
    messages are back (the listener recorded them again from Telegram, and the sweep
    signalled them): it is to be answered after all. Returns whether it was reopened."""
    reopened = await session.execute(
        update(burst)
        .where(burst.c.id == burst_id, burst.c.status == "dropped", burst.c.error_type == "missing")
        .values(status="persisted", error_type=None)
        .returning(burst.c.id)
    )
    return reopened.scalar_one_or_none() is not None


async def set_burst_status(
    session: AsyncSession, burst_id: int, status: str, *, only_from: Sequence[str], **values: Any
) -> None:
    """Move a burst forward; a retried step never moves it back (e.g. from sent to replied)."""
    await session.execute(
        update(burst)
        .where(burst.c.id == burst_id, burst.c.status.in_(list(only_from)))
        .values(status=status, **values)
    )


async def supersede(session: AsyncSession, burst_key: str, *, rule: str) -> int | None:
    """Mark the burst superseded and release its messages to the burst that takes it over
    (the next persist assigns them); returns its id, or None when it had already moved on
    (sent, failed, dropped) and so was not superseded. Safe to repeat."""
    stmt = (
        update(burst)
        .where(burst.c.burst_key == burst_key, burst.c.status.in_(["persisted", "replied"]))
        .values(status="superseded", mid_reply=rule, generating_until=None)
        .returning(burst.c.id)
    )
    burst_id = (await session.execute(stmt)).scalar_one_or_none()
    if burst_id is None:
        done = await session.execute(
            select(burst.c.id).where(burst.c.burst_key == burst_key, burst.c.status == "superseded")
        )
        burst_id = done.scalar_one_or_none()
    if burst_id is not None:
        await session.execute(
            update(message).where(message.c.burst_id == burst_id).values(burst_id=None)
        )
    return burst_id


async def discarded_reply(session: AsyncSession, burst_id: int) -> tuple[int, Decimal] | None:
    """The tokens and cost of a reply made for this burst and never sent (not a cancelled
    call's, which its activity counts), or None."""
    row = (
        await session.execute(
            select(reply.c.prompt_tokens + reply.c.completion_tokens, reply.c.cost).where(
                reply.c.burst_id == burst_id, ~reply.c.cancelled
            )
        )
    ).one_or_none()
    return (int(row[0]), row[1]) if row is not None else None


async def note_mid_reply(session: AsyncSession, burst_key: str, *, rule: str) -> None:
    """Record the rule that kept a burst from being superseded."""
    await session.execute(
        update(burst).where(burst.c.burst_key == burst_key).values(mid_reply=rule)
    )


async def record_successor(session: AsyncSession, superseded_key: str, successor_id: int) -> None:
    """The superseded burst points at the burst that answers its messages."""
    await session.execute(
        update(burst)
        .where(burst.c.burst_key == superseded_key, burst.c.status == "superseded")
        .values(superseded_by=successor_id)
    )


async def supersede_spend(
    session: AsyncSession, *, account_key: str, chat_id: int, topic_id: int | None
) -> dict[str, Any]:
    """A chat's superseded bursts and what their discarded generations cost: replies made
    and discarded, calls cancelled mid-flight (their tokens estimated), tokens and cost."""
    superseded = burst.c.status == "superseded"
    stmt = (
        select(
            func.count(func.distinct(burst.c.id)).filter(superseded).label("superseded"),
            func.count(reply.c.id).filter(superseded, ~reply.c.cancelled).label("discarded"),
            func.count(reply.c.id).filter(superseded, reply.c.cancelled).label("cancelled"),
            func.coalesce(
                func.sum(reply.c.prompt_tokens + reply.c.completion_tokens).filter(superseded), 0
            ).label("discarded_tokens"),
            func.coalesce(func.sum(reply.c.cost).filter(superseded), 0).label("discarded_cost"),
        )
        .select_from(burst)
        .join(conversation, conversation.c.id == burst.c.conversation_id)
        .join(account, account.c.id == conversation.c.account_id)
        .outerjoin(reply, reply.c.burst_id == burst.c.id)
        .where(
            account.c.key == account_key,
            conversation.c.chat_id == chat_id,
            conversation.c.topic_id.is_not_distinct_from(topic_id),
        )
    )
    row = (await session.execute(stmt)).one()
    return {**row._mapping, "discarded_cost": str(row.discarded_cost)}


async def finished_bursts(session: AsyncSession, account_id: int) -> list[FinishedBurstRow]:
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
    return cast(list[FinishedBurstRow], list(await session.execute(stmt)))


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
