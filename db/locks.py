"""One listener per account: a Postgres advisory lock held for the listener's lifetime.

An auth key used by two MTProto sessions at once gets the session revoked by Telegram
(AUTH_KEY_DUPLICATED), so a second listener for the same account must refuse to start.
The lock lives on its own connection: if the process dies, Postgres drops the connection
and the lock with it, so a crashed listener never blocks its replacement.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

# High bits name Lull's listener locks ("LUL"), so they never collide with other users
# of advisory locks in a shared database.
_LISTENER_LOCK_BASE = 0x4C554C << 40


class AccountLockedError(RuntimeError):
    """Another process already serves this account."""


def listener_lock_key(account_id: int) -> int:
    return _LISTENER_LOCK_BASE | account_id


@contextlib.asynccontextmanager
async def account_listener_lock(engine: AsyncEngine, account_id: int) -> AsyncIterator[None]:
    key = listener_lock_key(account_id)
    conn = await engine.connect()
    try:
        got = (await conn.execute(text("select pg_try_advisory_lock(:key)"), {"key": key})).scalar()
        await conn.commit()
        if not got:
            raise AccountLockedError(
                f"account {account_id} is already served by another listener; refusing to "
                "start a second one (one Telegram session must not be used twice at once)"
            )
        yield
    finally:
        # The lock belongs to the database session, and a pooled connection outlives this
        # block: end the session itself so the lock goes whatever happened (an error or a
        # cancellation mid-way must not leave the account locked until the pool recycles).
        await conn.invalidate()
        await conn.close()
