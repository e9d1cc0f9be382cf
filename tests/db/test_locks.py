from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from db.locks import AccountLockedError, account_listener_lock


async def test_one_listener_per_account(engine: AsyncEngine, account_id: int) -> None:
    async with account_listener_lock(engine, account_id):
        with pytest.raises(AccountLockedError, match="already served by another listener"):
            async with account_listener_lock(engine, account_id):
                pass
        # Another account is not affected.
        async with account_listener_lock(engine, account_id + 1_000_000):
            pass
    # Released on exit: the next listener may start.
    async with account_listener_lock(engine, account_id):
        pass


async def test_the_lock_dies_with_its_connection(engine: AsyncEngine, account_id: int) -> None:
    from sqlalchemy import text

    from db.locks import listener_lock_key

    # A crashed listener: its connection closes without unlocking.
    conn = await engine.connect()
    await conn.execute(text("select pg_advisory_lock(:k)"), {"k": listener_lock_key(account_id)})
    await conn.commit()
    with pytest.raises(AccountLockedError):
        async with account_listener_lock(engine, account_id):
            pass
    await conn.invalidate()  # the process is gone: Postgres drops the session
    async with account_listener_lock(engine, account_id):
        pass
