"""The admin API on the real ASGI app (httpx), over real Postgres and the real dev server,
with a real worker (echo LLM) and, per bot, a send worker whose sender stands in for
Telegram (it de-duplicates by random_id, as Telegram does)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

import worker as worker_module
from activities.replies import ReplyOptions
from api.app import create_app
from api.context import ApiContext, ApiOptions
from api.users import create_user
from channels.base import DedupingSender, SendTarget
from db.sealed import SecretBox
from inbound.incoming import Account, IncomingMessage
from inbound.ingestor import Ingestor
from llm.echo import EchoProvider
from testkit.servers import task_queue
from workflows.payloads import ConversationConfig

CHAT_HASH_KEY = b"api-test-chat-hash-key"
PASSWORD = "correct horse battery staple"


class TelegramStandIn(DedupingSender):
    def __init__(self) -> None:
        super().__init__()
        self.delivered: list[tuple[int, str]] = []
        # While set, Telegram answers CHAT_WRITE_FORBIDDEN (the bot was removed).
        self.forbidden = False

    async def send(self, target: SendTarget, text: str, *, random_id: int) -> int | None:
        if self.forbidden:
            from telethon import errors

            from activities.errors import from_telegram_error

            raise from_telegram_error(errors.ChatWriteForbiddenError(request=None))
        return await super().send(target, text, random_id=random_id)

    async def deliver(self, target: SendTarget, text: str, message_id: int) -> None:
        self.delivered.append((target.chat_id, text))


@dataclass
class Deployment:
    env: WorkflowEnvironment
    sessionmaker: async_sessionmaker[AsyncSession]
    ctx: ApiContext
    tq: str
    base_url: str = "http://lull.test"
    sender: TelegramStandIn = field(default_factory=TelegramStandIn)
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        app = create_app(self.ctx)
        transport = httpx.ASGITransport(app=app, client=(kwargs.pop("ip", "10.0.0.1"), 5000))
        return httpx.AsyncClient(transport=transport, base_url=self.base_url, **kwargs)

    async def user(self, role: str = "admin") -> str:
        name = f"{role}-{uuid.uuid4().hex[:8]}"
        await create_user(self.sessionmaker, username=name, password=PASSWORD, role=role)
        return name

    async def signed_in(self, role: str = "admin") -> httpx.AsyncClient:
        """A client with a session of a new operator of ``role`` (closed with the test)."""
        http = await self._stack.enter_async_context(self.client())
        name = await self.user(role)
        answer = await http.post("/auth/login", json={"username": name, "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        return http

    async def serve_sends(self, bot: dict[str, Any]) -> None:
        """The bot's send queue polled, as its listener would."""
        from app.send_worker import build_send_worker

        worker = build_send_worker(
            self.env.client,
            task_queue=self.tq,
            account=Account(bot["id"], bot["key"]),
            sessionmaker=self.sessionmaker,
            sender=self.sender,
        )
        await self._stack.enter_async_context(worker)

    def ingestor(self, bot: dict[str, Any], *, debounce: float = 30.0) -> Ingestor:
        return Ingestor(
            self.env.client,
            self.sessionmaker,
            Account(bot["id"], bot["key"]),
            config=ConversationConfig(debounce, 10, 600, search_attributes=True),
            task_queue=self.tq,
            chat_hash_key=CHAT_HASH_KEY,
        )


def message(chat: int, message_id: int, text: str, *, sender: int | None = None) -> IncomingMessage:
    return IncomingMessage(chat, sender or chat, message_id, text, datetime.now(UTC))


@pytest.fixture
async def deployment(
    dev_env: WorkflowEnvironment, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Deployment]:
    tq = task_queue()
    ctx = ApiContext(
        sessionmaker,
        dev_env.client,
        SecretBox.parse(SecretBox.new_key_setting("test")),
        ApiOptions(task_queue=tq, cookie_secure=False, outage_window_seconds=60),
    )
    worker = worker_module.build_worker(
        dev_env.client,
        task_queue=tq,
        sessionmaker=sessionmaker,
        provider=EchoProvider(),
        options=ReplyOptions("echo", "be brief", history_bursts=5),
        workflow_modules="per-run",
    )
    dep = Deployment(dev_env, sessionmaker, ctx, tq)
    async with worker, dep._stack:
        yield dep


def new_bot(**fields: Any) -> dict[str, Any]:
    return {"key": f"bot-{uuid.uuid4().hex[:8]}", "name": "Support", **fields}
