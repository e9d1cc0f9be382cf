"""Long conversations continue as new without losing or repeating a message."""

from __future__ import annotations

from collections import Counter

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from tests.conftest import task_queue
from tests.workflows.helpers import Recorder, conversation_input, new_worker, signal_message


async def run_sizes(
    client: Client, workflow_id: str, first_run_id: str, by_type: Counter[str] | None = None
) -> list[int]:
    """Event counts of every run in the continue-as-new chain, oldest first."""
    sizes, run_id = [], first_run_id
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        sizes.append(len(history.events))
        if by_type is not None:
            by_type.update(
                EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in history.events
            )
        last = history.events[-1]
        run_id = (
            last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if last.HasField("workflow_execution_continued_as_new_event_attributes")
            else ""
        )
    return sizes


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
