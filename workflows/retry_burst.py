"""RetryBurstWorkflow: `lull retry <burst>` re-runs a failed burst's remaining steps.

The steps are the conversation's own activities, which are idempotent: a stored reply is
sent without a second LLM call, and chunks already delivered are not sent again. One
workflow id per burst, so two operators retrying at once run it once.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.bursts import BurstActivities
    from workflows import steps
    from workflows.payloads import RetryBurstInput, RetryBurstResult

RETRY_WORKFLOW_PREFIX = "retry"


def retry_workflow_id(burst_key: str) -> str:
    return f"{RETRY_WORKFLOW_PREFIX}/{burst_key}"


@workflow.defn
class RetryBurstWorkflow:
    @workflow.run
    async def run(self, input: RetryBurstInput) -> RetryBurstResult:
        key = input.burst_key
        window = timedelta(seconds=input.outage_window_seconds)
        # Fails the workflow (non-retryable) when the burst is not failed: nothing to do.
        status = await workflow.execute_activity_method(
            BurstActivities.reopen_failed_burst,
            key,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=steps.DB_RETRY,
            summary="reopen failed burst",
        )
        generated = status == "persisted"
        try:
            await steps.generate_reply(
                key,
                outage_window=window,
                summary="generate reply" if generated else "reuse stored reply",
            )
            sent = await steps.send_reply(
                key,
                task_queue=input.send_task_queue,
                outage_window=window,
                heartbeat=steps.SEND_HEARTBEAT,
            )
        except ActivityError as err:
            error_type = await steps.mark_failed(key, err)
            return RetryBurstResult("failed", generated, 0, error_type)
        return RetryBurstResult("sent", generated, sent.newly_sent)
