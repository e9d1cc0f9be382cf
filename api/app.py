"""The admin API's ASGI app: one FastAPI app over an ApiContext (api/context.py).

Every request is limited per client IP before anything else; the routes add the per-key
or per-session limit and the role they need (api/security.py).
"""

from __future__ import annotations

import logging

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from temporalio.service import RPCError

from api.context import ApiContext
from api.routes import audit, auth, bots, chats, failures, health
from api.security import limit_ip

log = logging.getLogger("lull.api")


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(
        title="Lull admin API",
        summary="Bots, chats, operator messages and failed bursts of a Lull deployment.",
        version="1",
        dependencies=[Depends(limit_ip)],
    )
    app.state.ctx = ctx
    for module in (auth, bots, chats, failures, audit, health):
        app.include_router(module.router)

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    async def database_down(request: Request, exc: Exception) -> JSONResponse:
        # Never the statement or its parameters: they may hold a message's text.
        log.error("%s %s: Postgres error %s", request.method, request.url.path, type(exc).__name__)
        return JSONResponse(
            status_code=503,
            content={"detail": f"Postgres unavailable ({type(exc).__name__}); nothing changed"},
        )

    @app.exception_handler(RPCError)
    async def temporal_down(request: Request, exc: RPCError) -> JSONResponse:
        log.error("%s %s: Temporal error %s", request.method, request.url.path, exc.status)
        return JSONResponse(
            status_code=503, content={"detail": f"Temporal unavailable ({exc.status.name})"}
        )

    return app
