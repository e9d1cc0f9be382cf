"""Typing leases, max wait and the character cap, on the time-skipping server."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from testkit.servers import task_queue
from testkit.workflow_harness import (
    LOADED_HOST_SLACK,
    Recorder,
    conversation_input,
    new_worker,
    signal_message,
    signal_typing,
)


def waited(rec: Recorder, index: int = 0) -> float:
    burst = rec.persisted[index]
    return (burst.flushed_at - burst.last_message_at).total_seconds()


async def test_typing_holds_the_burst_open_and_the_next_message_joins_it(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=5, typing_window_seconds=6)
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        for _ in range(3):  # Telegram repeats the action about every 5 s while typing
            await time_env.sleep(4.5)
            await signal_typing(handle)
        await time_env.sleep(4.5)  # 18 s after the message, 4.5 s after the last typing
        assert rec.persisted == []
        await signal_message(time_env.client, inp, tq, 2)
        await handle.result()
    assert rec.bursts() == [[1, 2]]
    assert rec.persisted[0].reason == "quiet"


async def test_cancel_ends_the_lease_at_once(time_env: WorkflowEnvironment) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=5, typing_window_seconds=6)
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        await time_env.sleep(3)
        await signal_typing(handle)  # lease to 9 s
        await time_env.sleep(1)
        await signal_typing(handle, "cancel")  # back to message + 5 s
        await handle.result()
    assert 5 <= waited(rec) < 5 + LOADED_HOST_SLACK


async def test_voice_recording_waits_longer_than_typing(time_env: WorkflowEnvironment) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(
        tq, debounce=5, typing_window_seconds=6, typing_windows={"record_audio": 20}
    )
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        await time_env.sleep(1)
        await signal_typing(handle, "record_audio")
        await handle.result()
    assert 21 <= waited(rec) < 21.5
    assert rec.bursts() == [[1]]


async def test_typing_by_someone_else_or_with_nothing_buffered_changes_nothing(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=5, typing_window_seconds=6)
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        await time_env.sleep(4)
        await signal_typing(handle, sender=99)
        await time_env.sleep(3)  # flushed at 5 s despite the other user's typing
        assert rec.bursts() == [[1]]
        await signal_typing(handle)  # nothing buffered: starts nothing
        await handle.result()
    assert rec.bursts() == [[1]]
    assert 5 <= waited(rec) < 5 + LOADED_HOST_SLACK


async def test_max_wait_flushes_however_long_the_user_keeps_typing(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=5, typing_window_seconds=6, max_wait_seconds=30)
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        for _ in range(10):
            await time_env.sleep(4)
            await signal_typing(handle)
        await handle.result()
    first = rec.persisted[0]
    assert first.reason == "max_wait"
    assert (
        30 <= (first.flushed_at - first.first_message_at).total_seconds() < 30 + LOADED_HOST_SLACK
    )


async def test_character_cap_flushes_at_once(time_env: WorkflowEnvironment) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=5, max_burst_chars=100)
    async with new_worker(time_env.client, rec, tq):
        await signal_message(time_env.client, inp, tq, 1, chars=60)
        await signal_message(time_env.client, inp, tq, 2, chars=60)
        handle = await signal_message(time_env.client, inp, tq, 3, chars=10)
        await handle.result()
    assert rec.bursts() == [[1, 2], [3]]
    assert [p.reason for p in rec.persisted] == ["max_chars", "quiet"]
    assert waited(rec, 0) < 1


async def test_buffering_disabled_makes_every_message_its_own_burst(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=5, buffer_enabled=False)
    async with new_worker(time_env.client, rec, tq):
        for i in (1, 2, 3):
            handle = await signal_message(time_env.client, inp, tq, i)
        await handle.result()
    assert rec.bursts() == [[1], [2], [3]]
    assert {p.reason for p in rec.persisted} == {"unbuffered"}


async def test_a_message_before_the_max_wait_joins_the_burst(
    time_env: WorkflowEnvironment,
) -> None:
    # Debounce 1 s, max wait 3.9 s, a message every 0.6 s: message 7 comes at 3.6 s, before
    # the burst is due at 3.9 s, so it belongs to it (it used to open the next burst).
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=1, max_wait_seconds=3.9)
    async with new_worker(time_env.client, rec, tq):
        for i in range(1, 12):
            handle = await signal_message(time_env.client, inp, tq, i)
            await time_env.sleep(0.6)
        await handle.result()
    assert rec.bursts() == [[1, 2, 3, 4, 5, 6, 7], [8, 9, 10, 11]]
    assert rec.persisted[0].reason == "max_wait"


async def test_a_voice_note_recorded_past_the_max_wait_joins_the_burst_it_was_recorded_in(
    time_env: WorkflowEnvironment,
) -> None:
    # Defaults: a 15 s recording lease renewed every 5 s reaches past the 60 s max wait at
    # 46 s; the voice note lands at 47 s, before the burst is due, and is answered with it.
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(
        tq,
        debounce=5,
        max_wait_seconds=60,
        typing_windows={"record_audio": 15},
        idle_close=600,
    )
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        await time_env.sleep(1)
        for _ in range(10):  # recording from 1 s to 46 s
            await signal_typing(handle, "record_audio")
            await time_env.sleep(5)
        await time_env.sleep(1)
        await signal_message(time_env.client, inp, tq, 2)
        await handle.result()
    assert rec.bursts() == [[1, 2]]
    assert rec.persisted[0].reason == "quiet"
