"""Bots (accounts): list, create, change, enable, disable, delete.

A change is one transaction with its audit row. Listeners and conversations pick changes
up without a restart: texts, model and prompt are read at each burst; a listener drops a
disabled or deleted bot after draining it (ingest.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from api import schemas
from api.security import Principal, admin, context, principal
from db.queries import audit as db_audit
from db.queries import bots as db_bots
from db.queries.bots import token_context
from db.sealed import SecretBox

router = APIRouter(tags=["bots"])


def _not_found(bot_id: int) -> HTTPException:
    return HTTPException(status_code=404, detail=f"no bot {bot_id}")


def _columns(body: schemas.BotFields, key: str, box: SecretBox) -> dict[str, Any]:
    """The account columns a body sets, only the fields it names."""
    named = body.model_fields_set
    values: dict[str, Any] = {}
    renamed = {"name": "display_name"}
    for field in ("name", "start_text", "help_text", "error_text", "model", "system_prompt"):
        if field in named:
            value = getattr(body, field)
            if value is None and field in ("name", "start_text", "help_text", "error_text"):
                raise HTTPException(status_code=422, detail=f"{field} cannot be null")
            values[renamed.get(field, field)] = value
    if "active" in named:
        if body.active is None:
            raise HTTPException(status_code=422, detail="active cannot be null")
        values["active"] = body.active
    if "settings" in named:
        settings = body.settings or schemas.BotSettings()
        values["settings"] = settings.model_dump(mode="json", exclude_defaults=True)
    if "bot_token" in named:
        token = body.bot_token
        values["bot_token"] = (
            None
            if token is None
            else box.seal(token.get_secret_value().encode(), context=token_context(key))
        )
    return values


def _audit_detail(body: schemas.BotFields) -> dict[str, Any]:
    """Which fields changed, never the token or the prompt's text."""
    return {"fields": sorted(body.model_fields_set)}


@router.get("/bots", response_model=list[schemas.Bot])
async def list_bots(request: Request, who: Principal = Depends(principal)) -> list[schemas.Bot]:  # noqa: B008
    async with context(request).sessionmaker() as session:
        return [schemas.Bot.of(row) for row in await db_bots.list_bots(session)]


@router.post("/bots", response_model=schemas.Bot, status_code=201)
async def create_bot(
    body: schemas.NewBot,
    request: Request,
    who: Principal = Depends(admin),  # noqa: B008
) -> schemas.Bot:
    ctx = context(request)
    values = _columns(body, body.key, ctx.box)
    values.setdefault("display_name", body.key)
    async with ctx.sessionmaker() as session, session.begin():
        bot_id = await db_bots.create_bot(session, {**values, "key": body.key, "kind": body.kind})
        if bot_id is None:
            raise HTTPException(status_code=409, detail=f"a bot with key {body.key!r} exists")
        await db_audit.record(
            session,
            actor=who.actor,
            action="bot.create",
            account_id=bot_id,
            detail={"key": body.key, **_audit_detail(body)},
        )
        row = await db_bots.get_bot(session, bot_id)
    return schemas.Bot.of(row)


@router.get("/bots/{bot_id}", response_model=schemas.Bot)
async def get_bot(
    bot_id: int,
    request: Request,
    who: Principal = Depends(principal),  # noqa: B008
) -> schemas.Bot:
    async with context(request).sessionmaker() as session:
        row = await db_bots.get_bot(session, bot_id)
    if row is None:
        raise _not_found(bot_id)
    return schemas.Bot.of(row)


@router.put("/bots/{bot_id}", response_model=schemas.Bot)
async def change_bot(
    bot_id: int,
    body: schemas.BotFields,
    request: Request,
    who: Principal = Depends(admin),  # noqa: B008
) -> schemas.Bot:
    ctx = context(request)
    async with ctx.sessionmaker() as session, session.begin():
        row = await db_bots.get_bot(session, bot_id, lock=True)
        if row is None:
            raise _not_found(bot_id)
        values = _columns(body, row.key, ctx.box)
        if values:
            await db_bots.update_bot(session, bot_id, values)
            await db_audit.record(
                session,
                actor=who.actor,
                action="bot.update",
                account_id=bot_id,
                detail=_audit_detail(body),
            )
        row = await db_bots.get_bot(session, bot_id)
    return schemas.Bot.of(row)


async def _set_active(request: Request, who: Principal, bot_id: int, active: bool) -> schemas.Bot:
    async with context(request).sessionmaker() as session, session.begin():
        if not await db_bots.update_bot(session, bot_id, {"active": active}):
            raise _not_found(bot_id)
        await db_audit.record(
            session,
            actor=who.actor,
            action="bot.enable" if active else "bot.disable",
            account_id=bot_id,
        )
        row = await db_bots.get_bot(session, bot_id)
    return schemas.Bot.of(row)


@router.post("/bots/{bot_id}/enable", response_model=schemas.Bot)
async def enable_bot(
    bot_id: int,
    request: Request,
    who: Principal = Depends(admin),  # noqa: B008
) -> schemas.Bot:
    return await _set_active(request, who, bot_id, True)


@router.post("/bots/{bot_id}/disable", response_model=schemas.Bot)
async def disable_bot(
    bot_id: int,
    request: Request,
    who: Principal = Depends(admin),  # noqa: B008
) -> schemas.Bot:
    """Its listener drains what it holds and stops serving it; bursts in flight are
    still answered."""
    return await _set_active(request, who, bot_id, False)


@router.delete("/bots/{bot_id}", status_code=204)
async def delete_bot(
    bot_id: int,
    request: Request,
    purge: bool = Query(default=False, description="also delete its transcript"),  # noqa: B008
    who: Principal = Depends(admin),  # noqa: B008
) -> Response:
    async with context(request).sessionmaker() as session, session.begin():
        row = await db_bots.get_bot(session, bot_id, lock=True)
        if row is None:
            raise _not_found(bot_id)
        if not purge:
            await db_bots.soft_delete(session, bot_id)
            await db_audit.record(
                session,
                actor=who.actor,
                action="bot.delete",
                account_id=bot_id,
                detail={"key": row.key},
            )
            return Response(status_code=204)
        if row.active:
            # Its listener and open conversations would go on writing rows being deleted.
            raise HTTPException(
                status_code=409,
                detail="disable the bot first (POST /bots/{id}/disable) and let its "
                "listener drain; then purge",
            )
        counts = await db_bots.purge(session, bot_id, row.key)
        await db_audit.record(
            session,
            actor=who.actor,
            action="bot.purge",
            account_id=bot_id,
            detail={"key": row.key, "deleted": counts},
        )
    return Response(status_code=204)
