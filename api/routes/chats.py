"""Chats: the list, one chat's state, its transcript, an operator's message, and the
conversation controls (flush, clear, pause, resume)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import hashlib
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from temporalio.client import WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from api import schemas
from api.security import Principal, admin, context, principal
from app import ops
from db.queries import audit as db_audit
from db.queries import bots as db_bots
from db.queries import chats as db_chats
from inbound.send_queue import send_task_queue
from workflows import attributes
from workflows.admin_send import AdminSendWorkflow, admin_send_workflow_id
from workflows.ids import conversation_workflow_id
from workflows.payloads import AdminSendInput

router = APIRouter(tags=["chats"])

# How long POST /chats/{id}/messages waits for the delivery before answering 202.
ADMIN_SEND_WAIT_SECONDS = 10.0
MAX_PAGE = 500


def _cursor(activity: datetime, chat_id: int) -> str:
    raw = f"{activity.isoformat()}|{chat_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _parse_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, chat_id = raw.partition("|")
        return datetime.fromisoformat(at), int(chat_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise HTTPException(
            status_code=422, detail="cursor: not a cursor this API gave (use next_cursor)"
        ) from None


async def _chat_or_404(request: Request, chat_id: int) -> Any:
    async with context(request).sessionmaker() as session:
        row = await db_chats.get_chat(session, chat_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"no chat {chat_id}")
    return row


def _workflow_id(row: Any) -> str | None:
    return conversation_workflow_id(row.account_key, row.chat_ref) if row.chat_ref else None


async def _chat_refs_in_phase(request: Request, phase: str, bot_key: str | None) -> set[str]:
    """The chats whose open conversation is in ``phase``, from Temporal's visibility."""
    ctx = context(request)
    if not ctx.options.search_attributes:
        raise HTTPException(
            status_code=503,
            detail="the phase filter needs Lull's search attributes on the Temporal server",
        )
    query = f"{ops.OPEN_CONVERSATIONS} AND {attributes.PHASE.name} = {ops.quoted(phase)}"
    if bot_key is not None:
        query += f" AND {attributes.ACCOUNT.name} = {ops.quoted(bot_key)}"
    refs = set()
    async for wf in ctx.temporal.list_workflows(query):
        ref = wf.typed_search_attributes.get(attributes.CHAT_REF)
        if ref:
            refs.add(ref)
    return refs


@router.get("/chats", response_model=schemas.ChatPage)
async def list_chats(
    request: Request,
    bot: int | None = Query(default=None, description="a bot's id"),  # noqa: B008
    user: int | None = Query(default=None, description="a Telegram user id"),  # noqa: B008
    phase: Literal["active", "paused", "failed"] | None = None,
    active_since: datetime | None = None,
    active_before: datetime | None = None,
    cursor: str | None = None,
    limit: int = Query(default=50, ge=1, le=MAX_PAGE),  # noqa: B008
    who: Principal = Depends(principal),  # noqa: B008
) -> schemas.ChatPage:
    after = _parse_cursor(cursor) if cursor else None
    refs = None
    if phase in ("active", "paused"):
        bot_key = None
        if bot is not None:
            async with context(request).sessionmaker() as session:
                found = await db_bots.get_bot(session, bot)
            if found is None:
                raise HTTPException(status_code=404, detail=f"no bot {bot}")
            bot_key = found.key
        refs = await _chat_refs_in_phase(request, phase, bot_key)
    async with context(request).sessionmaker() as session:
        rows = await db_chats.list_chats(
            session,
            account_id=bot,
            user_id=user,
            failed=phase == "failed",
            chat_refs=refs,
            active_since=active_since,
            active_before=active_before,
            after=after,
            limit=limit,
        )
    chats = [schemas.Chat.of(row) for row in rows]
    last = rows[-1] if len(rows) == limit else None
    return schemas.ChatPage(
        chats=chats, next_cursor=_cursor(last.last_activity, last.id) if last else None
    )


@router.get("/chats/{chat_id}", response_model=schemas.ChatDetail)
async def get_chat(
    chat_id: int,
    request: Request,
    who: Principal = Depends(principal),  # noqa: B008
) -> schemas.ChatDetail:
    row = await _chat_or_404(request, chat_id)
    workflow_id = _workflow_id(row)
    phase, state = "idle", None
    if workflow_id is not None:
        try:
            shown = await ops.inspect(context(request).temporal, workflow_id)
        except ops.NoConversationError:
            pass
        except Exception as exc:  # Temporal down: the chat is still worth showing
            phase, state = "unknown", {"error": f"Temporal unavailable: {type(exc).__name__}"}
        else:
            phase = shown["phase"]
            state = {"doing": shown["doing"], **dataclasses.asdict(shown["state"])}
    base = schemas.Chat.of(row).model_dump()
    return schemas.ChatDetail(**base, phase=phase, workflow_id=workflow_id, state=state)


