"""The answering steps a workflow schedules, with their timeouts and retry policies in one
place: the conversation workflow and `lull retry`'s RetryBurstWorkflow run the same ones.

Workflow code: call these only from a workflow.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError
from temporalio.workflow import ActivityCancellationType

from activities.bursts import BurstActivities
from activities.replies import ReplyActivities
from activities.sending import SendActivities
from workflows.config_check import GENERATE_ATTEMPT_SECONDS
from workflows.failures import error_text_of, error_type_of
from workflows.payloads import (
    FailureNoticeInput,
    GenerateReplyInput,
    GenerateReplyResult,
    MarkBurstFailedInput,
    MidReplyInput,
    PersistBurstInput,
    PersistBurstResult,
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
# The error notice is best effort: a few tries, then the failure stays with ops.
NOTICE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=5)
GENERATE_ATTEMPT = timedelta(seconds=GENERATE_ATTEMPT_SECONDS)


async def persist_burst(
    input: PersistBurstInput, *, local: bool, summary: str
) -> PersistBurstResult:
    """One short Postgres write. ``local``: as a local activity, as runs from lull-2026-12
    to the promises release did (docs/decisions/0004-regular-activities.md)."""
    execute = workflow.execute_local_activity_method if local else workflow.execute_activity_method
    return await execute(
        BurstActivities.persist_burst,
        input,
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=DB_RETRY,
        summary=summary,
    )


async def generate_reply(
    key: str, *, outage_window: timedelta, summary: str = "generate reply"
) -> GenerateReplyResult:
    return await start_generate(key, outage_window=outage_window, summary=summary)


def start_generate(
    key: str, *, outage_window: timedelta, summary: str = "generate reply"
) -> workflow.ActivityHandle[GenerateReplyResult]:
    """generate_reply as a handle. Cancelling it (a superseded burst) cancels the call
    through Temporal, the activity hearing of it at its next heartbeat, without waiting
    for the acknowledgement (TRY_CANCEL, the SDK's default): the conversation moves on."""
    # A regular activity: a local one would hold the worker's workflow-task slot for the
    # LLM's latency (docs/decisions/0004-regular-activities.md).
    return workflow.start_activity_method(
        ReplyActivities.generate_reply,
        GenerateReplyInput(burst_key=key),
        # An attempt may wait out a Postgres outage to store the reply it paid for (a
        # retry would pay again), so it may run as long as the outage window; heartbeats
        # still notice a dead worker in 30 s.
        start_to_close_timeout=max(GENERATE_ATTEMPT, outage_window),
        # An outage is waited out this long, then the burst fails.
        schedule_to_close_timeout=outage_window,
        heartbeat_timeout=timedelta(seconds=30),
        retry_policy=OUTSIDE_RETRY,
        cancellation_type=ActivityCancellationType.TRY_CANCEL,
        summary=summary,
    )


async def record_mid_reply(key: str, *, superseded: bool, rule: str) -> None:
    """Supersede the burst in Postgres (its messages go to the next burst), or note the
    rule that kept it."""
    await workflow.execute_activity_method(
        BurstActivities.record_mid_reply,
        MidReplyInput(burst_key=key, superseded=superseded, rule=rule),
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=DB_RETRY,
        summary=("supersede burst: " if superseded else "keep reply: ") + rule,
    )


async def send_reply(
    key: str,
    *,
    task_queue: str,
    outage_window: timedelta,
    heartbeat: timedelta | None,
    resend_in_doubt: bool = False,
) -> SendReplyResult:
    """On ``task_queue``, the queue of the process that owns the account's channel."""
    return await workflow.execute_activity_method(
        SendActivities.send_reply,
        SendReplyInput(burst_key=key, resend_in_doubt=resend_in_doubt),
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


async def notify_user(key: str, *, task_queue: str) -> None:
    """The account's error message to the burst's user, best effort."""
    try:
        await workflow.execute_activity_method(
            SendActivities.send_failure_notice,
            FailureNoticeInput(burst_key=key),
            task_queue=task_queue,
            start_to_close_timeout=timedelta(seconds=30),
            schedule_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(seconds=15),
            retry_policy=NOTICE_RETRY,
            summary="send error message",
        )
    except ActivityError as err:
        workflow.logger.warning("error message for burst %s not sent: %s", key, err.cause)
