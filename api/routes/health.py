"""/health (the process answers), /health/db and /health/temporal (its dependencies).
No authentication: a load balancer or a kubelet calls them."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.security import context

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_SECONDS = 2.0


def _answer(ok: bool, error: str | None = None) -> JSONResponse:
    body = {"status": "ok"} if ok else {"status": "unavailable", "error": error}
    return JSONResponse(status_code=200 if ok else 503, content=body)


@router.get("/health")
async def alive() -> JSONResponse:
    return _answer(True)


@router.get("/health/db")
async def database(request: Request) -> JSONResponse:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            async with context(request).sessionmaker() as session:
                await session.execute(text("select 1"))
    except Exception as exc:
        return _answer(False, f"Postgres: {type(exc).__name__}")
    return _answer(True)


@router.get("/health/temporal")
async def temporal(request: Request) -> JSONResponse:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await context(request).temporal.service_client.check_health()
    except Exception as exc:
        return _answer(False, f"Temporal: {type(exc).__name__}")
    return _answer(True)
