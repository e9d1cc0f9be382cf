"""One listener fleet for all bots: two `lull ingest` replicas (no LULL_TG_ACCOUNT) split
three bots over the project's MTProto server, a killed replica's bots are taken over by
the other, and every message is answered exactly once. Bots are created as the admin API
creates them (a sealed token, settings), so each logs in with its own token."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from telethon.tl import types
from temporalio.testing import WorkflowEnvironment

import ingest as telegram_service
from app.dev_stack import Stack
from app.fleet import ListenerFleet
from app.health import HealthServer
from app.settings import load_settings
from app.wiring import Runtime
from channels.telegram.session import PostgresSession
from db import migrate
from db.engine import make_engine, make_sessionmaker
from db.queries import bots as db_bots
from db.tables import account, burst, conversation, message
from testkit.keys import TEST_BOX, TEST_SECRET_KEY
from testkit.servers import free_port, task_queue
from testkit.telegram_server.server import FakeTelegramServer
from tests.conftest import scratch_database
from tests.e2e.helpers import ROOT, lull_command, lull_env, new_data_dir

BOTS = (500, 501, 502)
USERS = (600, 601, 602, 603)


@dataclass
class Replica:
    task: asyncio.Task[int]
    stop: asyncio.Event
    fleet: ListenerFleet
    health: HealthServer

    def listening(self, key: str) -> bool:
        """The account's listener is connected and handling updates (a new session
        starts from now: what was sent before it connected is not fetched)."""
        return f"telegram:{key}" in self.health.check_names


@dataclass
class FleetWorld:
    env: WorkflowEnvironment
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    server: FakeTelegramServer
    database_url: str = ""
    tq: str = field(default_factory=task_queue)
    keys: dict[int, str] = field(default_factory=dict)
    replicas: list[Replica] = field(default_factory=list)

    def runtime(self, **overrides: Any) -> Runtime:
        settings = load_settings(
            tg_api_id=1,
            tg_api_hash="x",
            tg_server=f"127.0.0.1:{self.server.port}",
            task_queue=self.tq,
            debounce_seconds=1,
            health_port=0,
            drain_seconds=10,
            secret_key=TEST_SECRET_KEY,
            fleet_poll_seconds=0.5,
            fleet_claim_after_seconds=2,
            # A message a killed replica recorded but never signalled is signalled again
            # by the sweep, once older than the max wait plus the sweep interval.
            max_wait_seconds=5,
            unflushed_sweep_seconds=2,
            **overrides,
        )
        assert settings.listener_account is None  # a fleet
        stack = Stack(database_url="(test)", temporal_address="(test)", ui_url=None)
        return Runtime(settings, stack, self.env.client, self.engine, self.sessionmaker)

    async def add_bot(self, bot_id: int, **settings: Any) -> int:
        """A bot as POST /bots makes it: its token sealed, its settings stored; its
        session holds only the auth key (the login is the token's)."""
        key = f"fleet-{bot_id}-{uuid.uuid4().hex[:6]}"
        token = f"{bot_id}:{'x' * 35}"
        self.server.world.add_account(bot_id, f"Bot {bot_id}", bot=True, bot_token=token)
        self.server.world.accounts[bot_id].authorized = False
        async with self.sessionmaker() as session, session.begin():
            account_id = await db_bots.create_bot(
                session,
                {
                    "key": key,
                    "kind": "telegram_bot",
                    "display_name": key,
                    "bot_token": TEST_BOX.seal(token.encode(), context=db_bots.token_context(key)),
                    "settings": settings,
                },
            )
        assert account_id is not None
        session_ = await PostgresSession.load(self.sessionmaker, key, box=TEST_BOX)
        self.server.seed(session_, bot_id)
        await session_.save()
        self.keys[bot_id] = key
        return account_id

    async def start_replica(self) -> Replica:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        made: asyncio.Future[ListenerFleet] = loop.create_future()
        ready: asyncio.Future[HealthServer] = loop.create_future()
        task = asyncio.create_task(
            telegram_service.serve_fleet(
                self.runtime(), stop, on_ready=ready.set_result, on_fleet=made.set_result
            )
        )
        fleet, health = await asyncio.wait_for(asyncio.gather(made, ready), 20)
        replica = Replica(task, stop, fleet, health)
        self.replicas.append(replica)
        return replica

    async def stop_all(self) -> None:
        """A failed test's replicas stop too (drained, or cancelled if that hangs)."""
        for replica in self.replicas:
            replica.stop.set()
        for replica in self.replicas:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(replica.task, 30)

    def replies(self, user: int, bot: int) -> list[str]:
        return [
            m.text
            for m in self.server.world.visible_to(user, types.PeerUser(bot))
            if m.sender_id == bot
        ]

    async def all_answered(self) -> bool:
        """Every message recorded is in a burst, and no burst is still being answered."""
        async with self.sessionmaker() as session:
            unflushed = await session.execute(
                select(message.c.id).where(message.c.burst_id.is_(None)).limit(1)
            )
            unfinished = await session.execute(
                select(burst.c.id).where(burst.c.status.in_(("persisted", "replied"))).limit(1)
            )
            return not list(unflushed) and not list(unfinished)

    async def sent_bursts(self, bot: int, user: int) -> int:
        async with self.sessionmaker() as session:
            rows = await session.execute(
                select(burst.c.id)
                .join(conversation, conversation.c.id == burst.c.conversation_id)
                .join(account, account.c.id == conversation.c.account_id)
                .where(
                    account.c.key == self.keys[bot],
                    conversation.c.chat_id == user,
                    burst.c.status == "sent",
                )
            )
            return len(list(rows))


async def until(check: Any, what: str, within: float = 30.0) -> float:
    """Wait for ``check()`` (sync or async); returns the seconds it took."""
    started = time.monotonic()
    while True:
        found = check()
        if asyncio.iscoroutine(found):
            found = await found
        if found:
            return time.monotonic() - started
        assert time.monotonic() - started < within, f"not within {within} s: {what}"
        await asyncio.sleep(0.05)


@pytest.fixture
async def fleet_world(dev_env: WorkflowEnvironment, server_url: str) -> AsyncIterator[FleetWorld]:
    """A database of its own: a fleet serves every account it finds, and the other
    tests' accounts point at fake servers long gone."""
    url, _ = await scratch_database(server_url)
    await migrate.upgrade(url)
    engine = make_engine(url)
    server = await FakeTelegramServer().start()
    for user in USERS:
        server.world.add_account(user, f"User {user}")
    world = FleetWorld(dev_env, engine, make_sessionmaker(engine), server, url)
    try:
        yield world
    finally:
        await world.stop_all()
        await server.stop()
        await engine.dispose()


async def test_two_replicas_split_three_bots_and_one_takes_over_when_the_other_dies(
    fleet_world: FleetWorld,
) -> None:
    w = fleet_world
    for bot in BOTS:
        await w.add_bot(bot)
    async with w.runtime().build_worker():
        first, second = await w.start_replica(), await w.start_replica()
        replicas = (first, second)
        # Split, even though the first replica up may take all three at first: it hands
        # one over to the other (fair share: 2 and 1).
        await until(
            lambda: sorted(len(r.fleet.serving) for r in replicas) == [1, 2],
            "the three bots split 2 and 1",
        )
        assert not first.fleet.serving & second.fleet.serving
        await until(
            lambda: all(any(r.listening(w.keys[bot]) for r in replicas) for bot in BOTS),
            "every bot listened to",
        )
        # Each bot logged in with its own token, read from its sealed column.
        assert all(w.server.world.accounts[bot].authorized for bot in BOTS)

        for n, bot in enumerate(BOTS):
            w.server.world.send(USERS[n], types.PeerUser(bot), f"hello bot {bot}")
        for n, bot in enumerate(BOTS):
            await until(lambda n=n, bot=bot: w.replies(USERS[n], bot), f"a reply from {bot}")

        # Kill the replica with two bots while their users are mid-burst.
        doomed = max(replicas, key=lambda r: len(r.fleet.serving))
        survivor = second if doomed is first else first
        for n, bot in enumerate(BOTS):
            w.server.world.send(USERS[n], types.PeerUser(bot), "one more thing")
            w.server.world.send(USERS[3], types.PeerUser(bot), f"me too, {bot}")
        doomed.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await doomed.task
        failover = await until(
            lambda: all(survivor.listening(w.keys[bot]) for bot in BOTS), "the takeover"
        )
        for n, bot in enumerate(BOTS):
            w.server.world.send(USERS[n], types.PeerUser(bot), "after the takeover")

        await until(w.all_answered, "every message answered", within=60)
        # Exactly once: per user and bot, one reply per burst sent, nothing twice.
        for bot in BOTS:
            for user in USERS:
                got = w.replies(user, bot)
                assert len(got) == await w.sent_bursts(bot, user), (bot, user, got)
                assert len(got) == len(set(got)), (bot, user, got)
        for n, bot in enumerate(BOTS):
            said = " ".join(w.replies(USERS[n], bot))
            for text in (f"hello bot {bot}", "one more thing", "after the takeover"):
                assert text in said, (bot, said)
            assert f"me too, {bot}" in " ".join(w.replies(USERS[3], bot))
        survivor.stop.set()
        assert await asyncio.wait_for(survivor.task, 30) == 0
    print(f"fleet failover: {failover:.1f} s until the survivor served all three bots")


async def test_a_bot_disabled_mid_burst_is_answered_then_dropped_and_re_enabled(
    fleet_world: FleetWorld,
) -> None:
    w = fleet_world
    account_id = await w.add_bot(BOTS[0], debounce_seconds=3)
    bot, user = BOTS[0], USERS[0]

    async def set_active(active: bool) -> None:
        async with w.sessionmaker() as session, session.begin():
            await session.execute(
                update(account)
                .where(account.c.id == account_id)
                .values(active=active, updated_at=account.c.updated_at)
            )

    async with w.runtime().build_worker():
        replica = await w.start_replica()
        await until(lambda: replica.listening(w.keys[bot]), "the bot listened to")
        w.server.world.send(user, types.PeerUser(bot), "book me a haircut")
        await asyncio.sleep(0.5)  # the message is in, its 3 s quiet period running
        await set_active(False)
        # Drained, not dropped: the burst in flight is still answered.
        await until(lambda: w.replies(user, bot), "the reply to the burst in flight")
        await until(lambda: not replica.fleet.serving, "the bot dropped")
        assert await w.sent_bursts(bot, user) == 1
        w.server.world.send(user, types.PeerUser(bot), "anyone there?")
        await asyncio.sleep(1.5)  # no listener serves the bot: nothing is answered
        assert len(w.replies(user, bot)) == 1

        await set_active(True)
        await until(lambda: replica.listening(w.keys[bot]), "the bot listened to again")
        # Catch-up brings the message sent while it was off.
        await until(lambda: len(w.replies(user, bot)) == 2, "the missed message answered")
        assert "anyone there?" in w.replies(user, bot)[1]
        replica.stop.set()
        assert await asyncio.wait_for(replica.task, 30) == 0


async def readiness(port: int) -> dict[str, bool]:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return {}
    writer.write(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
    raw = await reader.read()
    writer.close()
    return dict(json.loads(raw.partition(b"\r\n\r\n")[2]))


@pytest.mark.e2e
async def test_a_replica_killed_with_sigkill_leaves_its_bots_to_the_other(
    fleet_world: FleetWorld,
) -> None:
    """Two `lull ingest` processes (no LULL_TG_ACCOUNT); the one with two bots is killed
    with SIGKILL mid-burst: its locks die with its connections, the other serves all
    three within seconds, and every message is answered exactly once."""
    w = fleet_world
    for bot in BOTS:
        await w.add_bot(bot)
    ports = [free_port(), free_port()]
    procs = []
    for port in ports:
        env = lull_env(
            new_data_dir(),
            LULL_DATABASE_URL=w.database_url,
            LULL_TEMPORAL_ADDRESS=w.env.client.service_client.config.target_host,
            LULL_TASK_QUEUE=w.tq,
            LULL_TG_API_ID="1",
            LULL_TG_API_HASH="x",
            LULL_TG_SERVER=f"127.0.0.1:{w.server.port}",
            LULL_DEBOUNCE_SECONDS="1",
            LULL_HEALTH_PORT=str(port),
            LULL_FLEET_POLL_SECONDS="0.5",
            LULL_FLEET_CLAIM_AFTER_SECONDS="2",
            LULL_MAX_WAIT_SECONDS="5",
            LULL_UNFLUSHED_SWEEP_SECONDS="2",
        )
        procs.append(
            await asyncio.create_subprocess_exec(
                *lull_command("ingest"),
                cwd=ROOT,
                env=env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        )
    try:
        async with w.runtime().build_worker():

            async def serving() -> list[set[int]]:
                found = []
                for port in ports:
                    checks = await readiness(port)
                    found.append({b for b in BOTS if checks.get(f"telegram:{w.keys[b]}")})
                return found

            async def split() -> bool:
                return sorted(len(s) for s in await serving()) == [1, 2]

            await until(split, "two processes serving 2 and 1 bots", within=60)
            for n, bot in enumerate(BOTS):
                w.server.world.send(USERS[n], types.PeerUser(bot), f"hello bot {bot}")
            for n, bot in enumerate(BOTS):
                await until(lambda n=n, bot=bot: w.replies(USERS[n], bot), f"a reply from {bot}")

            loads = await serving()
            doomed = max(range(2), key=lambda i: len(loads[i]))
            for n, bot in enumerate(BOTS):
                w.server.world.send(USERS[n], types.PeerUser(bot), "one more thing")
            procs[doomed].send_signal(signal.SIGKILL)
            await procs[doomed].wait()

            async def taken_over() -> bool:
                return len((await serving())[1 - doomed]) == 3

            failover = await until(taken_over, "the survivor serving all three", within=60)
            for n, bot in enumerate(BOTS):
                w.server.world.send(USERS[n], types.PeerUser(bot), "after the takeover")
            await until(w.all_answered, "every message answered", within=90)
            for n, bot in enumerate(BOTS):
                said = w.replies(USERS[n], bot)
                assert len(said) == await w.sent_bursts(bot, USERS[n]), (bot, said)
                assert len(said) == len(set(said)), (bot, said)
                for text in (f"hello bot {bot}", "one more thing", "after the takeover"):
                    assert text in " ".join(said), (bot, said)
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 60)
    print(f"fleet failover after SIGKILL: {failover:.1f} s until the survivor served all three")
