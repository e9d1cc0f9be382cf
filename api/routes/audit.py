"""The audit log, newest first (admins only: it names who did what)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query, Request

from api import schemas
from api.security import Principal, admin, context
from db.queries import audit as db_audit

router = APIRouter(tags=["audit"])


@router.get("/audit", response_model=list[schemas.AuditEntry])
async def audit_log(
    request: Request,
    bot: int | None = None,
    before: datetime | None = None,
    limit: int = Query(default=100, ge=1, le=1000),  # noqa: B008
    who: Principal = Depends(admin),  # noqa: B008
) -> list[schemas.AuditEntry]:
    async with context(request).sessionmaker() as session:
        rows = await db_audit.recent(session, account_id=bot, before=before, limit=limit)
    return [schemas.AuditEntry.model_validate(row._mapping) for row in rows]
