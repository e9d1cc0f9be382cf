"""Commands flush the pending burst first, then are handled alone, without waiting."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from testkit.servers import task_queue
from testkit.workflow_harness import Recorder, conversation_input, new_worker
from workflows.conversation import ConversationWorkflow
from workflows.ids import conversation_workflow_id
from workflows.payloads import MessageReceived


async def test_command_flushes_pending_then_runs_alone(time_env: WorkflowEnvironment) -> None:
    tq, rec = task_queue(), Recorder()
    inp = conversation_input(tq, debounce=5)
    ref = inp.conversation

    async def send(message_id: int, command: str | None = None):  # type: ignore[no-untyped-def]
        return await time_env.client.start_workflow(
            ConversationWorkflow.run,
            inp,
            id=conversation_workflow_id(ref.account_key, ref.chat_ref),
            task_queue=tq,
            start_signal="message_received",
            start_signal_args=[MessageReceived(message_id, 7, 5, command=command)],
        )

    async with new_worker(time_env.client, rec, tq):
        await send(1)
        await send(2)
        await time_env.sleep(1)
        await send(3, command="help")
        await time_env.sleep(1)
        # Both flushed well before the 5 s quiet period would have ended.
        assert rec.bursts() == [[1, 2], [3]]
        handle = await send(4)
        await handle.result()
    assert rec.bursts() == [[1, 2], [3], [4]]
    assert [p.reason for p in rec.persisted] == ["command", "command", "quiet"]
