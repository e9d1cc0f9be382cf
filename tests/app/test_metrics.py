"""Lull's metrics (LULL_METRICS_PORT): counters emitted through the SDK's metric meter,
scraped from the Prometheus endpoint of a real SDK runtime."""

from __future__ import annotations

import asyncio
import re
import urllib.request
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.bursts import BurstActivities
from app.settings import load_settings
from app.telemetry import runtime_for
from db.queries import replies as db_replies
from testkit.servers import free_port, task_queue
from testkit.workflow_harness import Recorder, conversation_input, new_worker, signal_message
from tests.activities.test_idempotency import persist_input, seed
from workflows.payloads import MessageReceived, MidReplyInput


def scrape(port: int) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return [line for line in response.read().decode().splitlines() if line.startswith("lull_")]


def test_no_metrics_port_no_runtime_of_our_own() -> None:
    assert runtime_for(load_settings(metrics_port=None)) is None


async def test_supersedes_and_the_spend_they_discard_are_counted(
    dev_env: WorkflowEnvironment, sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    port = free_port()
    runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(f"127.0.0.1:{port}")))
    client = await Client.connect(dev_env.client.service_client.config.target_host, runtime=runtime)
    tq, rec = task_queue(), Recorder(slow_llm=asyncio.Event())
    inp = conversation_input(tq, debounce=1, idle_close=2, mid_reply="supersede")
    async with new_worker(client, rec, tq):
        handle = await signal_message(client, inp, tq, 1)
        for _ in range(200):
            if rec.generating:
                break
            await asyncio.sleep(0.05)
        await handle.signal("message_received", MessageReceived(2, 7, 5))
        for _ in range(200):
            if rec.mid_replies:
                break
            await asyncio.sleep(0.05)
        assert rec.slow_llm is not None
        rec.slow_llm.set()
        await handle.result()
    # A reply made, then discarded by a supersede: its tokens and cost are counted once.
    conv, ids = await seed(sessionmaker, account_id, ["made, never sent"], chat=61)
    bursts, env = BurstActivities(sessionmaker), ActivityEnvironment()
    env.metric_meter = runtime.metric_meter
    made = persist_input(conv, ids)
    await env.run(bursts.persist_burst, made)
    async with sessionmaker() as session, session.begin():
        from db.queries import bursts as db_bursts

        row = await db_bursts.load_burst(session, made.burst_key)
        assert row is not None
        await db_replies.insert_reply(
            session,
            burst_id=row.id,
            text="re",
            model="m",
            prompt_tokens=30,
            completion_tokens=12,
            cost=0.25,
            created_at=datetime.now(UTC),
        )
    await env.run(
        bursts.record_mid_reply, MidReplyInput(made.burst_key, True, "superseded (1 of 2)")
    )
    lines = scrape(port)
    assert any(
        line.startswith("lull_mid_reply")
        and 'outcome="superseded"' in line
        and 'stage="call"' in line
        and line.endswith(" 1")
        for line in lines
    ), lines
    assert any(
        line.startswith("lull_discarded_tokens")
        and 'how="discarded"' in line
        and line.endswith(" 42")
        for line in lines
    ), lines
    assert any(
        line.startswith("lull_discarded_cost_micros") and line.endswith(" 250000") for line in lines
    ), lines
    # Labels never name a chat, a user or a burst: only outcomes (and the SDK's own).
    names = {name for line in lines for name in re.findall(r'(\w+)="', line)}
    sdk = {"activity_type", "namespace", "service_name", "task_queue", "workflow_type"}
    assert names <= {"how", "outcome", "stage"} | sdk, names
