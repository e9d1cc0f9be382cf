"""`lull failed` and `lull retry` as an operator runs them: real CLI processes, the dev
server, Postgres, and a worker with the real activities."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.bursts import BurstActivities
from activities.errors import from_telegram_error
from app.send_worker import build_send_worker
from inbound.accounts import register_account
from inbound.incoming import Account
from testkit.keys import TEST_CHAT_HASH_KEY
from testkit.servers import task_queue
from tests.activities.test_idempotency import (
    OPTIONS,
    CountingProvider,
    RecordingSender,
    persist_input,
    seed,
)
from tests.e2e.helpers import ROOT, lull_command
from worker import build_worker
from workflows.payloads import MarkBurstFailedInput

pytestmark = pytest.mark.e2e


async def lull(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        lull_command(*args),
        cwd=ROOT,
        env={
            **os.environ,
            "LULL_CHAT_HASH_KEY": TEST_CHAT_HASH_KEY,
            **env,
            "PYTHONWARNINGS": "ignore",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def workers(
    dev_env: WorkflowEnvironment,
    tq: str,
    account: Account,
    sessionmaker: async_sessionmaker[AsyncSession],
    provider: CountingProvider,
    sender: RecordingSender,
) -> tuple[Worker, Worker]:
    """The worker with the real activities, and the account's send worker."""
    worker = build_worker(
        dev_env.client, task_queue=tq, sessionmaker=sessionmaker, provider=provider, options=OPTIONS
    )
    sends = build_send_worker(
        dev_env.client, task_queue=tq, account=account, sessionmaker=sessionmaker, sender=sender
    )
    return worker, sends


