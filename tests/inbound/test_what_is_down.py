"""A listener retrying through an outage names the part that is down, and quotes nothing
a statement carried."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from channels.telegram.chat_jobs import what_is_down


async def test_a_postgres_that_is_gone_is_named_not_as_a_missing_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # The embedded Postgres listens on a Unix socket: while it restarts, the socket file
    # is missing and the driver says FileNotFoundError.
    engine = create_async_engine(f"postgresql+asyncpg://postgres@/x?host={tmp_path}")
    with pytest.raises(Exception) as failed:
        async with engine.connect() as conn:
            await conn.execute(text("select 1"))
    await engine.dispose()
    said = what_is_down(failed.value)
    assert said.startswith("Postgres is unreachable"), said


async def test_a_refused_statement_names_its_sqlstate_not_its_values(database_url: str) -> None:
    from db.engine import make_engine

    engine = make_engine(database_url)
    with pytest.raises(Exception) as failed:
        async with engine.connect() as conn:
            await conn.execute(text("select cast(:v as integer)"), {"v": "users-secret-text"})
    await engine.dispose()
    said = what_is_down(failed.value)
    assert "SQLSTATE" in said and "users-secret-text" not in said, said
