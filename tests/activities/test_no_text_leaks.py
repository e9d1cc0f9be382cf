"""A database error on a burst never carries the user's text anywhere Lull writes it: not
into the Temporal history, the burst or alert row, a log line or `lull failed`.

The echo LLM repeats the message, and a trigger refuses the reply row whose text holds
the marker, so the failing statement's parameters hold the user's text.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from app.send_worker import build_send_worker
from db.tables import alert, burst, message
from inbound.incoming import IncomingMessage
from llm.echo import EchoProvider
from testkit.keys import TEST_CHAT_HASH_KEY
from testkit.servers import task_queue
from tests.activities.test_idempotency import OPTIONS, RecordingSender
from tests.conftest import ROOT
from tests.inbound.test_ingestor import NOW, make_ingestor
from worker import build_worker


async def refuse_replies_holding(engine: AsyncEngine, marker: str) -> str:
    name = f"refuse_{marker.replace('-', '_')}"
    async with engine.begin() as conn:
        await conn.execute(
            text(
                f"create function {name}() returns trigger language plpgsql as "
                f"$$ begin raise exception 'reply refused by test trigger'; end $$"
            )
        )
        await conn.execute(
            text(
                f"create trigger {name} before insert on reply for each row "
                f"when (new.text like '%{marker}%') execute function {name}()"
            )
        )
    return name


async def drop_trigger(engine: AsyncEngine, name: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(f"drop trigger {name} on reply"))
        await conn.execute(text(f"drop function {name}()"))


async def test_a_database_error_on_a_burst_leaks_its_text_nowhere(
    dev_env: WorkflowEnvironment,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    marker = f"secret-{uuid.uuid4().hex[:12]}"
    trigger = await refuse_replies_holding(engine, marker)
    tq = task_queue()
    ingestor = await make_ingestor(dev_env, sessionmaker, tq)
    workers = (
        build_worker(
            dev_env.client,
            task_queue=tq,
            sessionmaker=sessionmaker,
            provider=EchoProvider(),
            options=OPTIONS,
        ),
        build_send_worker(
            dev_env.client,
            task_queue=tq,
            account=ingestor.account,
            sessionmaker=sessionmaker,
            sender=RecordingSender(),
        ),
    )
    caplog.set_level(logging.DEBUG)
    try:
        async with workers[0], workers[1]:
            result = await ingestor.message(
                IncomingMessage(
                    chat_id=77, sender_id=5, message_id=1, text=f"my card is {marker}", sent_at=NOW
                )
            )
            row = None
            for _ in range(200):
                async with sessionmaker() as session:
                    row = (
                        await session.execute(
                            select(burst)
                            .join(message, message.c.burst_id == burst.c.id)
                            .where(message.c.account_id == ingestor.account.id)
                        )
                    ).first()
                if row is not None and row.status == "failed":
                    break
                await asyncio.sleep(0.1)
            assert row is not None and row.status == "failed", row
            handle = dev_env.client.get_workflow_handle(result.workflow_id)
            history = (await handle.fetch_history()).to_json()
            await handle.terminate("test over")
    finally:
        await drop_trigger(engine, trigger)

    assert row.error_type == "DatabaseError"
    assert "RaiseError" in row.error and marker not in row.error
    assert marker not in history
    assert "DatabaseError" in history  # the failure is there, named by type
    async with sessionmaker() as session:
        alerts = (await session.execute(select(alert.c.error))).scalars().all()
    assert alerts and not any(marker in (a or "") for a in alerts)
    logged = "\n".join(r.getMessage() + (caplog_text(r) or "") for r in caplog.records)
    assert "burst" in logged  # the failure was logged
    assert marker not in logged

    lull = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "cli.py"),
        "failed",
        "--account",
        ingestor.account.key,
        env={
            **os.environ,
            "LULL_DATABASE_URL": database_url,
            "LULL_CHAT_HASH_KEY": TEST_CHAT_HASH_KEY,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await lull.communicate()
    assert lull.returncode == 0, err
    assert row.burst_key in out.decode()
    assert marker not in (out + err).decode()


def caplog_text(record: logging.LogRecord) -> str | None:
    if record.exc_info:
        return logging.Formatter().formatException(record.exc_info)
    return record.exc_text
