"""Fixtures of the listener tests: the fake Telegram with the bot (or a user account),
Alice and Bob, and a harness that runs the real listener against it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from testkit.telegram_server.server import FakeTelegramServer
from tests.channels.telegram.harness import ALICE, BOB, BOT_ID, TelegramHarness


async def _harness(
    env: WorkflowEnvironment,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    bot: bool,
) -> AsyncIterator[TelegramHarness]:
    server = await FakeTelegramServer().start()
    server.world.add_account(BOT_ID, "Lull" if bot else "Owner", bot=bot)
    server.world.add_account(ALICE, "Alice")
    server.world.add_account(BOB, "Bob")
    harness = TelegramHarness(env, engine, sessionmaker, server)
    await harness.seed_session()
    yield harness
    await server.stop()


@pytest.fixture
async def tg(
    dev_env: WorkflowEnvironment,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[TelegramHarness]:
    async for harness in _harness(dev_env, engine, sessionmaker, bot=True):
        yield harness


@pytest.fixture
async def tg_user(
    dev_env: WorkflowEnvironment,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[TelegramHarness]:
    """A user account (not a bot) whose human owner also writes from their phone."""
    async for harness in _harness(dev_env, engine, sessionmaker, bot=False):
        yield harness
