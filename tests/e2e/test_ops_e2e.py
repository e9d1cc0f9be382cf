"""The ops CLI (conversations, inspect, pause, resume, flush) against the real dev server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from inbound.accounts import register_account
from inbound.incoming import IncomingMessage
from inbound.ingestor import Ingestor
from inbound.send_queue import send_task_queue
from testkit.servers import task_queue
from testkit.workflow_harness import Recorder, new_worker, upserted
from tests.e2e.helpers import ROOT, lull_command
from workflows.ids import chat_reference
from workflows.payloads import ConversationConfig

pytestmark = pytest.mark.e2e

CHAT_HASH_KEY = b"ops-test-chat-hash-key"


async def lull(
    address: str, *args: str, database_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        "LULL_TEMPORAL_ADDRESS": address,
        **({"LULL_DATABASE_URL": database_url} if database_url else {}),
        "LULL_CHAT_HASH_KEY": CHAT_HASH_KEY.decode(),
        "PATH": "/usr/bin:/bin",
        "PYTHONWARNINGS": "ignore",
    }
    return await asyncio.to_thread(
        subprocess.run,
        lull_command(*args),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def listed_until_phase(
    address: str, account: str, phase: str
) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    """`lull conversations` for the account, again until its first row shows ``phase``
    (visibility is eventually consistent); the last listing and its rows."""
    for _ in range(50):
        listed = await lull(address, "conversations", "--account", account)
        rows = [json.loads(line) for line in listed.stdout.splitlines()]
        if rows and rows[0]["phase"] == phase:
            break
        await asyncio.sleep(0.2)
    return listed, rows


async def test_ops_commands_drive_an_open_conversation(
    dev_env: WorkflowEnvironment,
    sessionmaker: async_sessionmaker[AsyncSession],
    database_url: str,
) -> None:
    address = dev_env.client.service_client.config.target_host
    tq, rec = task_queue(), Recorder()
    key = f"ops-{uuid.uuid4().hex[:8]}"
    account = await register_account(sessionmaker, key=key, kind="replay", display_name=key)
    config = ConversationConfig(30, 10, 600, search_attributes=True)
    ingestor = Ingestor(
        dev_env.client,
        sessionmaker,
        account,
        config=config,
        task_queue=tq,
        chat_hash_key=CHAT_HASH_KEY,
    )
    sends = new_worker(dev_env.client, rec, send_task_queue(tq, key))
    async with new_worker(dev_env.client, rec, tq), sends:
        await ingestor.message(IncomingMessage(41, 5, 1, "hello", datetime.now(UTC)))

        listed, rows = await listed_until_phase(address, key, "active")
        assert listed.returncode == 0, listed.stderr
        (row,) = rows
        # Named by the chat's keyed hash: no Telegram id in the workflow id.
        ref = chat_reference(CHAT_HASH_KEY, key, 41, None)
        assert row["workflow_id"] == f"conversation/{key}/c-{ref}"
        assert row["account"] == key and row["phase"] == "active"
        # The keyed hash of the chat, never the chat id itself.
        assert row["chat_ref"] == ref
        assert row["chat_ref"] != "41"

        inspected = await lull(
            address, "inspect", "41", "--account", key, database_url=database_url
        )
        assert json.loads(inspected.stdout)["phase"] == "active"  # as the listing says
        state = json.loads(inspected.stdout)["state"]
        assert (state["buffered"], state["deadline_rule"]) == (1, "quiet period")
        assert state["bursts_superseded"] == 0
        assert json.loads(inspected.stdout)["supersedes"] == {
            "superseded": 0,
            "discarded": 0,
            "cancelled": 0,
            "discarded_tokens": 0,
            "discarded_cost": "0",
        }

        paused = await lull(address, "pause", "41", "--account", key, "--minutes", "5")
        assert json.loads(paused.stdout)["paused"] is True
        # A handoff is what ops filter by: the listing shows it.
        listed, rows = await listed_until_phase(address, key, "paused")
        assert [r["phase"] for r in rows] == ["paused"], listed.stderr
        # Refused where it is parsed, before anything reaches the workflow.
        refused = await lull(address, "pause", "41", "--account", key, "--minutes", "0")
        assert refused.returncode == 2 and "--minutes: must be above 0" in refused.stderr
        resumed = await lull(address, "resume", "41", "--account", key)
        assert json.loads(resumed.stdout)["paused"] is False

        flushed = await lull(address, "flush", "41", "--account", key)
        assert flushed.returncode == 0, flushed.stderr
        # The state after the flush took the buffer, not the one before.
        assert json.loads(flushed.stdout)["buffered"] == 0
        for _ in range(50):
            if rec.sent:
                break
            await asyncio.sleep(0.1)
    assert rec.bursts() == [[1]]
    assert rec.persisted[0].reason == "manual"
    # The ingest started the run "active", which the listing showed before any upsert:
    # the run wrote LullPhase only for the handoff.
    history = await dev_env.client.get_workflow_handle(row["workflow_id"]).fetch_history()
    assert upserted(history, "LullPhase") == ["paused", "active"]

    missing = await lull(address, "inspect", "999", "--account", key)
    assert missing.returncode == 1
    assert "no open conversation" in missing.stderr