@router.get("/chats/{chat_id}/messages", response_model=schemas.Transcript)
async def transcript(
    chat_id: int,
    request: Request,
    before: int | None = Query(default=None, description="next_before of the later page"),  # noqa: B008
    limit: int = Query(default=200, ge=1, le=MAX_PAGE),  # noqa: B008
    who: Principal = Depends(principal),  # noqa: B008
) -> schemas.Transcript:
    await _chat_or_404(request, chat_id)
    async with context(request).sessionmaker() as session:
        found = await db_chats.transcript(session, chat_id, before=before, limit=limit)
    messages = [schemas.Message.model_validate(m._mapping) for m in found["messages"]]
    return schemas.Transcript(
        messages=messages,
        bursts=[schemas.Burst.model_validate(b._mapping) for b in found["bursts"]],
        total_cost=found["total_cost"],
        next_before=None if found["complete"] or not messages else messages[0].id,
    )


def operator_burst_key(chat_id: int, idempotency_key: str) -> str:
    """One burst per chat and key: the key is hashed, so any header value makes a safe,
    fixed-length id."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"operator/{chat_id}/{digest}"


@router.post(
    "/chats/{chat_id}/messages",
    response_model=schemas.AdminSent,
    responses={202: {"model": schemas.AdminSent, "description": "accepted, not yet delivered"}},
)
async def admin_send(
    chat_id: int,
    body: schemas.AdminSend,
    request: Request,
    idempotency_key: str = Header(min_length=1, max_length=255),  # noqa: B008
    who: Principal = Depends(admin),  # noqa: B008
) -> Any:
    """Send an operator's message to the chat, exactly once per Idempotency-Key."""
    ctx = context(request)
    row = await _chat_or_404(request, chat_id)
    if not row.account_active:
        raise HTTPException(status_code=409, detail="the bot is disabled: nothing would send it")
    key = operator_burst_key(chat_id, idempotency_key)
    async with ctx.sessionmaker() as session, session.begin():
        created, stored = await db_chats.record_operator_message(
            session, conversation_id=chat_id, burst_key=key, text=body.text, author=who.actor
        )
        if not created and stored.text != body.text:
            raise HTTPException(
                status_code=422,
                detail="Idempotency-Key was used before for a different message",
            )
        if created:
            await db_audit.record(
                session,
                actor=who.actor,
                action="chat.send",
                account_id=row.account_id,
                conversation_id=chat_id,
                detail={"burst_key": key, "chars": len(body.text)},
            )
    inp = AdminSendInput(
        key,
        send_task_queue(ctx.options.task_queue, row.account_key),
        ctx.options.outage_window_seconds,
    )
    workflow_id = admin_send_workflow_id(key)
    try:
        handle = await ctx.temporal.start_workflow(
            AdminSendWorkflow.run,
            inp,
            id=workflow_id,
            task_queue=ctx.options.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=f"operator message by {who.actor}",
        )
    except WorkflowAlreadyStartedError:
        handle = ctx.temporal.get_workflow_handle_for(AdminSendWorkflow.run, workflow_id)
    try:
        async with asyncio.timeout(ADMIN_SEND_WAIT_SECONDS):
            result = await handle.result()
    except TimeoutError:
        return JSONResponse(
            status_code=202,
            content=schemas.AdminSent(
                burst_key=key, status="pending", repeated=not created
            ).model_dump(),
        )
    except WorkflowFailureError as err:
        raise HTTPException(
            status_code=502, detail=f"not delivered: {err.cause}; see GET /failed-bursts"
        ) from None
    return schemas.AdminSent(
        burst_key=key, status="sent", chunks=result.chunks, repeated=not created
    )


async def _control(
    request: Request, who: Principal, chat_id: int, action: str, minutes: float | None = None
) -> dict[str, Any]:
    row = await _chat_or_404(request, chat_id)
    workflow_id = _workflow_id(row)
    ctx = context(request)
    if workflow_id is None:
        raise HTTPException(status_code=409, detail="this chat has no conversation to control")
    try:
        state = await ops.control(ctx.temporal, workflow_id, action, minutes=minutes)
    except ops.NoConversationError:
        raise HTTPException(
            status_code=409,
            detail="no open conversation for this chat (nothing is buffered; one opens at "
            "its next message)",
        ) from None
    async with ctx.sessionmaker() as session, session.begin():
        await db_audit.record(
            session,
            actor=who.actor,
            action=f"chat.{action}",
            account_id=row.account_id,
            conversation_id=chat_id,
            detail={"minutes": minutes} if minutes else None,
        )
    return dataclasses.asdict(state)


@router.post("/chats/{chat_id}/flush")
async def flush(chat_id: int, request: Request, who: Principal = Depends(admin)) -> dict[str, Any]:  # noqa: B008
    return await _control(request, who, chat_id, "flush")


@router.post("/chats/{chat_id}/clear")
async def clear(chat_id: int, request: Request, who: Principal = Depends(admin)) -> dict[str, Any]:  # noqa: B008
    return await _control(request, who, chat_id, "clear")


@router.post("/chats/{chat_id}/pause")
async def pause(
    chat_id: int,
    request: Request,
    body: schemas.Pause | None = None,
    who: Principal = Depends(admin),  # noqa: B008
) -> dict[str, Any]:
    return await _control(request, who, chat_id, "pause", body.minutes if body else None)


@router.post("/chats/{chat_id}/resume")
async def resume(chat_id: int, request: Request, who: Principal = Depends(admin)) -> dict[str, Any]:  # noqa: B008
    return await _control(request, who, chat_id, "resume")
