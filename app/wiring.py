"""Process wiring shared by the CLI commands: servers, migrations, clients and workers.

Every client is built here once per process and injected; nothing below reads settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

import worker as worker_module
from app.dev_stack import Stack, StackError, dev_stack_running, running_stack, wait_for_temporal
from app.health import Check
from app.llm_factory import build_provider
from app.masking import mask_url
from app.send_worker import build_send_worker
from app.settings import Settings
from app.telemetry import runtime_for
from channels.base import ChannelSender
from db import migrate
from db.engine import make_engine, make_sessionmaker
from db.sealed import SecretBox
from inbound.incoming import Account
from inbound.ingestor import Ingestor
from workflows.payloads import ConversationConfig

log = logging.getLogger("lull")


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    stack: Stack
    client: Client
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    search_attributes: bool = False

    def conversation_config(self) -> ConversationConfig:
        s = self.settings
        return ConversationConfig(
            debounce_seconds=s.debounce_seconds,
            max_burst_messages=s.max_burst_messages,
            idle_close_seconds=s.idle_close_seconds,
            max_wait_seconds=s.max_wait_seconds,
            max_burst_chars=s.max_burst_chars,
            typing_window_seconds=s.typing_window_seconds,
            typing_windows={
                "record_audio": s.recording_window_seconds,
                "record_video": s.recording_window_seconds,
                "upload": s.upload_window_seconds,
            },
            buffer_enabled=s.buffer_enabled,
            max_history_events=s.max_history_events,
            search_attributes=self.search_attributes,
            outage_window_seconds=s.outage_window_minutes * 60,
            mid_reply=s.mid_reply,
            max_supersedes=s.max_supersedes,
            hold_reply_while_typing=s.hold_reply_while_typing,
        )

    def dependency_checks(self) -> dict[str, Check]:
        """Readiness checks of the servers every process needs (health servers)."""

        async def temporal() -> bool:
            return bool(await self.client.service_client.check_health())

        async def postgres() -> bool:
            async with self.engine.connect() as conn:
                await conn.execute(text("select 1"))
            return True

        return {"temporal": temporal, "postgres": postgres}

    def build_ingestor(
        self,
        account: Account,
        *,
        config: ConversationConfig | None = None,
        commands: frozenset[str] | None = None,
    ) -> Ingestor:
        """The account's ingest seam; ``config`` and ``commands`` are the account's own
        (app/bot_settings.py), else the process's."""
        return Ingestor(
            self.client,
            self.sessionmaker,
            account,
            config=config or self.conversation_config(),
            task_queue=self.settings.task_queue,
            chat_hash_key=self.settings.chat_key,
            commands=self.settings.command_names if commands is None else commands,
            batch_signals=self.settings.ingest_batch_signals,
            signal_linger=self.settings.ingest_signal_linger_seconds,
        )

    def build_send_worker(self, account: Account, sender: ChannelSender) -> Worker:
        return build_send_worker(
            self.client,
            task_queue=self.settings.task_queue,
            account=account,
            sessionmaker=self.sessionmaker,
            sender=sender,
            random_id_trust_seconds=self.settings.tg_random_id_trust_seconds,
        )

    def build_worker(self) -> Worker:
        return worker_module.build_worker(
            self.client,
            task_queue=self.settings.task_queue,
            sessionmaker=self.sessionmaker,
            provider=build_provider(self.settings),
            options=worker_module.reply_options(self.settings),
            max_cached_workflows=self.settings.max_cached_workflows,
            max_concurrent_workflow_tasks=self.settings.max_concurrent_workflow_tasks,
            workflow_task_pollers=self.settings.workflow_task_pollers,
            workflow_modules=self.settings.workflow_modules,
            shutdown_grace_seconds=self.settings.worker_shutdown_seconds,
        )


async def check_database(engine: AsyncEngine, url: str) -> None:
    try:
        async with engine.connect() as conn:
            await conn.execute(text("select 1"))
    except Exception as exc:
        safe = mask_url(url)  # never print credentials
        raise StackError(
            f"Postgres at {safe} is unreachable: {type(exc).__name__}: {exc}"
        ) from None


@contextlib.asynccontextmanager
async def lull_runtime(
    settings: Settings, *, run_migrations: bool = True, attach: bool = False
) -> AsyncIterator[Runtime]:
    if settings.chat_hash_key is None:
        # Only the embedded dev stack gets here (settings refuse it elsewhere).
        log.warning(
            "LULL_CHAT_HASH_KEY is unset: chat and sender hashes use the public dev key, "
            "fine for the embedded dev stack only"
        )
    async with running_stack(settings, attach=attach) as stack:
        engine = make_engine(stack.database_url)
        try:
            await check_database(engine, stack.database_url)
            if run_migrations:
                await migrate.upgrade(stack.database_url)
            client = await wait_for_temporal(
                stack.temporal_address,
                settings.temporal_namespace,
                within=10,
                runtime=runtime_for(settings),
            )
            searchable = await ensure_search_attributes(client, settings.temporal_namespace)
            yield Runtime(settings, stack, client, engine, make_sessionmaker(engine), searchable)
        finally:
            await engine.dispose()


@contextlib.asynccontextmanager
async def database_only(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Postgres alone (configured, or the embedded one of a running `lull dev`), for
    commands that read only the transcript: they work while Temporal is down."""
    joining = dev_stack_running(settings) or settings.database_url is not None
    async with running_stack(settings, with_temporal=False, attach=joining) as stack:
        engine = make_engine(stack.database_url)
        try:
            await check_database(engine, stack.database_url)
            yield make_sessionmaker(engine)
        finally:
            await engine.dispose()


def secret_box(settings: Settings) -> SecretBox:
    """The box that seals stored credentials: LULL_SECRET_KEY, or for the embedded dev
    stack alone a key made once and kept in the data folder (0600)."""
    if settings.secret_key is not None:
        return SecretBox.parse(settings.secret_key.get_secret_value())
    if not settings.dev_mode:
        raise StackError(
            "LULL_SECRET_KEY is needed to store credentials in a configured database; "
            "make one with `lull secrets new-key`"
        )
    path = settings.data_dir / "secret.key"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as out:
            out.write(SecretBox.new_key_setting("dev"))
    return SecretBox.parse(path.read_text().strip())


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM, so every command shuts down the same clean way."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def banner(runtime: Runtime) -> str:
    s = runtime.settings
    ui = runtime.stack.ui_url or f"(external server {runtime.stack.temporal_address})"
    lines = [
        "Lull is running.",
        f"  Temporal UI : {ui}",
        f"  LLM         : {s.llm_label}",
        f"  Debounce    : {s.debounce_seconds:g} s quiet period, "
        f"at most {s.max_burst_messages} messages a burst",
    ]
    return "\n".join(lines)


async def ensure_search_attributes(client: Client, namespace: str) -> bool:
    """Register Lull's search attributes if the server lacks them. Returns whether they are
    there: without them, starting a workflow that sets them would fail, so we do without."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import (
        AddSearchAttributesRequest,
        ListSearchAttributesRequest,
    )

    from workflows import attributes

    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        missing = {
            key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
            for key in attributes.ALL
            if key.name not in listed.custom_attributes
        }
        if missing:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
            )
    except Exception as exc:  # a cloud namespace may forbid the operator API
        log.warning("search attributes unavailable, UI filters disabled: %s", exc)
        return False
    return True
