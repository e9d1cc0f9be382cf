"""Record representative ConversationWorkflow histories for the replay test.

    python -m tests.workflows.record_histories

Existing files are kept (pass --force to overwrite). Re-record only on purpose: a change
that fails the replay test would break running workflows, so gate it with
``workflow.patched`` instead, and record a new history beside the old ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from testkit.servers import task_queue
from testkit.workflow_harness import (
    Recorder,
    SlowSignals,
    conversation_input,
    new_worker,
    signal_message,
    signal_typing,
)
from tests.conftest import binary

HERE = Path(__file__).parent / "histories"


async def burst_then_lull(env: WorkflowEnvironment, tq: str, rec: Recorder):  # type: ignore[no-untyped-def]
    inp = conversation_input(tq, debounce=5)
    for i in (1, 2, 3):
        handle = await signal_message(env.client, inp, tq, i)
        await env.sleep(0.5)
    await env.sleep(7)
    handle = await signal_message(env.client, inp, tq, 4)
    return handle


async def capped_and_duplicates(env: WorkflowEnvironment, tq: str, rec: Recorder):  # type: ignore[no-untyped-def]
    inp = conversation_input(tq, debounce=2, max_messages=10)
    for i in [*range(1, 13), 3, 12]:
        handle = await signal_message(env.client, inp, tq, i)
    return handle


async def typing_lease(env: WorkflowEnvironment, tq: str, rec: Recorder):  # type: ignore[no-untyped-def]
    inp = conversation_input(tq, debounce=5, typing_window_seconds=6, max_wait_seconds=30)
    handle = await signal_message(env.client, inp, tq, 1)
    await env.sleep(4)
    await signal_typing(handle)
    await env.sleep(4)
    await signal_typing(handle, "record_audio")
    await env.sleep(3)
    await signal_typing(handle, "cancel")
    await signal_message(env.client, inp, tq, 2)
    for _ in range(8):  # typing until max wait
        await env.sleep(4)
        await signal_typing(handle)
    return handle


async def continue_as_new(env: WorkflowEnvironment, tq: str, rec: Recorder):  # type: ignore[no-untyped-def]
    inp = conversation_input(tq, debounce=5, max_history_events=120)
    first = await signal_message(env.client, inp, tq, 1)
    for i in range(2, 61):
        await signal_message(env.client, inp, tq, i)
        if i % 6 == 0:
            await env.sleep(6)
    # The first run's history: it ends in the continue-as-new command itself.
    return first


async def ops_commands_edits(env: WorkflowEnvironment, tq: str, rec: Recorder):  # type: ignore[no-untyped-def]
    from workflows.conversation import ConversationWorkflow
    from workflows.payloads import MessageEdited, MessageReceived, MessagesDeleted, PauseInput

    inp = conversation_input(tq, debounce=5, search_attributes=False)
    handle = await signal_message(env.client, inp, tq, 1)
    await handle.signal("message_edited", MessageEdited(1, 12))
    await signal_message(env.client, inp, tq, 2)
    await handle.signal("messages_deleted", MessagesDeleted([2]))
    await handle.signal("message_received", MessageReceived(3, 7, 5, command="help"))
    await env.sleep(1)
    await handle.execute_update(ConversationWorkflow.pause, PauseInput(minutes=1))
    await signal_message(env.client, inp, tq, 4)
    await env.sleep(70)
    await signal_message(env.client, inp, tq, 5)
    await handle.execute_update(ConversationWorkflow.flush_now)
    await env.sleep(1)
    await signal_message(env.client, inp, tq, 6)
    await handle.execute_update(ConversationWorkflow.clear)
    await signal_message(env.client, inp, tq, 7)
    return handle


async def local_persist(env: WorkflowEnvironment, tq: str, rec: Recorder):  # type: ignore[no-untyped-def]
    """burst_then_lull after the persist-burst-local-activity patch."""
    return await burst_then_lull(env, tq, rec)


async def send_heartbeat(env: WorkflowEnvironment, tq: str, rec: Recorder):  # type: ignore[no-untyped-def]
    """burst_then_lull after the send-reply-heartbeat patch."""
    return await burst_then_lull(env, tq, rec)


async def failure_notice(env: WorkflowEnvironment, tq: str, rec: Recorder):  # type: ignore[no-untyped-def]
    """The first burst is rejected by the LLM: marked failed, the user told; the next sent."""
    from activities.errors import from_llm_error
    from llm.base import LLMRejectedError

    def reject_first(key: str) -> None:
        if not rec.failed:
            raise from_llm_error(LLMRejectedError("content rejected"))

    rec.on_generate = reject_first
    inp = conversation_input(tq, debounce=5)
    handle = await signal_message(env.client, inp, tq, 1)
    await env.sleep(10)
    await signal_message(env.client, inp, tq, 2)
    return handle


async def accepted_steady_phase(env: WorkflowEnvironment, tq: str, rec: Recorder):  # type: ignore[no-untyped-def]
    """After the lull-2026-12 patch: messages carry when the ingest accepted them, and
    LullPhase is set once and changes on pause and resume only."""
    from datetime import timedelta

    from workflows.conversation import ConversationWorkflow
    from workflows.payloads import PauseInput

    inp = conversation_input(tq, debounce=5, idle_close=3, search_attributes=True)
    for i in (1, 2, 3):
        accepted = await env.get_current_time() - timedelta(seconds=0.4)
        handle = await signal_message(env.client, inp, tq, i, accepted_at=accepted)
        await env.sleep(0.5)
    await env.sleep(7)
    await handle.execute_update(ConversationWorkflow.pause, PauseInput(None))
    await handle.execute_update(ConversationWorkflow.resume)
    accepted = await env.get_current_time() - timedelta(seconds=0.2)
    return await signal_message(env.client, inp, tq, 4, accepted_at=accepted)


# Upserting LullPhase needs a server that has it: the dev server, in real time.
accepted_steady_phase.needs_search_attributes = True  # type: ignore[attr-defined]


async def batched_messages(env: WorkflowEnvironment, tq: str, rec: Recorder):  # type: ignore[no-untyped-def]
    """Messages that met in flight at the ingest arrive as one messages_received, each with
    its own accepted time; a repeated id in the batch is dropped."""
    from datetime import timedelta

    from workflows.conversation import ConversationWorkflow
    from workflows.payloads import MessageReceived, MessagesReceived

    inp = conversation_input(tq, debounce=5)
    handle = await signal_message(env.client, inp, tq, 1)
    now = await env.get_current_time()
    batch = MessagesReceived(
        [
            MessageReceived(m, 7, 5, accepted_at=now - timedelta(seconds=0.3 - 0.1 * i))
            for i, m in enumerate((2, 3, 1))
        ]
    )
    await env.client.start_workflow(
        ConversationWorkflow.run,
        inp,
        id=handle.id,
        task_queue=tq,
        start_signal="messages_received",
        start_signal_args=[batch],
    )
    await env.sleep(7)
    return await signal_message(env.client, inp, tq, 4)


async def phase_at_start(env: WorkflowEnvironment, tq: str, rec: Recorder):  # type: ignore[no-untyped-def]
    """Started as the ingest starts a run: LullPhase "active" set at the start, so the run
    upserts it only for a handoff."""
    from temporalio.common import SearchAttributePair, TypedSearchAttributes

    from workflows import attributes
    from workflows.conversation import ConversationWorkflow
    from workflows.payloads import MessageReceived, PauseInput

    inp = conversation_input(tq, debounce=5, idle_close=3, search_attributes=True)
    ref = inp.conversation
    handle = await env.client.start_workflow(
        ConversationWorkflow.run,
        inp,
        id=f"conversation/{ref.account_key}/c-{ref.chat_ref}",
        task_queue=tq,
        start_signal="message_received",
        start_signal_args=[MessageReceived(1, 7, 5)],
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(attributes.PHASE, attributes.ACTIVE)]
        ),
    )
    await env.sleep(7)
    await handle.execute_update(ConversationWorkflow.pause, PauseInput(None))
    await handle.execute_update(ConversationWorkflow.resume)
    return await signal_message(env.client, inp, tq, 2)


phase_at_start.needs_search_attributes = True  # type: ignore[attr-defined]


async def timers(env: WorkflowEnvironment, tq: str, rec: Recorder):  # type: ignore[no-untyped-def]
    """lull-2026-12-timers: a later deadline keeps a timer with half a quiet period left
    and replaces one with less; the idle timer stays armed across bursts, fires early
    and is re-armed for the rest of the idle close."""
    inp = conversation_input(tq, debounce=4, idle_close=30)
    await signal_message(env.client, inp, tq, 1)
    await env.sleep(1.2)
    await signal_message(env.client, inp, tq, 2)  # 2.8 s left: kept
    await env.sleep(2.0)
    await signal_message(env.client, inp, tq, 3)  # 0.8 s left: replaced
    await env.sleep(10)
    return await signal_message(env.client, inp, tq, 4)


async def due_timer_kept(env: WorkflowEnvironment, tq: str, rec: Recorder):  # type: ignore[no-untyped-def]
    """lull-2026-12-timers: typing that finds the burst's timer due (each signal's task held
    0.3 s, so the timer fires 0.3 s after the burst is due) leaves the timer to fire, and
    the loop re-arms for the lease (see test_timer_events)."""
    inp = conversation_input(tq, debounce=3, typing_window_seconds=4)
    handle = await signal_message(env.client, inp, tq, 1)
    await env.sleep(3.1)
    await signal_typing(handle)
    return handle


due_timer_kept.slow_signals = 0.3  # type: ignore[attr-defined]


async def promises(env: WorkflowEnvironment, tq: str, rec: Recorder):  # type: ignore[no-untyped-def]
    """lull-2026-12-promises: a message before the max wait joins the burst it capped;
    a pause of an idle conversation outlives its idle close, until resumed; flush and
    clear answer once they have taken the buffer."""
    from workflows.conversation import ConversationWorkflow
    from workflows.payloads import PauseInput

    inp = conversation_input(tq, debounce=1, max_wait_seconds=3.9, idle_close=5)
    for i in range(1, 9):
        handle = await signal_message(env.client, inp, tq, i)
        await env.sleep(0.6)
    await env.sleep(3)
    await handle.execute_update(ConversationWorkflow.pause, PauseInput(None))
    await env.sleep(10)
    await handle.execute_update(ConversationWorkflow.resume)
    await signal_message(env.client, inp, tq, 9)
    await handle.execute_update(ConversationWorkflow.flush_now)  # returns once flushed
    await signal_message(env.client, inp, tq, 10)
    await handle.execute_update(ConversationWorkflow.clear)
    return await signal_message(env.client, inp, tq, 11)


async def no_empty_tasks(env: WorkflowEnvironment, tq: str, rec: Recorder):  # type: ignore[no-untyped-def]
    """lull-2026-12-no-empty-tasks: bursts persisted with a regular activity, queried
    while they are answered."""
    from workflows.conversation import ConversationWorkflow

    inp = conversation_input(tq, debounce=2, idle_close=10)
    handle = await signal_message(env.client, inp, tq, 1)
    await signal_message(env.client, inp, tq, 2)
    await env.sleep(2.2)
    await handle.query(ConversationWorkflow.state)
    await env.sleep(3)
    return await signal_message(env.client, inp, tq, 3)


async def retry_outcomes(env: WorkflowEnvironment, tq: str, rec: Recorder):  # type: ignore[no-untyped-def]
    """RetryBurstWorkflow after retry-outcomes: a retry that sends completes; one whose
    send fails again fails the workflow (the last run recorded is that one)."""
    from activities.errors import from_telegram_error
    from workflows.payloads import RetryBurstInput
    from workflows.retry_burst import RetryBurstWorkflow

    await env.client.execute_workflow(
        RetryBurstWorkflow.run, RetryBurstInput("b-ok", tq), id="retry/b-ok", task_queue=tq
    )

    def refuse(key: str) -> None:
        from telethon import errors

        raise from_telegram_error(errors.ChatWriteForbiddenError(request=None))

    rec.on_send = refuse
    return await env.client.start_workflow(
        RetryBurstWorkflow.run,
        RetryBurstInput("b-refused", tq),
        id="retry/b-refused",
        task_queue=tq,
    )


retry_outcomes.fails = True  # type: ignore[attr-defined]


async def supersede(env: WorkflowEnvironment, tq: str, rec: Recorder):  # type: ignore[no-untyped-def]
    """lull-2026-12-supersede: a message during the call cancels it (1 of 2), one during
    a typing hold supersedes the ready reply (2 of 2), and the bound keeps the third."""
    from workflows.payloads import MessageReceived

    async def until(check) -> None:  # type: ignore[no-untyped-def]
        for _ in range(200):
            if check():
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the slow LLM was never called")

    rec.slow_llm = gate = asyncio.Event()
    inp = conversation_input(
        tq, debounce=5, idle_close=30, mid_reply="supersede", hold_reply_while_typing=True
    )
    handle = await signal_message(env.client, inp, tq, 1)
    await env.sleep(6)
    await until(lambda: len(rec.generating) == 1)
    await handle.signal("message_received", MessageReceived(2, 7, 5))
    await until(lambda: len(rec.cancelled) == 1)
    await env.sleep(6)
    await until(lambda: len(rec.generating) == 2)
    await signal_typing(handle)
    gate.set()
    await until(lambda: len(rec.generated) == 1)
    await asyncio.sleep(0.5)
    await handle.signal("message_received", MessageReceived(3, 7, 5))
    await env.sleep(6)
    await until(lambda: len(rec.generated) == 2)
    await handle.signal("message_received", MessageReceived(4, 7, 5))
    return handle


async def account_settings(env: WorkflowEnvironment, tq: str, rec: Recorder):  # type: ignore[no-untyped-def]
    """lull-2026-12-account-settings: new settings on a message while a burst is answered
    are held, then taken (a cap of 2, a 30 s quiet period); the same settings again are
    no change."""
    import dataclasses

    from workflows.payloads import MessageReceived

    async def until(check) -> None:  # type: ignore[no-untyped-def]
        for _ in range(200):
            if check():
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the slow LLM was never called")

    rec.slow_llm = gate = asyncio.Event()
    inp = conversation_input(tq, debounce=5, idle_close=60, mid_reply="queue")
    new = dataclasses.replace(inp.config, debounce_seconds=30, max_burst_messages=2)
    handle = await signal_message(env.client, inp, tq, 1)
    await env.sleep(6)
    await until(lambda: len(rec.generating) == 1)
    await handle.signal("message_received", MessageReceived(2, 7, 5, config=new))
    await asyncio.sleep(0.5)
    gate.set()
    await until(lambda: len(rec.sent) == 1)
    for message_id in (3, 4):
        await handle.signal("message_received", MessageReceived(message_id, 7, 5, config=new))
    return handle


SCENARIOS = (
    burst_then_lull,
    capped_and_duplicates,
    typing_lease,
    continue_as_new,
    ops_commands_edits,
    local_persist,
    send_heartbeat,
    failure_notice,
    accepted_steady_phase,
    batched_messages,
    phase_at_start,
    timers,
    due_timer_kept,
    promises,
    no_empty_tasks,
    retry_outcomes,
    supersede,
    account_settings,
)


async def main() -> None:
    from workflows import attributes

    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server")
    )
    dev: WorkflowEnvironment | None = None
    HERE.mkdir(exist_ok=True)
    force = "--force" in sys.argv
    for scenario in SCENARIOS:
        path = HERE / f"{scenario.__name__}.json"
        if path.exists() and not force:
            # Old histories guard old behaviour: keep them unless told otherwise.
            print(f"kept {path.name}")
            continue
        on = env
        if getattr(scenario, "needs_search_attributes", False):
            dev = dev or await WorkflowEnvironment.start_local(
                dev_server_existing_path=binary("temporal"), search_attributes=attributes.ALL
            )
            on = dev
        tq, rec = task_queue(), Recorder()
        slow = getattr(scenario, "slow_signals", 0)
        async with new_worker(on.client, rec, tq, interceptors=[SlowSignals(slow)] if slow else []):
            handle = await scenario(on, tq, rec)
            if getattr(scenario, "fails", False):
                with contextlib.suppress(WorkflowFailureError):
                    await handle.result()
            else:
                await handle.result()
            # By run id: a handle's own fetch_history follows to the latest run.
            run = on.client.get_workflow_handle(handle.id, run_id=handle.result_run_id)
            history = await run.fetch_history()
        path.write_text(history.to_json())
        print(f"recorded {scenario.__name__}: {len(history.events)} events")
    await env.shutdown()
    if dev is not None:
        await dev.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