async def test_an_operator_lists_failed_bursts_and_retries_one_which_is_answered_once(
    dev_env: WorkflowEnvironment,
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    key = f"failed-{uuid.uuid4().hex[:8]}"
    account: Account = await register_account(
        sessionmaker, key=key, kind="replay", display_name=key
    )
    conv, ids = await seed(sessionmaker, account.id, ["book me", "a haircut"], chat=77)
    burst = persist_input(conv, ids).burst_key
    bursts = BurstActivities(sessionmaker)
    await bursts.persist_burst(persist_input(conv, ids))
    await bursts.mark_burst_failed(MarkBurstFailedInput(burst, "LLMRetryable", "provider 503"))

    tq = task_queue()
    env = {
        "LULL_DATABASE_URL": database_url,
        "LULL_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "LULL_TASK_QUEUE": tq,
    }
    listed = await lull(env, "failed", "--account", key)
    assert listed.returncode == 0, listed.stderr
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (row["burst_key"], row["chat_id"], row["error_type"]) == (burst, 77, "LLMRetryable")
    assert "book me" not in listed.stdout  # ids and errors only, never what users wrote

    provider, sender = CountingProvider(), RecordingSender()
    worker, sends = workers(dev_env, tq, account, sessionmaker, provider, sender)
    async with worker, sends:
        retried = await lull(env, "retry", burst)
        assert retried.returncode == 0, retried.stderr
        assert json.loads(retried.stdout) == {
            "status": "sent",
            "generated": True,
            "chunks_sent": 1,
            "error_type": None,
            "detail": None,
        }
        # Harmless: the retry workflow completes (green), saying why nothing was done.
        again = await lull(env, "retry", burst)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["status"] == "nothing_to_retry"
        assert "nothing to retry" in again.stderr and "is sent, not failed" in again.stderr
        outcome = await dev_env.client.get_workflow_handle(f"retry/{burst}").describe()
        assert outcome.status == WorkflowExecutionStatus.COMPLETED
    assert len(provider.prompts) == 1 and len(sender.sends) == 1
    assert (await lull(env, "failed", "--account", key)).stdout == ""
    missing = await lull(env, "retry", "b-nosuchburst")
    assert missing.returncode == 1 and "no burst b-nosuchburst" in missing.stderr


async def failed_send(
    sessionmaker: async_sessionmaker[AsyncSession], prefix: str, *, chat: int
) -> tuple[Account, str]:
    """A new account with one burst whose send failed: the account and the burst key."""
    key = f"{prefix}-{uuid.uuid4().hex[:8]}"
    account = await register_account(sessionmaker, key=key, kind="replay", display_name=key)
    conv, ids = await seed(sessionmaker, account.id, ["hi"], chat=chat)
    burst = persist_input(conv, ids).burst_key
    bursts = BurstActivities(sessionmaker)
    await bursts.persist_burst(persist_input(conv, ids))
    await bursts.mark_burst_failed(MarkBurstFailedInput(burst, "TelegramRetryable", "timeout"))
    return account, burst


def cli_env(dev_env: WorkflowEnvironment, database_url: str, tq: str) -> dict[str, str]:
    return {
        "LULL_DATABASE_URL": database_url,
        "LULL_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "LULL_TASK_QUEUE": tq,
    }


class RefusedSender(RecordingSender):
    async def send(self, target: Any, text: str, *, random_id: int) -> int | None:
        from telethon import errors

        raise from_telegram_error(errors.ChatWriteForbiddenError(request=None))


async def test_a_retry_whose_delivery_fails_again_fails_red_and_says_so(
    dev_env: WorkflowEnvironment,
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    account, burst = await failed_send(sessionmaker, "refused", chat=78)
    tq = task_queue()
    env = cli_env(dev_env, database_url, tq)
    worker, sends = workers(dev_env, tq, account, sessionmaker, CountingProvider(), RefusedSender())
    async with worker, sends:
        retried = await lull(env, "retry", burst)
    assert retried.returncode == 1
    assert "failed too (TelegramRejected)" in retried.stderr
    outcome = await dev_env.client.get_workflow_handle(f"retry/{burst}").describe()
    assert outcome.status == WorkflowExecutionStatus.FAILED
    listed = await lull(env, "failed", "--account", account.key)
    assert json.loads(listed.stdout)["error_type"] == "TelegramRejected"


async def test_a_retry_with_no_listener_for_its_account_says_so_at_once(
    dev_env: WorkflowEnvironment,
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    account, burst = await failed_send(sessionmaker, "nolistener", chat=79)
    env = cli_env(dev_env, database_url, task_queue())
    started = await lull(env, "retry", burst, "--no-wait")
    assert started.returncode == 0, started.stderr
    assert "no listener polls" in started.stderr and f"/send/{account.key}" in started.stderr
    assert json.loads(started.stdout) == {"status": "started", "workflow_id": f"retry/{burst}"}
    await dev_env.client.get_workflow_handle(f"retry/{burst}").terminate("test over")


async def test_all_failed_bursts_of_an_account_are_retried_oldest_first(
    dev_env: WorkflowEnvironment,
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # After a long outage (a FLOOD_WAIT beyond the outage window, a revoked session) an
    # operator retries every failed burst at once, oldest first (a chat's replies in order).
    account, first = await failed_send(sessionmaker, "all", chat=80)
    conv, ids = await seed(sessionmaker, account.id, ["later"], chat=81)
    second = persist_input(conv, ids).burst_key
    bursts = BurstActivities(sessionmaker)
    await bursts.persist_burst(persist_input(conv, ids))
    await bursts.mark_burst_failed(MarkBurstFailedInput(second, "TelegramAccountFatal", "401"))
    tq = task_queue()
    env = cli_env(dev_env, database_url, tq)
    sender = RecordingSender()
    worker, sends = workers(dev_env, tq, account, sessionmaker, CountingProvider(), sender)
    async with worker, sends:
        retried = await lull(env, "retry", "--all-failed", "--account", account.key)
    assert retried.returncode == 0, retried.stderr
    lines = [json.loads(line) for line in retried.stdout.splitlines()]
    assert lines == [
        {"burst_key": first, "status": "sent"},
        {"burst_key": second, "status": "sent"},
    ]
    assert "retried 2 failed bursts, 0 failed again" in retried.stderr
    assert (await lull(env, "failed", "--account", account.key)).stdout == ""
    both = await lull(env, "retry", first, "--all-failed")
    assert both.returncode == 2 and "not both" in both.stderr
