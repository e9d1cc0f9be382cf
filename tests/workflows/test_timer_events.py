"""What the conversation's timers cost in history events (lull-2026-12-timers).

Each timer started, fired or cancelled is a history event, and an early fire also costs a
workflow task. These tests pin down when a timer is replaced, left to fire, or left armed
across bursts, and that the behaviour it serves (flush and idle-close moments) holds.
"""

from __future__ import annotations

import asyncio

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from testkit.servers import task_queue
from testkit.workflow_harness import (
    Recorder,
    SlowSignals,
    conversation_input,
    new_worker,
    signal_message,
    until_sent,
)
from tests.workflows.record_histories import due_timer_kept


def timer_events(history: WorkflowHistory) -> list[str]:
    """The run's timer events in order: STARTED, FIRED, CANCELED."""
    return [
        EventType.Name(e.event_type).removeprefix("EVENT_TYPE_TIMER_")
        for e in history.events
        if EventType.Name(e.event_type).startswith("EVENT_TYPE_TIMER_")
    ]


async def two_messages(env: WorkflowEnvironment, gap: float) -> tuple[Recorder, WorkflowHistory]:
    """Messages 1 and 2, ``gap`` seconds apart, with a 4 s quiet period: the run's replies
    and its history once the burst is answered."""
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=4)
    async with new_worker(env.client, rec, tq):
        handle = await signal_message(env.client, inp, tq, 1)
        await env.sleep(gap)
        await signal_message(env.client, inp, tq, 2)
        await until_sent(env, rec)
        history = await handle.fetch_history()
        await handle.terminate("test over")
    return rec, history


async def test_a_later_deadline_leaves_a_timer_with_half_a_quiet_period_to_run(
    time_env: WorkflowEnvironment,
) -> None:
    # At message 2 the timer has 2.8 s left (of 4): kept; it fires, and the loop re-arms
    # for 1.2 s.
    rec, history = await two_messages(time_env, 1.2)
    assert rec.bursts() == [[1, 2]]
    assert timer_events(history)[:4] == ["STARTED", "FIRED", "STARTED", "FIRED"]


async def test_a_later_deadline_replaces_a_timer_with_little_left_to_run(
    time_env: WorkflowEnvironment,
) -> None:
    # 1.4 s left, under half the quiet period: an early fire and a re-arm (five events)
    # would cost more than replacing it now (two).
    rec, history = await two_messages(time_env, 2.6)
    assert rec.bursts() == [[1, 2]]
    assert timer_events(history)[:4] == ["STARTED", "CANCELED", "STARTED", "FIRED"]
    flushed = rec.persisted[0]
    # The replacement is due a quiet period after message 2, not later.
    assert (flushed.flushed_at - flushed.last_message_at).total_seconds() < 4.5


async def test_the_idle_timer_stays_armed_across_bursts_and_closes_after_the_last(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=1, idle_close=600)
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        await until_sent(time_env, rec, 1)
        await time_env.sleep(300)
        await signal_message(time_env.client, inp, tq, 2)
        await until_sent(time_env, rec, 2)
        await handle.result()
        described = await handle.describe()
        history = await handle.fetch_history()
    assert rec.bursts() == [[1], [2]]
    # Debounce timers fire; the idle timer armed after burst 1 is never cancelled: it
    # fires early (burst 2 came meanwhile), is re-armed once, and fires to close.
    events = timer_events(history)
    assert "CANCELED" not in events
    burst = ["STARTED", "FIRED"]
    idle_armed, idle_fired_early, idle_rearmed_and_fired = ["STARTED"], ["FIRED"], burst
    assert events == burst + idle_armed + burst + idle_fired_early + idle_rearmed_and_fired
    # It still closes a full idle close after the last burst, not after the first.
    assert described.close_time is not None and described.start_time is not None
    assert (described.close_time - described.start_time).total_seconds() >= 900


async def test_a_timer_already_due_is_left_to_fire_not_cancelled(
    time_env: WorkflowEnvironment,
) -> None:
    # Each signal's task takes 0.3 s, as on a loaded worker, so message 1's timer (started
    # when its task completed) fires at 3.3 s for a burst due at 3 s. Typing at 3.1 s finds
    # the timer due and pushes the deadline to 7.1 s; the timer fires while that task runs.
    # Cancelling it then raced the fire: the test server rejected the task and the run
    # stalled (found by the property test on CI).
    # The scenario is the one recorded as histories/due_timer_kept.json.
    tq, rec = task_queue(), Recorder()
    slow = SlowSignals(due_timer_kept.slow_signals)  # type: ignore[attr-defined]
    async with new_worker(time_env.client, rec, tq, interceptors=[slow]):
        handle = await due_timer_kept(time_env, tq, rec)
        await asyncio.wait_for(until_sent(time_env, rec), timeout=60)
        history = await handle.fetch_history()
        await handle.terminate("test over")
    assert timer_events(history)[:3] == ["STARTED", "FIRED", "STARTED"]
    burst = rec.persisted[0]
    assert burst.message_ids == [1]
    # The typing still held the burst: it flushed at the lease's end, not when the due
    # timer fired.
    assert (burst.flushed_at - burst.first_message_at).total_seconds() >= 7
