"""The answering steps a workflow schedules, with their timeouts and retry policies in one
place: the conversation workflow and `lull retry`'s RetryBurstWorkflow run the same ones.

Workflow code: call these only from a workflow.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState

from activities.bursts import BurstActivities
from activities.replies import ReplyActivities
from activities.sending import SendActivities
from workflows.failures import error_text_of, error_type_of
from workflows.payloads import (
    GenerateReplyInput,
    GenerateReplyResult,
    MarkBurstFailedInput,
    SendReplyInput,
    SendReplyResult,
)

DB_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
)
# LLM and channel outages are waited out; permanent errors are raised as non-retryable.
OUTSIDE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
)
SEND_HEARTBEAT = timedelta(seconds=15)
GENERATE_TIMEOUT = timedelta(minutes=3)
# The local first try: one attempt; any retry is the regular activity's, visible in the UI.
ONE_ATTEMPT = RetryPolicy(maximum_attempts=1)


async def generate_reply(
    key: str, *, outage_window: timedelta, summary: str = "generate reply"
) -> GenerateReplyResult:
    return await workflow.execute_activity_method(
        ReplyActivities.generate_reply,
        GenerateReplyInput(burst_key=key),
        start_to_close_timeout=GENERATE_TIMEOUT,
        # An outage is waited out this long, then the burst fails.
        schedule_to_close_timeout=outage_window,
        heartbeat_timeout=timedelta(seconds=30),
        retry_policy=OUTSIDE_RETRY,
        summary=summary,
    )


async def generate_reply_local_first(key: str, *, outage_window: timedelta) -> GenerateReplyResult:
    """The LLM call, tried first as a local activity in the workflow task that flushed.

    A burst's answer is one call that nearly always succeeds at once. As a regular activity
    it costs a round trip through the server (schedule, dispatch, completion, a new workflow
    task) and six history events; as a local activity it runs right after persist_burst and
    records one marker. A first try that fails retryably (an outage, a 429, a timeout, a
    worker gone) goes on as the regular activity with the full outage policy, so retries
    and their last error show in the UI as they always did. A refusal is final either way.
    The reply is stored per burst, so the second try never pays for an answer the first
    already stored.
    """
    try:
        return await workflow.execute_local_activity_method(
            ReplyActivities.generate_reply,
            GenerateReplyInput(burst_key=key),
            start_to_close_timeout=GENERATE_TIMEOUT,
            retry_policy=ONE_ATTEMPT,
            summary="generate reply",
        )
    except (ActivityError, ApplicationError) as err:
        # A local activity's own error comes as it was raised; a timeout comes wrapped.
        cause = err.cause if isinstance(err, ActivityError) else err
        if isinstance(cause, ApplicationError) and cause.non_retryable:
            raise err if isinstance(err, ActivityError) else refused(cause) from cause
        workflow.logger.warning("generate reply for %s goes on as an activity: %s", key, cause)
        if isinstance(cause, ApplicationError) and cause.next_retry_delay:
            # The provider said when to come back (Retry-After): the regular activity's
            # first attempt would not wait.
            await workflow.sleep(cause.next_retry_delay, summary="provider asked to wait")
    return await generate_reply(key, outage_window=outage_window, summary="generate reply (retry)")


def refused(cause: ApplicationError) -> ActivityError:
    """The ActivityError a regular activity would have failed with, so a refusal on the
    local try is recorded and told to the user exactly as one on the activity."""
    return ActivityError(
        f"generate_reply refused: {cause}",
        scheduled_event_id=0,
        started_event_id=0,
        identity="",
        activity_type="generate_reply",
        activity_id="",
        retry_state=RetryState.NON_RETRYABLE_FAILURE,
    )


async def send_reply(
    key: str, *, task_queue: str, outage_window: timedelta, heartbeat: timedelta | None
) -> SendReplyResult:
    """On ``task_queue``, the queue of the process that owns the account's channel."""
    return await workflow.execute_activity_method(
        SendActivities.send_reply,
        SendReplyInput(burst_key=key),
        task_queue=task_queue,
        start_to_close_timeout=timedelta(seconds=60),
        schedule_to_close_timeout=outage_window,
        heartbeat_timeout=heartbeat,
        retry_policy=OUTSIDE_RETRY,
        summary="send reply",
    )


async def mark_failed(key: str, err: ActivityError) -> str:
    """Record the burst as failed (ops are alerted by the activity); returns the error type."""
    error_type = error_type_of(err)
    await workflow.execute_activity_method(
        BurstActivities.mark_burst_failed,
        MarkBurstFailedInput(burst_key=key, error_type=error_type, error=error_text_of(err)),
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=DB_RETRY,
        summary=f"mark burst failed ({error_type})",
    )
    return error_type
