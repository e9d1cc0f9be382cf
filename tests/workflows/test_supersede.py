"""Supersede and the typing hold (issue: a stale reply is never sent), on the time-skipping
server with a slow LLM: each call runs until the test lets it finish."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from temporalio.client import WorkflowHandle
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
from workflows.conversation import ConversationWorkflow
from workflows.payloads import (
    ConversationInput,
    MessageEdited,
    MessageReceived,
    MessagesDeleted,
)

AUTHOR = 7  # signal_message's sender
OTHER = 8


def supersede_input(tq: str, **config: Any) -> ConversationInput:
    defaults: dict[str, Any] = {
        "debounce": 5,
        "idle_close": 60,
        "mid_reply": "supersede",
        "max_supersedes": 2,
        "hold_reply_while_typing": True,
        "typing_window_seconds": 6,
    }
    return conversation_input(tq, **{**defaults, **config})


async def until(check: Callable[[], bool], what: str, seconds: float = 10) -> None:
    """Real time: an activity's progress is not skipped."""
    for _ in range(int(seconds * 20)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def message(
    handle: WorkflowHandle,  # type: ignore[type-arg]
    message_id: int,
    *,
    sender: int = AUTHOR,
    **kw: Any,
) -> None:
    await handle.signal("message_received", MessageReceived(message_id, sender, 5, **kw))


async def first_call_in_flight(
    env: WorkflowEnvironment, rec: Recorder, inp: ConversationInput, tq: str
) -> WorkflowHandle:  # type: ignore[type-arg]
    """Message 1, its quiet period, and its LLM call running (until ``answer``)."""
    handle = await signal_message(env.client, inp, tq, 1)
    await env.sleep(6)
    await until(lambda: len(rec.generating) == 1, "the first call")
    return handle


def answer(rec: Recorder) -> None:
    """The slow LLM answers: the call in flight and every later one end."""
    assert rec.slow_llm is not None
    rec.slow_llm.set()


async def test_a_message_during_the_call_cancels_it_and_one_reply_answers_both(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder(slow_llm=asyncio.Event())
    inp = supersede_input(tq)
    async with new_worker(time_env.client, rec, tq):
        handle = await first_call_in_flight(time_env, rec, inp, tq)
        await message(handle, 2)
        # The call is cancelled through Temporal: the activity hears of it and stops.
        await until(lambda: rec.cancelled == rec.generating[:1], "the cancel", 15)
        answer(rec)
        await handle.result()
    first, merged = rec.persisted
    assert rec.bursts() == [[1], [1, 2]]
    assert rec.sent == [merged.burst_key]  # the stale reply never went out
    assert rec.generated == [merged.burst_key]
    assert [(m.burst_key, m.superseded, m.rule) for m in rec.mid_replies] == [
        (first.burst_key, True, "superseded (1 of 2)")
    ]
    assert merged.takes_over == first.burst_key
    # The merged burst's quiet period ran from the message that superseded.
    assert merged.first_message_at == first.first_message_at
    assert 5 <= (merged.flushed_at - merged.last_message_at).total_seconds() < 5 + LOADED_HOST_SLACK


async def test_queue_mode_answers_the_stale_burst_then_the_new_one(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder(slow_llm=asyncio.Event())
    inp = supersede_input(tq, mid_reply="queue", hold_reply_while_typing=False)
    async with new_worker(time_env.client, rec, tq):
        handle = await first_call_in_flight(time_env, rec, inp, tq)
        await message(handle, 2)
        await asyncio.sleep(1)  # real time: the workflow handles the signal meanwhile
        answer(rec)
        await handle.result()
    assert rec.bursts() == [[1], [2]]
    assert rec.sent == [p.burst_key for p in rec.persisted]
    assert rec.cancelled == [] and rec.mid_replies == []


async def test_a_held_reply_waits_for_the_typing_lease_and_a_message_then_supersedes_it(
    time_env: WorkflowEnvironment,
) -> None:
    """After the call, before the send: the author types while the LLM answers, the ready
    reply is held, and their message supersedes it (the call was paid, not cancelled)."""
    tq, rec = task_queue(), Recorder(slow_llm=asyncio.Event())
    inp = supersede_input(tq)
    async with new_worker(time_env.client, rec, tq):
        handle = await first_call_in_flight(time_env, rec, inp, tq)
        await signal_typing(handle)
        answer(rec)
        await until(lambda: len(rec.generated) == 1, "the first reply")
        await asyncio.sleep(0.5)  # real time: the reply reaches the workflow, held
        assert rec.sent == []
        await message(handle, 2)
        await handle.result()
    first, merged = rec.persisted
    assert rec.cancelled == []
    assert rec.generated == [first.burst_key, merged.burst_key]
    assert rec.sent == [merged.burst_key]
    assert rec.mid_replies[0].superseded and rec.mid_replies[0].burst_key == first.burst_key


async def test_a_held_reply_goes_out_when_the_lease_ends_or_on_a_cancel(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder(slow_llm=asyncio.Event())
    inp = supersede_input(tq, typing_window_seconds=20)
    async with new_worker(time_env.client, rec, tq):
        handle = await first_call_in_flight(time_env, rec, inp, tq)
        await signal_typing(handle)
        typed_at = rec.persisted[0].flushed_at
        answer(rec)
        await handle.result()
        # Held for the lease (20 s from the typing), not sent at once.
        held = (rec.sent_at[0] - typed_at).total_seconds()
        assert 20 - 1 <= held < 20 + 5, held

        rec2 = Recorder()
        tq2 = task_queue()
        inp2 = supersede_input(tq2, typing_window_seconds=20)
    async with new_worker(time_env.client, rec2, tq2):
        handle = await signal_message(time_env.client, inp2, tq2, 1)
        await signal_typing(handle, sender=OTHER)  # not the author: no hold
        await time_env.sleep(5.5)
        await signal_typing(handle)  # the author types as the reply is made
        await signal_typing(handle, "cancel")
        await handle.result()
    assert len(rec2.sent) == 1
    assert (rec2.sent_at[0] - rec2.persisted[0].flushed_at).total_seconds() < 5


async def test_bounds_keep_a_reply_after_max_supersedes_and_past_the_max_wait(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder(slow_llm=asyncio.Event())
    inp = supersede_input(tq, max_supersedes=1)
    async with new_worker(time_env.client, rec, tq):
        handle = await first_call_in_flight(time_env, rec, inp, tq)
        await message(handle, 2)  # supersedes: 1 of 1
        await until(lambda: len(rec.cancelled) == 1, "the cancel", 15)
        await time_env.sleep(6)
        await until(lambda: len(rec.generating) == 2, "the merged call")
        await message(handle, 3)  # the bound keeps the merged burst's reply
        await asyncio.sleep(0.5)
        answer(rec)
        await handle.result()
    assert rec.bursts() == [[1], [1, 2], [3]]
    assert rec.sent == [p.burst_key for p in rec.persisted[1:]]
    assert [(m.superseded, m.rule) for m in rec.mid_replies] == [
        (True, "superseded (1 of 1)"),
        (False, "kept: 1 supersedes in a row"),
    ]

    tq, rec = task_queue(), Recorder(slow_llm=asyncio.Event())
    inp = supersede_input(tq, max_wait_seconds=8)
    async with new_worker(time_env.client, rec, tq):
        handle = await first_call_in_flight(time_env, rec, inp, tq)
        await time_env.sleep(3)  # the first message has now waited past the max wait
        await message(handle, 2)
        await asyncio.sleep(0.5)
        answer(rec)
        await handle.result()
    assert rec.bursts() == [[1], [2]]
    assert [(m.superseded, m.rule) for m in rec.mid_replies] == [(False, "kept: max wait reached")]


async def test_commands_never_supersede_and_are_never_superseded(
    time_env: WorkflowEnvironment,
) -> None:
    gate = asyncio.Event()
    tq, rec = task_queue(), Recorder(slow_llm=gate)
    inp = supersede_input(tq)
    async with new_worker(time_env.client, rec, tq):
        handle = await first_call_in_flight(time_env, rec, inp, tq)
        await message(handle, 2, command="help")  # a command mid-generation
        await asyncio.sleep(0.5)
        answer(rec)
        await until(lambda: len(rec.sent) == 2, "both replies")
        gate.clear()
        await message(handle, 3, command="start")  # a command burst being answered
        await until(lambda: len(rec.generating) == 3, "the command's call")
        await message(handle, 4)
        await asyncio.sleep(0.5)
        answer(rec)
        await handle.result()
    assert rec.bursts() == [[1], [2], [3], [4]]
    assert len(rec.sent) == 4 and rec.mid_replies == [] and rec.cancelled == []


async def test_an_edit_of_a_superseded_message_restarts_the_burst_that_took_it_over(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder(slow_llm=asyncio.Event())
    inp = supersede_input(tq)
    async with new_worker(time_env.client, rec, tq):
        handle = await first_call_in_flight(time_env, rec, inp, tq)
        await message(handle, 2)
        await until(lambda: len(rec.cancelled) == 1, "the cancel", 15)
        await time_env.sleep(3)
        await handle.signal("message_edited", MessageEdited(1, 40))
        edited = await handle.query(ConversationWorkflow.state)
        answer(rec)
        await handle.result()
    merged = rec.persisted[1]
    assert merged.message_ids == [1, 2]
    assert edited.buffered == 2
    # The edit (3 s after message 2) restarted the quiet period of the merged burst.
    quiet_from_message_2 = (merged.flushed_at - merged.last_message_at).total_seconds()
    assert quiet_from_message_2 >= 5 + 3 - 0.5, quiet_from_message_2
    assert rec.sent == [merged.burst_key]


async def test_a_worker_killed_while_a_cancel_is_in_flight_still_answers_once(
    dev_env: WorkflowEnvironment,
) -> None:
    """On the dev server (a worker's sticky queue falls back as in production): the
    worker running the call dies as the cancel goes out, unacknowledged."""
    tq = task_queue()
    first_worker = Recorder(slow_llm=asyncio.Event())  # its call never finishes
    inp = supersede_input(tq, debounce=1, idle_close=3)
    worker = new_worker(dev_env.client, first_worker, tq)
    await worker.__aenter__()
    handle = await signal_message(dev_env.client, inp, tq, 1)
    await until(lambda: len(first_worker.generating) == 1, "the first call")
    await message(handle, 2)
    await worker.__aexit__(None, None, None)
    second = Recorder()
    async with new_worker(dev_env.client, second, tq):
        await asyncio.wait_for(handle.result(), 60)
    sent = first_worker.sent + second.sent
    keys = {p.burst_key: p.message_ids for p in first_worker.persisted + second.persisted}
    assert [keys[k] for k in sent] == [[1, 2]]
    # The dead worker's call may be retried on the new one before the message is seen
    # (a worker killed mid-call may pay twice); its reply is discarded all the same.
    assert second.generated[-1] == second.sent[0]


async def test_a_burst_taking_over_the_same_messages_still_gets_a_key_of_its_own(
    time_env: WorkflowEnvironment,
) -> None:
    """The message that superseded a burst is deleted: the burst that takes it over holds
    the same messages, and under the same key it would be the superseded row again (the
    chaos run lost two messages that way)."""
    tq, rec = task_queue(), Recorder(slow_llm=asyncio.Event())
    inp = supersede_input(tq)
    async with new_worker(time_env.client, rec, tq):
        handle = await first_call_in_flight(time_env, rec, inp, tq)
        await message(handle, 2)
        await until(lambda: len(rec.cancelled) == 1, "the cancel", 15)
        await handle.signal("messages_deleted", MessagesDeleted([2]))
        answer(rec)
        await handle.result()
    first, again = rec.persisted
    assert first.message_ids == again.message_ids == [1]
    assert again.burst_key != first.burst_key
    assert again.takes_over == first.burst_key
    assert rec.sent == [again.burst_key]


async def test_a_burst_its_cap_closed_is_never_superseded(time_env: WorkflowEnvironment) -> None:
    """Merged with what came next it would be over the cap (the replay of 12 rapid
    messages answered them as one burst of 12 against a cap of 10)."""
    tq, rec = task_queue(), Recorder(slow_llm=asyncio.Event())
    inp = supersede_input(tq, max_messages=2)
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        await message(handle, 2)  # the cap: flushed at once
        await until(lambda: len(rec.generating) == 1, "the capped burst's call")
        await message(handle, 3)
        await asyncio.sleep(0.5)
        answer(rec)
        await handle.result()
    assert rec.bursts() == [[1, 2], [3]]
    assert [(m.superseded, m.rule) for m in rec.mid_replies] == [(False, "kept: burst at its cap")]
