"""Telegram end to end with real processes: `lull ingest` and `lull worker` subprocesses, the
Temporal dev server, embedded Postgres and the echo LLM, with users acting through the
project's MTProto server. The listener is killed where it hurts most, and users must see
every message answered exactly once."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telethon.tl import types
from temporalio.testing import WorkflowEnvironment

from channels.telegram.session import PostgresSession
from db.tables import account, burst, message
from testkit.keys import TEST_BOX
from testkit.telegram_server.server import FakeTelegramServer
from tests.e2e.helpers import Process, free_port, lull_env, new_data_dir

pytestmark = pytest.mark.e2e

BOT, ALICE = 100, 200
TO_BOT = types.PeerUser(BOT)


class Deployment:
    """One worker and one listener process, as a Lull deployment runs them."""

    def __init__(self, env: dict[str, str], health_port: int, data_dir: Path) -> None:
        self.health_port = health_port
        self.data_dir = data_dir
        self.worker = Process("worker", "worker", env, data_dir)
        self.listener = Process("ingest", "ingest", env, data_dir)

    async def start_worker(self) -> None:
        await self.worker.start()

    async def start_listener(self) -> None:
        await self.listener.start()
        for _ in range(300):
            if await self.ready():
                return
            if not self.listener.running:
                break
            await asyncio.sleep(0.1)
        raise AssertionError(f"listener not ready:\n{self.listener.tail(4000)}")

    async def ready(self) -> bool:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.health_port)
        except OSError:
            return False
        writer.write(b"GET /readyz HTTP/1.1\r\n\r\n")
        answer = await reader.read()
        writer.close()
        return answer.startswith(b"HTTP/1.1 200")

    async def kill_listener(self, sig: int = signal.SIGKILL) -> int | None:
        return await self.listener.signal(sig)

    def log(self, command: str) -> str:
        proc = self.listener if command == "ingest" else self.worker
        return proc.tail(4000)

    async def stop(self) -> None:
        for proc in (self.listener, self.worker):
            await proc.signal(signal.SIGTERM)


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegramServer]:
    server = await FakeTelegramServer().start()
    server.world.add_account(BOT, "Lull", bot=True, username="lullbot")
    server.world.add_account(ALICE, "Alice")
    yield server
    await server.stop()


@pytest.fixture
async def deployment(
    telegram: FakeTelegramServer,
    dev_env: WorkflowEnvironment,
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[Deployment]:
    key = f"tg-e2e-{uuid.uuid4().hex[:8]}"
    session = await PostgresSession.load(sessionmaker, key, box=TEST_BOX)
    telegram.seed(session, BOT)
    await session.save()
    data_dir = new_data_dir()
    health_port = free_port()
    env = lull_env(
        data_dir,
        LULL_DATABASE_URL=database_url,
        LULL_TEMPORAL_ADDRESS=dev_env.client.service_client.config.target_host,
        LULL_TASK_QUEUE=f"tq-{uuid.uuid4().hex[:8]}",
        LULL_TG_API_ID="1",
        LULL_TG_API_HASH="x",
        LULL_TG_SERVER=f"127.0.0.1:{telegram.port}",
        LULL_TG_ACCOUNT=key,
        LULL_HEALTH_PORT=str(health_port),
        LULL_DEBOUNCE_SECONDS="1",
        LULL_DRAIN_SECONDS="20",
        PYTHONUNBUFFERED="1",
    )
    env.pop("PYTHONWARNINGS", None)
    deployed = Deployment(env, health_port, data_dir)
    deployed.account_key = key  # type: ignore[attr-defined]
    yield deployed
    await deployed.stop()
    if os.environ.get("LULL_KEEP_E2E") is None:
        shutil.rmtree(data_dir, ignore_errors=True)


def bot_replies(telegram: FakeTelegramServer) -> list[str]:
    return [m.text for m in telegram.world.visible_to(ALICE, TO_BOT) if m.sender_id == BOT]


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float) -> bool:
    """Poll an async check (database state, no event to wait on) until true or timed out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def until(condition: object, *, within: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def message_bursts(
    sessionmaker: async_sessionmaker[AsyncSession], key: str
) -> dict[str, tuple[int | None, str | None]]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(message.c.text, message.c.burst_id, burst.c.status)
            .join(account, account.c.id == message.c.account_id)
            .outerjoin(burst, burst.c.id == message.c.burst_id)
            .where(account.c.key == key)
        )
        return {r.text: (r.burst_id, r.status) for r in rows}


