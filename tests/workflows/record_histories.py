"""Record representative ConversationWorkflow histories for the replay test.

    python -m tests.workflows.record_histories

Re-record only on purpose: a change that fails the replay test would break running
workflows, so gate it with ``workflow.patched`` instead, and record a new history beside
the old ones.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from tests.conftest import binary, task_queue
from tests.workflows.helpers import Recorder, conversation_input, new_worker, signal_message

HERE = Path(__file__).parent / "histories"


async def burst_then_lull(env: WorkflowEnvironment, tq: str):  # type: ignore[no-untyped-def]
    inp = conversation_input(tq, debounce=5)
    for i in (1, 2, 3):
        handle = await signal_message(env.client, inp, tq, i)
        await env.sleep(0.5)
    await env.sleep(7)
    handle = await signal_message(env.client, inp, tq, 4)
    return handle


async def capped_and_duplicates(env: WorkflowEnvironment, tq: str):  # type: ignore[no-untyped-def]
    inp = conversation_input(tq, debounce=2, max_messages=10)
    for i in [*range(1, 13), 3, 12]:
        handle = await signal_message(env.client, inp, tq, i)
    return handle


async def main() -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server")
    )
    HERE.mkdir(exist_ok=True)
    for scenario in (burst_then_lull, capped_and_duplicates):
        tq = task_queue()
        async with new_worker(env.client, Recorder(), tq):
            handle = await scenario(env, tq)
            await handle.result()
            history = await handle.fetch_history()
        (HERE / f"{scenario.__name__}.json").write_text(history.to_json())
        print(f"recorded {scenario.__name__}: {len(history.events)} events")
    await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
