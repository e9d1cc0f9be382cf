"""Long conversations continue as new without losing or repeating a message."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from testkit.servers import task_queue
from testkit.workflow_harness import (
    Recorder,
    conversation_input,
    new_worker,
    run_sizes,
    signal_message,
)


async def test_history_limit_continues_as_new_carrying_buffer_and_seen_ids(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder()
    limit = 120
    inp = conversation_input(tq, debounce=5, max_messages=10, max_history_events=limit)
    async with new_worker(time_env.client, rec, tq):
        first = await signal_message(time_env.client, inp, tq, 1)
        for i in range(2, 301):
            handle = await signal_message(time_env.client, inp, tq, i)
            if i % 7 == 0:
                await time_env.sleep(6)  # a lull now and then: a quiet burst
            if i % 50 == 0:
                # A listener retry of an old message after continue-as-new: buffered once.
                await signal_message(time_env.client, inp, tq, i - 3)
        await handle.result()
    ids = [i for burst in rec.bursts() for i in burst]
    assert sorted(ids) == list(range(1, 301))
    assert len(ids) == len(set(ids))
    sizes = await run_sizes(time_env.client, first.id, first.result_run_id or "")
    assert len(sizes) > 3
    # A run may pass the limit by what one workflow task adds before it continues.
    assert max(sizes) <= limit + 40, sizes
