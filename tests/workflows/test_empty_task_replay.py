"""A run replays as it ran even when its workflow task was completed empty and a new one
forced at once.

Temporal's core SDK completes a task with no commands, and asks for another, while a
local activity is still running: at 80 % of the task timeout (a "task heartbeat"), or
when the task answered a query. On replay core merges such a pair into one task and runs
the first task's signals at the second task's clock (sdk-core, "Workflow Task Chunking";
seen in temporalio 1.35), so a signal handler that reads ``workflow.now()`` sees a later
time than it did. The chaos run met it (a state query during a burst's persist) and the
run no longer replayed: a worker restart would have wedged it. The current release
persists with a regular activity, so no task is completed empty.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from testkit.servers import task_queue
from testkit.workflow_harness import Recorder, conversation_input, new_worker
from workflows.conversation import ConversationWorkflow
from workflows.ids import conversation_workflow_id
from workflows.payloads import MessageReceived, PersistBurstInput, PersistBurstResult

TASK_TIMEOUT = timedelta(seconds=2)


def forced_empty_tasks(history: WorkflowHistory) -> list[int]:
    """Ids of WorkflowTaskCompleted events followed at once by the next task's
    Scheduled and Started: the pairs core merges on replay."""
    kinds = [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in history.events]
    return [
        history.events[i].event_id
        for i in range(len(kinds) - 2)
        if kinds[i : i + 3]
        == ["WORKFLOW_TASK_COMPLETED", "WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED"]
    ]


def slow_first_persist(rec: Recorder) -> list:  # type: ignore[type-arg]
    """The recorder's activities, with a first persist that outlives 80 % of the task
    timeout, as a Postgres retrying through a blip would."""
    activities = rec.activities()
    fast = next(a for a in activities if a.__name__ == "persist_burst")

    @activity.defn(name="persist_burst")
    async def persist_burst(input: PersistBurstInput) -> PersistBurstResult:
        if not rec.persisted:
            await asyncio.sleep(TASK_TIMEOUT.total_seconds())
        return await fast(input)

    return [persist_burst if a is fast else a for a in activities]


async def test_a_persist_that_outlives_the_task_heartbeat_completes_no_task_empty(
    dev_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=1)
    ref = inp.conversation
    async with new_worker(dev_env.client, rec, tq, activities=slow_first_persist(rec)):
        handle = await dev_env.client.start_workflow(
            ConversationWorkflow.run,
            inp,
            id=conversation_workflow_id(ref.account_key, ref.chat_ref),
            task_queue=tq,
            task_timeout=TASK_TIMEOUT,
            start_signal="message_received",
            start_signal_args=[MessageReceived(1, 7, 5, accepted_at=datetime.now(UTC))],
        )
        for _ in range(100):
            if rec.sent:
                break
            await asyncio.sleep(0.1)
        history = await handle.fetch_history()
        await handle.terminate("test over")

    assert rec.bursts() == [[1]]
    assert forced_empty_tasks(history) == []
    await Replayer(workflows=[ConversationWorkflow]).replay_workflow(history)
