"""Who may use the admin API: operators (people, with passwords), their cookie sessions,
and API keys (machines). Only hashes are stored; each query takes a session and never
commits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.tables import api_key, operator, operator_session


async def create_operator(
    session: AsyncSession, *, username: str, password_hash: str, role: str
) -> int | None:
    """The new operator's id, or None when the username is taken."""
    stmt = (
        insert(operator)
        .values(username=username, password_hash=password_hash, role=role)
        .on_conflict_do_nothing(index_elements=[operator.c.username])
        .returning(operator.c.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def operator_by_username(session: AsyncSession, username: str) -> Any:
    stmt = select(operator).where(operator.c.username == username, operator.c.active)
    return (await session.execute(stmt)).one_or_none()


async def set_password_hash(session: AsyncSession, operator_id: int, password_hash: str) -> None:
    """A hash upgraded at login (pwdlib's verify_and_update)."""
    await session.execute(
        update(operator).where(operator.c.id == operator_id).values(password_hash=password_hash)
    )


async def open_session(
    session: AsyncSession, *, token_hash: bytes, operator_id: int, expires_at: datetime
) -> None:
    await session.execute(
        operator_session.insert().values(
            token_hash=token_hash, operator_id=operator_id, expires_at=expires_at
        )
    )


async def session_operator(session: AsyncSession, token_hash: bytes) -> Any:
    """The operator of a live session (not revoked, not expired), or None."""
    stmt = (
        select(operator.c.id, operator.c.username, operator.c.role)
        .join(operator_session, operator_session.c.operator_id == operator.c.id)
        .where(
            operator_session.c.token_hash == token_hash,
            operator_session.c.revoked_at.is_(None),
            operator_session.c.expires_at > func.now(),
            operator.c.active,
        )
    )
    return (await session.execute(stmt)).one_or_none()


async def revoke_session(session: AsyncSession, token_hash: bytes) -> None:
    await session.execute(
        update(operator_session)
        .where(operator_session.c.token_hash == token_hash, operator_session.c.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )


async def create_api_key(
    session: AsyncSession, *, prefix: str, key_hash: bytes, name: str, role: str, created_by: str
) -> int:
    stmt = (
        api_key.insert()
        .values(prefix=prefix, key_hash=key_hash, name=name, role=role, created_by=created_by)
        .returning(api_key.c.id)
    )
    return (await session.execute(stmt)).scalar_one()


async def api_key_by_prefix(session: AsyncSession, prefix: str) -> Any:
    stmt = select(api_key).where(api_key.c.prefix == prefix, api_key.c.revoked_at.is_(None))
    return (await session.execute(stmt)).one_or_none()


async def touch_api_key(session: AsyncSession, key_id: int) -> None:
    await session.execute(
        update(api_key).where(api_key.c.id == key_id).values(last_used_at=func.now())
    )


async def list_api_keys(session: AsyncSession) -> list[Any]:
    stmt = select(
        api_key.c.id,
        api_key.c.prefix,
        api_key.c.name,
        api_key.c.role,
        api_key.c.created_by,
        api_key.c.created_at,
        api_key.c.last_used_at,
        api_key.c.revoked_at,
    ).order_by(api_key.c.id)
    return list(await session.execute(stmt))


async def revoke_api_key(session: AsyncSession, key_id: int) -> bool:
    stmt = (
        update(api_key)
        .where(api_key.c.id == key_id, api_key.c.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(api_key.c.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None
