"""Failed bursts and their retry, as `lull failed` and `lull retry` do them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from api import schemas
from api.security import Principal, admin, context, principal
from app import ops
from db.queries import audit as db_audit
from db.queries import bots as db_bots

router = APIRouter(tags=["failures"])


@router.get("/failed-bursts")
async def failed_bursts(
    request: Request,
    bot: int | None = Query(default=None, description="a bot's id"),  # noqa: B008
    limit: int = Query(default=100, ge=1, le=1000),  # noqa: B008
    who: Principal = Depends(principal),  # noqa: B008
) -> list[dict[str, Any]]:
    """Newest first: where, which messages, what went wrong. No user text."""
    ctx = context(request)
    key = None
    if bot is not None:
        async with ctx.sessionmaker() as session:
            row = await db_bots.get_bot(session, bot)
        if row is None:
            raise HTTPException(status_code=404, detail=f"no bot {bot}")
        key = row.key
    return await ops.failed_bursts(ctx.sessionmaker, key, limit=limit)


@router.post("/failed-bursts/{burst_key:path}/retry", status_code=202)
async def retry(
    burst_key: str,
    request: Request,
    body: schemas.RetryOptions | None = None,
    who: Principal = Depends(admin),  # noqa: B008
) -> dict[str, Any]:
    """Start the retry (no second LLM call when a reply is stored); its workflow's
    outcome shows in the Temporal UI, and the burst leaves GET /failed-bursts once sent."""
    ctx = context(request)
    options = body or schemas.RetryOptions()
    try:
        sends_on = await ops.retry_send_queue(
            ctx.sessionmaker, burst_key, task_queue=ctx.options.task_queue
        )
    except ops.NoBurstError:
        raise HTTPException(status_code=404, detail=f"no burst {burst_key}") from None
    workflow_id = await ops.retry_burst(
        ctx.temporal,
        burst_key,
        task_queue=ctx.options.task_queue,
        sends_on=sends_on,
        outage_window_seconds=ctx.options.outage_window_seconds,
        wait=False,
        resend_in_doubt=options.resend_in_doubt,
    )
    async with ctx.sessionmaker() as session, session.begin():
        await db_audit.record(
            session,
            actor=who.actor,
            action="burst.retry",
            detail={"burst_key": burst_key, "resend_in_doubt": options.resend_in_doubt},
        )
    return {"status": "started", "workflow_id": workflow_id}
