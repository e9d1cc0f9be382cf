"""A conversation given a config out of bounds clamps it and answers; a bad pause is
refused without failing a task."""

from __future__ import annotations

import math

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from testkit.servers import task_queue
from testkit.workflow_harness import Recorder, conversation_input, new_worker, signal_message
from workflows.config_check import CONFIG_BOUNDS, checked_config
from workflows.conversation import ConversationWorkflow
from workflows.payloads import ConversationConfig, PauseInput


def test_a_config_within_bounds_is_kept_as_it_is() -> None:
    config = ConversationConfig(5, 10, 900, typing_windows={"record_audio": 15})
    assert checked_config(config) == (config, [])


def test_values_out_of_bounds_are_clamped_and_named() -> None:
    config = ConversationConfig(
        math.nan,
        10,
        1e30,
        max_wait_seconds=math.inf,
        typing_window_seconds=-1,
        typing_windows={"record_audio": math.inf},
    )
    fixed, problems = checked_config(config)
    assert fixed.debounce_seconds == 5.0
    assert fixed.idle_close_seconds == CONFIG_BOUNDS["idle_close_seconds"]
    assert fixed.max_wait_seconds == CONFIG_BOUNDS["max_wait_seconds"]
    assert fixed.typing_window_seconds == 0
    assert fixed.typing_windows == {"record_audio": CONFIG_BOUNDS["typing_window_seconds"]}
    assert len(problems) == 5 and any("max_wait_seconds=inf" in p for p in problems)


async def failed_tasks(handle) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        e.workflow_task_failed_event_attributes.failure.message
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]


async def test_a_conversation_given_infinite_timers_still_answers(
    time_env: WorkflowEnvironment,
) -> None:
    # These values failed every workflow task with OverflowError, for the life of the run.
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(
        tq, debounce=2, idle_close=1e30, max_wait_seconds=math.inf, typing_window_seconds=math.inf
    )
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        await time_env.sleep(4)
        assert rec.bursts() == [[1]]
        assert await failed_tasks(handle) == []
        await handle.terminate("test over")


@pytest.mark.parametrize("minutes", [math.nan, math.inf, 1e12, 0, -5])
async def test_a_pause_of_no_sane_length_is_refused_and_the_run_goes_on(
    time_env: WorkflowEnvironment, minutes: float
) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=2)
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(ConversationWorkflow.pause, PauseInput(minutes))
        assert "pause minutes" in str(refused.value.cause)
        await time_env.sleep(4)
        assert rec.bursts() == [[1]]
        assert await failed_tasks(handle) == []
        state = await handle.query(ConversationWorkflow.state)
        assert not state.paused
        await handle.terminate("test over")
