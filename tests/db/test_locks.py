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


async def test_a_lock_whose_connection_drops_is_known_lost_at_once_and_taken_by_another(
    engine: AsyncEngine, account_id: int, database_url: str
) -> None:
    # Postgres restarting or failing over: the holder's connection is dropped.
    import asyncio

    from db.engine import make_engine
    from tests.faults.tcp_proxy import postgres_proxy

    proxy, url = await postgres_proxy(database_url)
    proxied = make_engine(url)
    try:
        async with account_listener_lock(proxied, account_id) as held:
            assert not held.lost.is_set()
            await proxy.cut()
            await asyncio.wait_for(held.lost.wait(), 1.0)
            # The server let it go with the connection: another process may take it now.
            async with account_listener_lock(engine, account_id):
                pass
    finally:
        await proxied.dispose()
        await proxy.stop()


async def test_a_lock_on_a_half_open_connection_is_known_lost_by_its_ping(
    account_id: int, database_url: str
) -> None:
    import asyncio

    from db.engine import make_engine
    from tests.faults.tcp_proxy import postgres_proxy

    proxy, url = await postgres_proxy(database_url)
    proxied = make_engine(url)
    try:
        async with account_listener_lock(
            proxied, account_id, ping_every=0.2, ping_timeout=0.5
        ) as held:
            await asyncio.sleep(0.5)
            assert not held.lost.is_set()  # pings answered
            proxy.frozen = True  # nothing passes, nothing closes
            await asyncio.wait_for(held.lost.wait(), 2.0)
    finally:
        await proxied.dispose()
        await proxy.stop()
