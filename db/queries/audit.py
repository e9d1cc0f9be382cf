"""The audit log: one row per change made through the admin API, in the change's own
transaction (so a change is never applied without its row, nor recorded unapplied).
The table is append-only (a trigger refuses UPDATE, DELETE and TRUNCATE)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.tables import audit


async def record(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    account_id: int | None = None,
    conversation_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    await session.execute(
        audit.insert().values(
            actor=actor,
            action=action,
            account_id=account_id,
            conversation_id=conversation_id,
            detail=detail or {},
        )
    )


async def recent(
    session: AsyncSession,
    *,
    account_id: int | None = None,
    before: datetime | None = None,
    limit: int = 100,
) -> list[Any]:
    stmt = select(audit).order_by(audit.c.at.desc(), audit.c.id.desc()).limit(limit)
    if account_id is not None:
        stmt = stmt.where(audit.c.account_id == account_id)
    if before is not None:
        stmt = stmt.where(audit.c.at < before)
    return list(await session.execute(stmt))
