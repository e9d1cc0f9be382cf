"""Runs the real listener process code (`ingest_process_tmp.serve`) in-process against
the project's fake MTProto server, a real Temporal dev server and real Postgres."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from telethon.tl import types
from temporalio.testing import WorkflowEnvironment

import ingest as telegram_service
from app.dev_stack import Stack
from app.health import HealthServer
from app.settings import load_settings
from app.wiring import Runtime
from channels.telegram.session import PostgresSession
from db.tables import account, burst, conversation, message, telegram_update_state
from testkit.keys import TEST_BOX, TEST_SECRET_KEY
from testkit.servers import task_queue
from testkit.telegram_server.model import Visible
from testkit.telegram_server.server import FakeTelegramServer

BOT_ID = 100
ALICE = 200
BOB = 300
GROUP = 77


@dataclass
class Listener:
    task: asyncio.Task[int]
    stop: asyncio.Event
    health: HealthServer


@dataclass
class TelegramHarness:
    env: WorkflowEnvironment
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    server: FakeTelegramServer
    account_key: str = field(default_factory=lambda: f"tg-{uuid.uuid4().hex[:8]}")
    task_queue: str = field(default_factory=task_queue)
    settings_overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def world(self) -> Any:
        return self.server.world

    def runtime(self) -> Runtime:
        settings = load_settings(
            tg_api_id=1,
            tg_api_hash="x",
            tg_server=f"127.0.0.1:{self.server.port}",
            tg_account=self.account_key,
            task_queue=self.task_queue,
            debounce_seconds=1,
            health_port=0,
            drain_seconds=10,
            secret_key=TEST_SECRET_KEY,
            **self.settings_overrides,
        )
        stack = Stack(database_url="(test)", temporal_address="(test)", ui_url=None)
        return Runtime(settings, stack, self.env.client, self.engine, self.sessionmaker)

    async def seed_session(self, user_id: int = BOT_ID) -> None:
        session = await PostgresSession.load(self.sessionmaker, self.account_key, box=TEST_BOX)
        self.server.seed(session, user_id)
        await session.save()

    async def start_listener(self) -> Listener:
        stop = asyncio.Event()
        ready: asyncio.Future[HealthServer] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            telegram_service.serve(self.runtime(), stop, on_ready=ready.set_result)
        )
        waiting: set[asyncio.Future[Any]] = {task, ready}
        done, _ = await asyncio.wait(waiting, timeout=20, return_when="FIRST_COMPLETED")
        if task in done:
            task.result()  # raises what stopped it
            raise AssertionError("listener stopped before it was ready")
        assert ready in done, "listener not ready within 20 s"
        return Listener(task, stop, ready.result())

    async def stop_listener(self, listener: Listener) -> int:
        listener.stop.set()
        return await asyncio.wait_for(listener.task, 30)

    async def crash_listener(self, listener: Listener) -> None:
        """No drain, no checkpoint beyond the last one: the listener ends cancelled."""
        listener.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await listener.task

    async def saved_pts(self) -> int | None:
        """The account's update state (pts) as last saved; None when none ever was."""
        async with self.sessionmaker() as session:
            found = await session.execute(
                select(telegram_update_state.c.pts).where(
                    telegram_update_state.c.account_key == self.account_key,
                    telegram_update_state.c.entity_id == 0,
                )
            )
            return found.scalar_one_or_none()

    @contextlib.asynccontextmanager
    async def worker(self) -> AsyncIterator[None]:
        async with self.runtime().build_worker():
            yield

    def replies_to(self, user_id: int, peer: types.TypePeer | None = None) -> list[Visible]:
        """What the user sees from the bot."""
        peer = peer or types.PeerUser(BOT_ID)
        return [m for m in self.world.visible_to(user_id, peer) if m.sender_id == BOT_ID]

    async def wait_for_replies(
        self, user_id: int, count: int, *, peer: types.TypePeer | None = None, within: float = 20
    ) -> list[Visible]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        # The fake Telegram has no event for "a user saw a message"; poll it.
        while len(self.replies_to(user_id, peer)) < count and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return self.replies_to(user_id, peer)

    def workflow_id(self, chat_id: int, topic_id: int | None = None) -> str:
        """A chat's conversation workflow id, as the listener's ingest names it."""
        from workflows.ids import chat_reference, conversation_workflow_id

        key = self.runtime().settings.chat_key
        ref = chat_reference(key, self.account_key, chat_id, topic_id)
        return conversation_workflow_id(self.account_key, ref)

    async def conversation_state(self, chat_id: int, topic_id: int | None = None) -> Any:
        """The ``state`` query of a chat's conversation (``chat_id`` as Telethon marks it:
        a basic group's is negative)."""
        from workflows.conversation import ConversationWorkflow

        handle = self.env.client.get_workflow_handle(self.workflow_id(chat_id, topic_id))
        return await handle.query(ConversationWorkflow.state)

    async def replies_match_bursts(
        self, user_id: int, peer: types.TypePeer | None = None, *, within: float = 40
    ) -> None:
        """Once no burst of the account is still being answered, the user sees exactly one
        reply per burst sent in the chat. A retried send comes after the send's heartbeat
        timeout (15 s), so a short sleep cannot show that no second reply comes: the burst
        stays unfinished until its send completes, and a doubled send shows as one reply
        too many."""
        chat = user_id if peer is None or isinstance(peer, types.PeerUser) else -peer.chat_id
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            async with self.sessionmaker() as session:
                rows = (
                    await session.execute(
                        select(burst.c.status, conversation.c.chat_id)
                        .join(conversation, conversation.c.id == burst.c.conversation_id)
                        .join(account, account.c.id == conversation.c.account_id)
                        .where(account.c.key == self.account_key)
                    )
                ).all()
            if all(status not in ("persisted", "replied") for status, _ in rows):
                break
            assert loop.time() < deadline, f"bursts still being answered: {rows}"
            await asyncio.sleep(0.1)
        sent = sum(1 for status, chat_id in rows if status == "sent" and chat_id == chat)
        assert len(self.replies_to(user_id, peer)) == sent, (self.replies_to(user_id, peer), rows)

    async def messages(self) -> list[Any]:
        async with self.sessionmaker() as session:
            stmt = (
                select(message, burst.c.reason, burst.c.status)
                .join(account, account.c.id == message.c.account_id)
                .outerjoin(burst, burst.c.id == message.c.burst_id)
                .where(account.c.key == self.account_key)
                .order_by(message.c.chat_id, message.c.message_id)
            )
            return list(await session.execute(stmt))


def private(user_id: int = BOT_ID) -> types.PeerUser:
    return types.PeerUser(user_id)
