"""Who is calling: a person with a cookie session, or a machine with an API key.

- Passwords: argon2 (pwdlib's recommended hasher), upgraded at login when its parameters
  change.
- Session cookies: a random token; Postgres keeps its sha256 only. HttpOnly (no script
  reads it), SameSite=Strict (no other site's page sends it), Secure outside plain-HTTP
  development. A login always issues a new token and revokes the one presented, so a
  token planted before login is worthless after it; a logout revokes it server-side, so a
  copy replayed later is refused.
- API keys: ``lull_<prefix>_<secret>``, shown once. The prefix finds the row and tells
  keys apart in listings; the whole key is compared by its sha256 (a random 256-bit
  secret needs no slow hash).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import Depends, HTTPException, Request
from pwdlib import PasswordHash

from api.context import ApiContext
from api.rate_limit import RateLimited
from db.queries import operators as db_operators

COOKIE = "lull_session"
API_KEY_PREFIX = "lull"
PASSWORDS = PasswordHash.recommended()
# Verified when a login names no known operator, so that case costs what a wrong password
# does (no timing tells which usernames exist).
_DUMMY_HASH = PASSWORDS.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class Principal:
    actor: str  # "user:alice" or "key:ab12cd34", as the audit log names it
    role: str
    # The session's token hash (cookie logins), for logout.
    session_hash: bytes | None = None


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def new_api_key() -> tuple[str, str]:
    """(prefix, whole key)."""
    prefix = secrets.token_hex(4)
    return prefix, f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"


def session_expiry(hours: float) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)


def hash_password(password: str) -> str:
    return PASSWORDS.hash(password)


def verify_password(password: str, stored: str | None) -> tuple[bool, str | None]:
    """(valid, an upgraded hash to store or None)."""
    if stored is None:
        PASSWORDS.verify(password, _DUMMY_HASH)
        return False, None
    return PASSWORDS.verify_and_update(password, stored)


def too_many(limited: RateLimited) -> HTTPException:
    return HTTPException(
        status_code=429,
        detail=f"too many requests; retry after {limited.retry_after} s",
        headers={"Retry-After": str(limited.retry_after)},
    )


def limit_ip(request: Request) -> None:
    """Every request, before authentication: a flood of bad credentials is limited too."""
    ctx = context(request)
    try:
        ctx.limiter.take("ip", client_ip(request), per_minute=ctx.options.ip_requests_per_minute)
    except RateLimited as limited:
        raise too_many(limited) from None


UNAUTHENTICATED = HTTPException(
    status_code=401,
    detail="not signed in: log in (POST /auth/login) or send an API key (Authorization: Bearer)",
    headers={"WWW-Authenticate": "Bearer"},
)


async def principal(request: Request) -> Principal:
    ctx = context(request)
    found = await _from_api_key(ctx, request) or await _from_cookie(ctx, request)
    if found is None:
        raise UNAUTHENTICATED
    try:
        ctx.limiter.take("principal", found.actor, per_minute=ctx.options.requests_per_minute)
    except RateLimited as limited:
        raise too_many(limited) from None
    request.state.principal = found
    return found


async def _from_api_key(ctx: ApiContext, request: Request) -> Principal | None:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key:
        return None
    parts = key.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX:
        raise UNAUTHENTICATED
    async with ctx.sessionmaker() as session, session.begin():
        row = await db_operators.api_key_by_prefix(session, parts[1])
        if row is None or not hmac.compare_digest(row.key_hash, token_hash(key.strip())):
            raise UNAUTHENTICATED
        await db_operators.touch_api_key(session, row.id)
    return Principal(f"key:{row.prefix}", row.role)


async def _from_cookie(ctx: ApiContext, request: Request) -> Principal | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    digest = token_hash(token)
    async with ctx.sessionmaker() as session:
        row = await db_operators.session_operator(session, digest)
    if row is None:
        raise UNAUTHENTICATED
    return Principal(f"user:{row.username}", row.role, session_hash=digest)


def admin(who: Principal = Depends(principal)) -> Principal:  # noqa: B008
    if who.role != "admin":
        raise HTTPException(status_code=403, detail="this needs the admin role (you are a viewer)")
    return who
