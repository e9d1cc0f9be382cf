"""Operators made outside the API: `lull users create` makes the first admin (the API
itself cannot, as nobody could call it yet)."""

from __future__ import annotations

import re

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.security import hash_password
from db.queries import audit as db_audit
from db.queries import operators as db_operators

USERNAME = re.compile(r"[A-Za-z0-9_.@-]{1,128}")
MIN_PASSWORD_CHARS = 12


class UserError(ValueError):
    """A username or password refused; the message says why."""


async def create_user(
    sessionmaker: async_sessionmaker[AsyncSession], *, username: str, password: str, role: str
) -> int:
    if not USERNAME.fullmatch(username):
        raise UserError("a username is 1-128 letters, digits or . _ @ -")
    if len(password) < MIN_PASSWORD_CHARS:
        raise UserError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    if role not in ("admin", "viewer"):
        raise UserError("role is admin or viewer")
    async with sessionmaker() as session, session.begin():
        user_id = await db_operators.create_operator(
            session, username=username, password_hash=hash_password(password), role=role
        )
        if user_id is None:
            raise UserError(f"user {username!r} exists")
        await db_audit.record(
            session, actor="cli", action="user.create", detail={"username": username, "role": role}
        )
    return user_id
