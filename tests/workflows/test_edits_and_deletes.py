"""Edits and deletes of buffered messages, on the time-skipping server."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from testkit.servers import task_queue
from testkit.workflow_harness import (
    LOADED_HOST_SLACK,
    Recorder,
    conversation_input,
    new_worker,
    signal_message,
)
from workflows.payloads import MessageEdited, MessagesDeleted


async def test_an_edit_restarts_the_quiet_period(time_env: WorkflowEnvironment) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=5)
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        await time_env.sleep(4)
        await handle.signal("message_edited", MessageEdited(1, 40))
        await time_env.sleep(3)  # 7 s after the message, 3 s after the edit
        assert rec.persisted == []
        await handle.result()
    burst = rec.persisted[0]
    assert burst.message_ids == [1]
    assert 9 <= (burst.flushed_at - burst.first_message_at).total_seconds() < 9 + LOADED_HOST_SLACK


async def test_deleting_the_only_message_drops_the_burst(time_env: WorkflowEnvironment) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=5)
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        await handle.signal("messages_deleted", MessagesDeleted([1]))
        await signal_message(time_env.client, inp, tq, 1)  # a retry of the deleted message
        await time_env.sleep(20)
        assert rec.persisted == []
        await signal_message(time_env.client, inp, tq, 2)
        await handle.result()
    assert rec.bursts() == [[2]]


async def test_a_delete_keeps_the_rest_of_the_burst_and_restarts_its_quiet_period(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=5)
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        await signal_message(time_env.client, inp, tq, 2)
        await time_env.sleep(4)
        await handle.signal("messages_deleted", MessagesDeleted([2, 99]))
        await handle.result()
    burst = rec.persisted[0]
    assert burst.message_ids == [1]
    assert 9 <= (burst.flushed_at - burst.first_message_at).total_seconds() < 9 + LOADED_HOST_SLACK


async def test_edits_and_deletes_of_unbuffered_messages_change_nothing(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=5)
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        await time_env.sleep(4)
        await handle.signal("message_edited", MessageEdited(42, 10))
        await handle.signal("messages_deleted", MessagesDeleted([43]))
        await handle.result()
    burst = rec.persisted[0]
    # A restarted quiet period would flush at 9 s.
    assert 5 <= (burst.flushed_at - burst.first_message_at).total_seconds() < 5 + LOADED_HOST_SLACK
