"""LullPhase upserts, read back from real histories on the dev server (which registers the
search attribute): each upsert is a history event and a visibility write, so a phase that
moves with every burst is costly; runs started with ``steady_phase`` change it only for a
handoff."""

from __future__ import annotations

import asyncio
import json

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from tests.conftest import task_queue
from tests.workflows.helpers import Recorder, conversation_input, new_worker, signal_message
from workflows.conversation import ConversationWorkflow
from workflows.payloads import PauseInput


async def until_sent(rec: Recorder, count: int) -> None:
    for _ in range(200):
        if len(rec.sent) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} bursts not sent in time")


async def phases_upserted(handle: WorkflowHandle) -> list[str]:  # type: ignore[type-arg]
    values = []
    history = await handle.fetch_history()
    for event in history.events:
        if not event.HasField("upsert_workflow_search_attributes_event_attributes"):
            continue
        fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
        payload = fields.indexed_fields.get("LullPhase")
        if payload is not None:
            values.append(json.loads(payload.data))
    return values


async def two_bursts_then_handoff(env: WorkflowEnvironment, *, steady: bool) -> list[str]:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(
        tq, debounce=1, idle_close=60, search_attributes=True, steady_phase=steady
    )
    async with new_worker(env.client, rec, tq):
        handle = await signal_message(env.client, inp, tq, 1)
        await until_sent(rec, 1)
        await signal_message(env.client, inp, tq, 2)
        await until_sent(rec, 2)
        await handle.execute_update(ConversationWorkflow.pause, PauseInput(None))
        await handle.execute_update(ConversationWorkflow.resume)
        phases = await phases_upserted(handle)
        await handle.terminate("test over")
    return phases


@pytest.mark.e2e
async def test_a_steady_phase_changes_only_for_a_handoff(dev_env: WorkflowEnvironment) -> None:
    phases = await two_bursts_then_handoff(dev_env, steady=True)
    assert phases == ["active", "paused", "active"]


@pytest.mark.e2e
async def test_runs_without_steady_phase_keep_their_per_burst_phases(
    dev_env: WorkflowEnvironment,
) -> None:
    # What runs started before steady_phase do, and replay must repeat: three a burst.
    phases = await two_bursts_then_handoff(dev_env, steady=False)
    burst = ["collecting", "answering", "idle"]
    assert phases == burst + burst + ["paused", "idle"]
