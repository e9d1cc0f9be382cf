"""Bursts that failed: ops alerts, the error notice, listing and retry. Each query takes a
session and never commits: the caller owns the transaction."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import func, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.queries.rows import AlertRow, FailedBurstRow
from db.tables import account, alert, burst, conversation, reply


async def record_alert(
    session: AsyncSession, *, account_id: int, kind: str, burst_key: str, error: str
) -> bool:
    """Count a failure in its (account, kind, hour) window; True only for the window's first,
    the one ops are told about. Concurrent workers race on the unique key, so exactly one
    of them sees True."""
    new = insert(alert).values(
        account_id=account_id,
        kind=kind,
        window_start=func.date_trunc("hour", func.now()),
        first_burst_key=burst_key,
        error=error,
    )
    stmt: Any = new.on_conflict_do_update(
        constraint="uq_alert_window",
        set_={"occurrences": alert.c.occurrences + 1, "last_seen_at": func.now()},
    ).returning(literal_column("xmax = 0"))
    return bool((await session.execute(stmt)).scalar_one())


async def alerts(session: AsyncSession, account_id: int) -> list[AlertRow]:
    stmt = select(alert).where(alert.c.account_id == account_id).order_by(alert.c.id)
    return cast(list[AlertRow], list(await session.execute(stmt)))


async def failed_bursts(
    session: AsyncSession, *, account_key: str | None = None, limit: int = 100
) -> list[FailedBurstRow]:
    """Failed bursts, newest first, with where they belong and what went wrong. No text."""
    stmt = (
        select(
            burst.c.burst_key,
            account.c.key.label("account"),
            conversation.c.chat_id,
            conversation.c.topic_id,
            burst.c.message_ids,
            burst.c.error_type,
            burst.c.error,
            burst.c.failed_at,
            burst.c.retries,
            burst.c.notice_sent_at,
        )
        .join(conversation, conversation.c.id == burst.c.conversation_id)
        .join(account, account.c.id == conversation.c.account_id)
        .where(burst.c.status == "failed")
        .order_by(burst.c.failed_at.desc().nulls_last(), burst.c.id.desc())
        .limit(limit)
    )
    if account_key is not None:
        stmt = stmt.where(account.c.key == account_key)
    return cast(list[FailedBurstRow], list(await session.execute(stmt)))


async def reopen_failed_burst(session: AsyncSession, burst_key: str) -> str | None:
    """Put a failed burst back where its remaining steps start: 'replied' when its reply is
    stored (it will not be generated again), else 'persisted'. Returns the new status, or
    None when the burst is not failed (then nothing changes)."""
    has_reply = select(reply.c.id).where(reply.c.burst_id == burst.c.id).exists()
    row = (
        await session.execute(
            select(burst.c.id, has_reply.label("has_reply"))
            .where(burst.c.burst_key == burst_key, burst.c.status == "failed")
            .with_for_update()
        )
    ).one_or_none()
    if row is None:
        return None
    new_status = "replied" if row.has_reply else "persisted"
    await session.execute(
        update(burst)
        .where(burst.c.id == row.id)
        .values(status=new_status, retries=burst.c.retries + 1, error_type=None, error=None)
    )
    return new_status


async def mark_notice_sent(session: AsyncSession, burst_id: int) -> None:
    await session.execute(
        update(burst).where(burst.c.id == burst_id).values(notice_sent_at=func.now())
    )
