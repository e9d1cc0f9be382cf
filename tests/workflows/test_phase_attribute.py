"""LullPhase and patch upserts, read back from real histories on the dev server (which
registers the search attribute). Each upsert is a history event and a visibility write,
so a phase that moved with every burst was costly: runs since the lull-2026-12 patch set
it once and change it only for a handoff, and call one patch instead of two."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from testkit.servers import task_queue
from testkit.workflow_harness import (
    Recorder,
    conversation_input,
    new_worker,
    signal_message,
    until_sent,
    upserted,
)
from workflows.conversation import ConversationWorkflow
from workflows.payloads import PauseInput
from workflows.versions import RELEASES

HISTORIES = Path(__file__).parent / "histories"


@pytest.mark.e2e
async def test_a_new_run_sets_its_phase_once_and_changes_it_only_for_a_handoff(
    dev_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=1, idle_close=60, search_attributes=True)
    async with new_worker(dev_env.client, rec, tq):
        handle = await signal_message(dev_env.client, inp, tq, 1)
        await until_sent(dev_env, rec, 1)
        await signal_message(dev_env.client, inp, tq, 2)
        await until_sent(dev_env, rec, 2)
        await handle.execute_update(ConversationWorkflow.pause, PauseInput(None))
        await handle.execute_update(ConversationWorkflow.resume)
        history = await handle.fetch_history()
        await handle.terminate("test over")
    assert upserted(history, "LullPhase") == ["active", "paused", "active"]
    # One patch, so one TemporalChangeVersion write, for two bursts and a handoff.
    assert upserted(history, "TemporalChangeVersion") == [[RELEASES[0]]]  # the newest only


def test_the_previous_release_history_guards_per_burst_phases() -> None:
    """The stored run of the release before lull-2026-12 (recorded with its own code)
    upserts LullPhase three times a burst; the replay test checks today's code repeats it."""
    path = HISTORIES / "previous_release_phases.json"
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    burst = ["collecting", "answering", "idle"]
    assert upserted(history, "LullPhase") == burst + ["paused", "idle"] + burst
    assert upserted(history, "TemporalChangeVersion")[-1] == [
        "persist-burst-local-activity",
        "send-reply-heartbeat",
    ]