def assert_each_answered_once(replies: list[str], texts: list[str]) -> None:
    for text in texts:
        holding = [r for r in replies if text in r.split("] ", 1)[1].split()]
        assert len(holding) == 1, f"{text!r} answered {len(holding)} times in {replies}"


async def test_a_listener_killed_after_telegram_took_the_send_posts_it_once(
    deployment: Deployment,
    telegram: FakeTelegramServer,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await deployment.start_worker()
    await deployment.start_listener()
    telegram.world.send(ALICE, TO_BOT, "hello")
    await until(lambda: len(bot_replies(telegram)) == 1, within=60, what="the first reply")
    # Telegram carries out the next send but the answer never reaches the listener,
    # which is killed while it waits: the activity has not completed.
    telegram.withhold_send_answers = 1
    telegram.world.send(ALICE, TO_BOT, "again")
    await until(lambda: len(bot_replies(telegram)) == 2, within=60, what="the second send")
    await deployment.kill_listener(signal.SIGKILL)
    await deployment.start_listener()
    key = deployment.account_key  # type: ignore[attr-defined]

    async def all_sent() -> bool:
        rows = await message_bursts(sessionmaker, key)
        return all(status == "sent" for _, status in rows.values())

    # Within the send's heartbeat timeout (15 s) plus its retry.
    assert await eventually(all_sent, within=60), deployment.log("ingest")
    await asyncio.sleep(1)
    # The send was retried with its random_id and Telegram de-duplicated it.
    sends = [name for _, name in telegram.requests if name == "SendMessageRequest"]
    assert len(sends) == 3
    assert bot_replies(telegram) == ["[echo: 1 message] hello", "[echo: 1 message] again"]


async def test_a_listener_killed_mid_burst_catches_up_without_loss_or_doubles(
    deployment: Deployment,
    telegram: FakeTelegramServer,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await deployment.start_worker()
    await deployment.start_listener()
    texts = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
    telegram.world.send(ALICE, TO_BOT, texts[0])
    telegram.world.send(ALICE, TO_BOT, texts[1])
    key = deployment.account_key  # type: ignore[attr-defined]

    async def taken_still_collecting() -> bool:
        rows = await message_bursts(sessionmaker, key)
        return all(rows.get(t, (0, None))[0] is None for t in texts[:2]) and len(rows) == 2

    # Recorded by the listener and the burst still collecting (debounce 1 s): then kill.
    assert await eventually(taken_still_collecting, within=5), deployment.log("ingest")
    await deployment.kill_listener(signal.SIGKILL)
    telegram.world.send(ALICE, TO_BOT, texts[2])  # while no listener runs
    await deployment.start_listener()
    telegram.world.send(ALICE, TO_BOT, texts[3])
    # A graceful stop mid-burst: drain, then exit cleanly.
    telegram.world.send(ALICE, TO_BOT, texts[4])
    assert await deployment.kill_listener(signal.SIGTERM) == 0
    telegram.world.send(ALICE, TO_BOT, texts[5])
    await deployment.start_listener()

    async def answered() -> bool:
        rows = await message_bursts(sessionmaker, key)
        return len(rows) == len(texts) and all(s == "sent" for _, s in rows.values())

    assert await eventually(answered, within=60), deployment.log("ingest")
    await asyncio.sleep(1.5)
    assert_each_answered_once(bot_replies(telegram), texts)
    bursts = {burst_id for burst_id, _ in (await message_bursts(sessionmaker, key)).values()}
    assert len(bot_replies(telegram)) == len(bursts)
