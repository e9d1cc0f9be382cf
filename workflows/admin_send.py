"""AdminSendWorkflow: an operator's message from the admin API (POST /chats/{id}/messages).

Exactly once end to end: the API derives the workflow id from the request's
Idempotency-Key, so a retried request finds the same run (Temporal refuses a second start
of an id), and the send activity gives each chunk a random_id fixed by the burst key, so
a send retried after a crash is de-duplicated by Telegram. The text never enters the
history: the API stored it, as a reply with its operator as author.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import steps
    from workflows.error_types import ErrorType
    from workflows.payloads import AdminSendInput, SendReplyResult

ADMIN_SEND_WORKFLOW_PREFIX = "admin-send"


def admin_send_workflow_id(burst_key: str) -> str:
    return f"{ADMIN_SEND_WORKFLOW_PREFIX}/{burst_key}"


@workflow.defn
class AdminSendWorkflow:
    @workflow.run
    async def run(self, input: AdminSendInput) -> SendReplyResult:
        try:
            return await steps.send_reply(
                input.burst_key,
                task_queue=input.send_task_queue,
                outage_window=timedelta(seconds=input.outage_window_seconds),
                heartbeat=steps.SEND_HEARTBEAT,
            )
        except ActivityError as err:
            # Listed by GET /failed-bursts and `lull failed`; a retry sends the stored text.
            error_type = await steps.mark_failed(input.burst_key, err)
            raise ApplicationError(
                f"the operator's message {input.burst_key} was not delivered ({error_type})",
                type=ErrorType.RETRY_FAILED,
                non_retryable=True,
            ) from None
