"""Login, logout, who am I, and API keys."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from api import schemas
from api.rate_limit import RateLimited
from api.security import (
    COOKIE,
    Principal,
    admin,
    client_ip,
    context,
    new_api_key,
    new_session_token,
    principal,
    session_expiry,
    token_hash,
    too_many,
    verify_password,
)
from db.queries import audit as db_audit
from db.queries import operators as db_operators

router = APIRouter(tags=["auth"])

BAD_LOGIN = HTTPException(status_code=401, detail="wrong username or password")


@router.post("/auth/login", response_model=schemas.Me)
async def login(body: schemas.Login, request: Request, response: Response) -> schemas.Me:
    ctx = context(request)
    per_minute = ctx.options.logins_per_minute
    try:
        ctx.limiter.take("login-ip", client_ip(request), per_minute=per_minute)
        ctx.limiter.take("login-user", body.username.lower(), per_minute=per_minute)
    except RateLimited as limited:
        raise too_many(limited) from None
    token = new_session_token()
    async with ctx.sessionmaker() as session:
        row = await db_operators.operator_by_username(session, body.username)
    ok, upgraded = verify_password(
        body.password.get_secret_value(), row.password_hash if row else None
    )
    if row is None or not ok:
        async with ctx.sessionmaker() as session, session.begin():
            await db_audit.record(
                session,
                actor=f"ip:{client_ip(request)}",
                action="login.failed",
                detail={"username": body.username[:128]},
            )
        raise BAD_LOGIN
    async with ctx.sessionmaker() as session, session.begin():
        if upgraded is not None:
            await db_operators.set_password_hash(session, row.id, upgraded)
        # Rotation: the token presented (if any) ends here; the new one starts.
        presented = request.cookies.get(COOKIE)
        if presented:
            await db_operators.revoke_session(session, token_hash(presented))
        await db_operators.open_session(
            session,
            token_hash=token_hash(token),
            operator_id=row.id,
            expires_at=session_expiry(ctx.options.session_hours),
        )
        await db_audit.record(session, actor=f"user:{row.username}", action="login")
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(ctx.options.session_hours * 3600),
        httponly=True,
        samesite="strict",
        secure=ctx.options.cookie_secure,
        path="/",
    )
    return schemas.Me(actor=f"user:{row.username}", role=row.role)


@router.post("/auth/logout", status_code=204)
async def logout(
    request: Request,
    response: Response,
    who: Principal = Depends(principal),  # noqa: B008
) -> Response:
    ctx = context(request)
    if who.session_hash is not None:
        async with ctx.sessionmaker() as session, session.begin():
            await db_operators.revoke_session(session, who.session_hash)
            await db_audit.record(session, actor=who.actor, action="logout")
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    response.status_code = 204
    return response


@router.get("/auth/me", response_model=schemas.Me)
async def me(who: Principal = Depends(principal)) -> schemas.Me:  # noqa: B008
    return schemas.Me(actor=who.actor, role=who.role)  # type: ignore[arg-type]


@router.get("/api-keys", response_model=list[schemas.ApiKey])
async def list_keys(request: Request, who: Principal = Depends(admin)) -> list[schemas.ApiKey]:  # noqa: B008
    async with context(request).sessionmaker() as session:
        rows = await db_operators.list_api_keys(session)
    return [schemas.ApiKey.model_validate(row._mapping) for row in rows]


@router.post("/api-keys", response_model=schemas.CreatedApiKey, status_code=201)
async def create_key(
    body: schemas.NewApiKey,
    request: Request,
    who: Principal = Depends(admin),  # noqa: B008
) -> schemas.CreatedApiKey:
    prefix, key = new_api_key()
    async with context(request).sessionmaker() as session, session.begin():
        key_id = await db_operators.create_api_key(
            session,
            prefix=prefix,
            key_hash=token_hash(key),
            name=body.name,
            role=body.role,
            created_by=who.actor,
        )
        await db_audit.record(
            session,
            actor=who.actor,
            action="api_key.create",
            detail={"id": key_id, "prefix": prefix, "name": body.name, "role": body.role},
        )
        rows = await db_operators.list_api_keys(session)
    row = next(r for r in rows if r.id == key_id)
    return schemas.CreatedApiKey(**row._mapping, key=key)


@router.delete("/api-keys/{key_id}", status_code=204)
async def revoke_key(key_id: int, request: Request, who: Principal = Depends(admin)) -> Response:  # noqa: B008
    async with context(request).sessionmaker() as session, session.begin():
        if not await db_operators.revoke_api_key(session, key_id):
            raise HTTPException(status_code=404, detail=f"no live API key {key_id}")
        await db_audit.record(
            session, actor=who.actor, action="api_key.revoke", detail={"id": key_id}
        )
    return Response(status_code=204)
