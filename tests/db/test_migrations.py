from __future__ import annotations

from sqlalchemy import text

from db import migrate
from db.engine import make_engine
from tests.conftest import scratch_database

TABLES = {"account", "conversation", "message", "burst", "reply", "delivery"}


async def tables(url: str) -> set[str]:
    engine = make_engine(url)
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("select tablename from pg_tables where schemaname = 'public'")
        )
        names = {r[0] for r in rows}
    await engine.dispose()
    return names


async def test_upgrade_downgrade_upgrade(server_url: str) -> None:
    url, _ = await scratch_database(server_url)
    await migrate.upgrade(url)
    assert await tables(url) >= TABLES
    await migrate.downgrade(url, "base")
    assert not (TABLES & await tables(url))
    await migrate.upgrade(url)
    assert await tables(url) >= TABLES


async def test_upgrade_is_a_no_op_when_already_at_head(server_url: str) -> None:
    url, _ = await scratch_database(server_url)
    await migrate.upgrade(url)
    await migrate.upgrade(url)
    assert await tables(url) >= TABLES
