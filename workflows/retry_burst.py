"""RetryBurstWorkflow: `lull retry <burst>` re-runs a failed burst's remaining steps.

The steps are the conversation's own activities, which are idempotent: a stored reply is
sent without a second LLM call, and chunks already delivered are not sent again. One
workflow id per burst, so two operators retrying at once run it once.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.bursts import BurstActivities
    from workflows import steps
    from workflows.error_types import ErrorType
    from workflows.failures import error_type_of
    from workflows.payloads import RetryBurstInput, RetryBurstResult

RETRY_WORKFLOW_PREFIX = "retry"
# Outcomes the UI colours right: a retry whose delivery failed FAILS (it used to complete,
# green, saying "generated"), and "nothing to retry" COMPLETES (it used to fail, red).
PATCH_RETRY_OUTCOMES = "retry-outcomes"


def retry_workflow_id(burst_key: str) -> str:
    return f"{RETRY_WORKFLOW_PREFIX}/{burst_key}"


@workflow.defn
class RetryBurstWorkflow:
    @workflow.run
    async def run(self, input: RetryBurstInput) -> RetryBurstResult:
        key = input.burst_key
        window = timedelta(seconds=input.outage_window_seconds)
        outcomes = workflow.patched(PATCH_RETRY_OUTCOMES)
        try:
            status = await workflow.execute_activity_method(
                BurstActivities.reopen_failed_burst,
                key,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=steps.DB_RETRY,
                summary="reopen failed burst",
            )
        except ActivityError as err:
            if outcomes and error_type_of(err) == ErrorType.NOT_FAILED:
                workflow.set_current_details(f"nothing to retry: {err.cause}")
                return RetryBurstResult("nothing_to_retry", False, 0, detail=str(err.cause))
            raise
        generated = status == "persisted"
        try:
            reply = await steps.generate_reply(
                key,
                outage_window=window,
                summary="generate reply" if generated else "reuse stored reply",
            )
            sent = await steps.send_reply(
                key,
                task_queue=input.send_task_queue,
                outage_window=window,
                heartbeat=steps.SEND_HEARTBEAT,
                resend_in_doubt=input.resend_in_doubt,
            )
        except ActivityError as err:
            error_type = await steps.mark_failed(key, err)
            if outcomes:
                raise ApplicationError(
                    f"the retry of burst {key} failed too ({error_type}); see `lull failed`",
                    type=ErrorType.RETRY_FAILED,
                    non_retryable=True,
                ) from None
            return RetryBurstResult("failed", generated, 0, error_type)
        if outcomes:
            generated = not reply.reused
        return RetryBurstResult("sent", generated, sent.newly_sent)
