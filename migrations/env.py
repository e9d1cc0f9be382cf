"""Async Alembic environment. The URL comes from the caller (``db/migrate.py``) or settings."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection, pool, text
from sqlalchemy.ext.asyncio import create_async_engine

from db.tables import metadata

# Two pods migrating at once would race on DDL; an advisory lock serialises them.
MIGRATION_LOCK_ID = 0x1011_0001


def _url() -> str:
    url = context.config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from app.settings import load_settings

    configured = load_settings().database_url
    if not configured:
        raise SystemExit(
            "LULL_DATABASE_URL is not set; use `lull migrate` for the embedded database"
        )
    return configured


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        # Transaction-scoped: released by the commit or rollback, so a failed migration
        # shows its own error and never leaves the lock held.
        connection.execute(text("select pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        context.run_migrations()


async def _run_online() -> None:
    engine = create_async_engine(_url(), poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
