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
    from activities.replies import ReplyActivities
    from activities.sending import SendActivities
    from workflows.conversation import DB_RETRY, OUTSIDE_RETRY
    from workflows.failures import error_text_of, error_type_of
    from workflows.payloads import (
        GenerateReplyInput,
        MarkBurstFailedInput,
        RetryBurstInput,
        RetryBurstResult,
        SendReplyInput,
    )

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
            retry_policy=DB_RETRY,
            summary="reopen failed burst",
        )
        generated = status == "persisted"
        try:
            await workflow.execute_activity_method(
                ReplyActivities.generate_reply,
                GenerateReplyInput(burst_key=key),
                start_to_close_timeout=timedelta(minutes=3),
                schedule_to_close_timeout=window,
                heartbeat_timeout=timedelta(seconds=30),
                retry_policy=OUTSIDE_RETRY,
                summary="generate reply" if generated else "reuse stored reply",
            )
            sent = await workflow.execute_activity_method(
                SendActivities.send_reply,
                SendReplyInput(burst_key=key),
                task_queue=input.send_task_queue,
                start_to_close_timeout=timedelta(seconds=60),
                schedule_to_close_timeout=window,
                heartbeat_timeout=timedelta(seconds=15),
                retry_policy=OUTSIDE_RETRY,
                summary="send reply",
            )
        except ActivityError as err:
            error_type = error_type_of(err)
            await workflow.execute_activity_method(
                BurstActivities.mark_burst_failed,
                MarkBurstFailedInput(key, error_type, error_text_of(err)),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=DB_RETRY,
                summary=f"mark burst failed ({error_type})",
            )
            return RetryBurstResult("failed", generated, 0, error_type)
        return RetryBurstResult("sent", generated, sent.newly_sent)
