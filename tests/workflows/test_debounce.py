"""Debounce timing on the time-skipping server: timers are skipped, never slept."""

from __future__ import annotations

from datetime import timedelta

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


async def test_eight_messages_100ms_apart_make_one_burst(time_env: WorkflowEnvironment) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=5)
    async with new_worker(time_env.client, rec, tq):
        for i in range(1, 9):
            handle = await signal_message(time_env.client, inp, tq, i)
            await time_env.sleep(0.1)
        await handle.result()
    assert rec.bursts() == [[1, 2, 3, 4, 5, 6, 7, 8]]
    assert rec.persisted[0].reason == "quiet"
    assert rec.generated == rec.sent == [rec.persisted[0].burst_key]


async def test_messages_further_apart_than_the_period_make_separate_bursts(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=5)
    async with new_worker(time_env.client, rec, tq):
        for i in range(1, 4):
            handle = await signal_message(time_env.client, inp, tq, i)
            await time_env.sleep(6)
        await handle.result()
    assert rec.bursts() == [[1], [2], [3]]
    assert len(set(rec.sent)) == 3


async def test_quiet_period_is_measured_from_the_last_message(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=5)
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        await time_env.sleep(4)
        await signal_message(time_env.client, inp, tq, 2)
        await time_env.sleep(4)  # 8 s after the first message, 4 s after the last: no flush yet
        assert rec.persisted == []
        await handle.result()
    burst = rec.persisted[0]
    assert burst.message_ids == [1, 2]
    quiet = (burst.flushed_at - burst.last_message_at).total_seconds()
    assert 5 <= quiet < 5 + LOADED_HOST_SLACK


async def test_twelve_rapid_messages_with_max_ten_flush_ten_then_two(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=5, max_messages=10)
    async with new_worker(time_env.client, rec, tq):
        for i in range(1, 13):
            handle = await signal_message(time_env.client, inp, tq, i)
        await handle.result()
    assert rec.bursts() == [list(range(1, 11)), [11, 12]]
    first, second = rec.persisted
    assert first.reason == "max_messages"
    # The capped burst did not wait for the quiet period; the rest did.
    assert (first.flushed_at - first.last_message_at).total_seconds() < 1
    assert second.reason == "quiet"
    assert (second.flushed_at - second.last_message_at).total_seconds() >= 5


async def test_a_repeated_message_id_is_buffered_once(time_env: WorkflowEnvironment) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq)
    async with new_worker(time_env.client, rec, tq):
        for i in (1, 2, 2, 1, 3):
            handle = await signal_message(time_env.client, inp, tq, i)
        await handle.result()
    assert rec.bursts() == [[1, 2, 3]]


async def test_empty_message_signal_is_never_buffered(time_env: WorkflowEnvironment) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq)
    async with new_worker(time_env.client, rec, tq):
        await signal_message(time_env.client, inp, tq, 1, chars=0)
        handle = await signal_message(time_env.client, inp, tq, 2, chars=3)
        await handle.result()
    assert rec.bursts() == [[2]]


async def test_workflow_completes_after_idle_close_with_nothing_buffered(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=1, idle_close=600)
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        await handle.result()
        described = await handle.describe()
    assert rec.bursts() == [[1]]
    assert described.close_time is not None and described.start_time is not None
    assert (described.close_time - described.start_time).total_seconds() >= 600


async def test_state_query_reports_the_open_burst(time_env: WorkflowEnvironment) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=5)
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        await signal_message(time_env.client, inp, tq, 2)
        await time_env.sleep(1)
        state = await handle.query("state")
        assert state["phase"] == "collecting"
        assert state["buffered"] == 2
        assert state["deadline_rule"] == "quiet period"
        await handle.result()
    final = rec.persisted[0]
    assert final.message_ids == [1, 2]


async def test_quiet_period_runs_from_when_the_ingest_accepted_the_message(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=5)
    async with new_worker(time_env.client, rec, tq):
        # The seam and the server took 1.5 s to hand the signal over.
        accepted = await time_env.get_current_time() - timedelta(seconds=1.5)
        handle = await signal_message(time_env.client, inp, tq, 1, accepted_at=accepted)
        await handle.result()
    burst = rec.persisted[0]
    assert burst.last_message_at == accepted
    assert 5 <= seconds_between(accepted, burst.flushed_at) < 5.5


async def test_an_old_accepted_time_counts_as_two_seconds_old(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=5)
    async with new_worker(time_env.client, rec, tq):
        # A listener that retried through a minute-long outage: the burst still waits.
        signalled = await time_env.get_current_time()
        old = signalled - timedelta(minutes=1)
        handle = await signal_message(time_env.client, inp, tq, 1, accepted_at=old)
        await handle.result()
    burst = rec.persisted[0]
    assert 1.9 <= seconds_between(burst.last_message_at, signalled) <= 2.5
    assert 5 <= seconds_between(burst.last_message_at, burst.flushed_at) < 5.5
