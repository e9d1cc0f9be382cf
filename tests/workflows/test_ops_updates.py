"""Ops controls: flush_now, clear, pause (with auto-resume) and resume."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from testkit.servers import task_queue
from testkit.workflow_harness import Recorder, conversation_input, new_worker, signal_message
from workflows.conversation import ConversationWorkflow
from workflows.payloads import PauseInput


async def test_flush_now_answers_the_buffer_at_once(time_env: WorkflowEnvironment) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=30)
    async with new_worker(time_env.client, rec, tq):
        await signal_message(time_env.client, inp, tq, 1)
        handle = await signal_message(time_env.client, inp, tq, 2)
        state = await handle.execute_update(ConversationWorkflow.flush_now)
        # The state once the flush took the buffer (it used to be the state before).
        assert (state.buffered, state.bursts_flushed) == (0, 1)
        await time_env.sleep(1)
        assert rec.bursts() == [[1, 2]]
        await handle.result()
    assert rec.persisted[0].reason == "manual"
    assert rec.generated == rec.sent == [rec.persisted[0].burst_key]


async def test_clear_records_the_buffer_unanswered(time_env: WorkflowEnvironment) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=5)
    async with new_worker(time_env.client, rec, tq):
        await signal_message(time_env.client, inp, tq, 1)
        handle = await signal_message(time_env.client, inp, tq, 2)
        await handle.execute_update(ConversationWorkflow.clear)
        await signal_message(time_env.client, inp, tq, 3)
        await handle.result()
    assert rec.bursts() == [[1, 2], [3]]
    cleared, answered = rec.persisted
    assert (cleared.reason, cleared.drop_as) == ("cleared", "cleared")
    assert (answered.reason, answered.drop_as) == ("quiet", None)
    assert rec.generated == [answered.burst_key]


async def test_pause_records_without_replying_until_resumed(time_env: WorkflowEnvironment) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=5, idle_close=60)
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        state = await handle.execute_update(ConversationWorkflow.pause, PauseInput())
        assert state.paused and state.phase == "paused"
        await time_env.sleep(10)
        # Paused, nothing buffered, well past the idle close: the handoff is not forgotten.
        await time_env.sleep(120)
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        await handle.execute_update(ConversationWorkflow.resume)
        await signal_message(time_env.client, inp, tq, 2)
        await handle.result()
    assert rec.bursts() == [[1], [2]]
    assert [p.drop_as for p in rec.persisted] == ["paused", None]
    assert rec.generated == [rec.persisted[1].burst_key]


async def test_a_pause_of_an_idle_conversation_outlives_the_idle_close(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=5, idle_close=60)
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        await time_env.sleep(7)
        assert rec.bursts() == [[1]]  # answered: nothing buffered, waiting to idle-close
        state = await handle.execute_update(ConversationWorkflow.pause, PauseInput())
        assert state.paused
        await time_env.sleep(200)
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        await signal_message(time_env.client, inp, tq, 2)
        await time_env.sleep(7)
        assert [p.drop_as for p in rec.persisted] == [None, "paused"]
        await handle.execute_update(ConversationWorkflow.resume)
        await signal_message(time_env.client, inp, tq, 3)
        await handle.result()
    assert [p.drop_as for p in rec.persisted] == [None, "paused", None]
    assert rec.generated == [rec.persisted[0].burst_key, rec.persisted[2].burst_key]


async def test_pause_resumes_by_itself_after_the_given_minutes(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=5, idle_close=600)
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        await handle.execute_update(ConversationWorkflow.pause, PauseInput(minutes=2))
        await time_env.sleep(130)
        state = await handle.query(ConversationWorkflow.state)
        assert state.paused is False
        await signal_message(time_env.client, inp, tq, 2)
        await handle.result()
    assert [p.drop_as for p in rec.persisted] == ["paused", None]


async def test_pause_rejects_a_nonsense_duration(time_env: WorkflowEnvironment) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq)
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(ConversationWorkflow.pause, PauseInput(minutes=0))
        state = await handle.query(ConversationWorkflow.state)
        assert state.paused is False
        await handle.result()
