"""A bot's settings changed through the admin API reach its open conversations: a message
carries them (``MessageReceived.config``), and the run takes them at once, or once the
burst being answered is. Time-skipping server."""

from __future__ import annotations

import asyncio
import dataclasses

from temporalio.testing import WorkflowEnvironment

from testkit.servers import task_queue
from testkit.workflow_harness import (
    LOADED_HOST_SLACK,
    Recorder,
    conversation_input,
    new_worker,
    seconds_between,
    signal_message,
)
from tests.workflows.test_supersede import answer, first_call_in_flight, message, until
from workflows.payloads import MessageReceived


async def test_a_run_takes_new_settings_from_the_message_that_carries_them(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=5)
    slower = dataclasses.replace(inp.config, debounce_seconds=20)
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        await time_env.sleep(7)  # the run's own 5 s quiet period
        assert rec.bursts() == [[1]]
        await message(handle, 2, config=slower)
        await time_env.sleep(10)
        assert rec.bursts() == [[1]]  # 10 s of quiet: under the new 20 s, not due yet
        await handle.result()
    assert rec.bursts() == [[1], [2]]
    second = rec.persisted[1]
    waited = seconds_between(second.last_message_at, second.flushed_at)
    assert 20 <= waited < 20 + LOADED_HOST_SLACK


async def test_settings_that_arrive_mid_answer_apply_from_the_next_burst(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder(slow_llm=asyncio.Event())
    inp = conversation_input(tq, debounce=5, mid_reply="queue", hold_reply_while_typing=False)
    new = dataclasses.replace(inp.config, debounce_seconds=30, max_burst_messages=2)
    async with new_worker(time_env.client, rec, tq):
        handle = await first_call_in_flight(time_env, rec, inp, tq)
        # While burst 1 is answered: the settings are held, message 2 waits its burst.
        await handle.signal("message_received", MessageReceived(2, 7, 5, config=new))
        await asyncio.sleep(1)  # real time: the workflow handles the signal meanwhile
        answer(rec)
        await until(lambda: len(rec.sent) == 1, "the first reply")
        await message(handle, 3)
        await message(handle, 4)
        await handle.result()
    # Burst 1 was answered under the settings it had; then the cap of 2 (the new
    # settings') closed [2, 3] and 4 came alone.
    assert rec.bursts() == [[1], [2, 3], [4]]
    assert rec.persisted[1].reason == "max_messages"
    # And the new 30 s quiet period, not the run's 5 s.
    last = rec.persisted[2]
    assert 30 <= seconds_between(last.last_message_at, last.flushed_at) < 30 + LOADED_HOST_SLACK


async def test_the_same_settings_again_change_nothing(time_env: WorkflowEnvironment) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=5)
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        await message(handle, 2, config=inp.config)
        await handle.result()
    assert rec.bursts() == [[1, 2]]
    first = rec.persisted[0]
    assert 5 <= seconds_between(first.last_message_at, first.flushed_at) < 5 + LOADED_HOST_SLACK
