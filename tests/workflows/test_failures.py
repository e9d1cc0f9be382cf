"""A burst that finally fails: recorded, ops alerted, the user told once, and the
conversation goes on. Outages shorter than the window are waited out (time-skipping)."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.errors import from_llm_error, from_telegram_error
from llm.base import LLMRejectedError
from testkit.servers import task_queue
from testkit.workflow_harness import Recorder, conversation_input, new_worker, signal_message


def fail_first_burst(rec: Recorder, error: ApplicationError) -> None:
    def fail(key: str) -> None:
        if not rec.generated and not rec.failed:
            raise error

    rec.on_generate = fail


async def test_a_rejected_burst_is_marked_failed_the_user_told_and_the_next_burst_served(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder()
    fail_first_burst(rec, from_llm_error(LLMRejectedError("content rejected by the provider")))
    inp = conversation_input(tq, debounce=5)
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        await time_env.sleep(10)
        await signal_message(time_env.client, inp, tq, 2)
        await handle.result()
    first, second = (p.burst_key for p in rec.persisted)
    assert [(f.burst_key, f.error_type) for f in rec.failed] == [(first, "LLMRejected")]
    assert "content rejected" in rec.failed[0].error
    assert rec.notices == [first]
    assert rec.sent == [second]


async def test_a_burst_telegram_refuses_gets_no_error_message_it_could_not_deliver(
    time_env: WorkflowEnvironment,
) -> None:
    from telethon import errors

    tq, rec = task_queue(), Recorder()

    def refuse(key: str) -> None:
        raise from_telegram_error(errors.UserIsBlockedError(request=None))

    rec.on_send = refuse
    inp = conversation_input(tq, debounce=5)
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        await handle.result()
    assert [f.error_type for f in rec.failed] == ["TelegramRejected"]
    assert rec.notices == []


async def test_a_ten_minute_llm_outage_is_waited_out_and_the_burst_answered(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder()
    attempts = []

    def down_for_ten_minutes(key: str) -> None:
        info = activity.info()
        attempts.append(info.attempt)
        elapsed = info.current_attempt_scheduled_time - info.scheduled_time
        if elapsed.total_seconds() < 600:
            raise from_llm_error_503()

    rec.on_generate = down_for_ten_minutes
    inp = conversation_input(tq, debounce=5, outage_window_seconds=1800)
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        await handle.result()
    assert len(attempts) > 10  # retried through the whole outage
    assert rec.failed == [] and rec.notices == []
    assert rec.sent == [rec.persisted[0].burst_key]


async def test_an_outage_longer_than_the_window_fails_the_burst_and_tells_the_user(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder()

    def always_down(key: str) -> None:
        raise from_llm_error_503()

    rec.on_generate = always_down
    inp = conversation_input(tq, debounce=5, outage_window_seconds=120)
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        await handle.result()
    (failed,) = rec.failed
    assert failed.error_type == "LLMRetryable"
    # The last attempt's error is kept for ops, saying the window closed on it.
    assert failed.error.startswith("still failing when the outage window closed")
    assert "503" in failed.error
    assert rec.notices == [failed.burst_key]


def from_llm_error_503() -> ApplicationError:
    from llm.base import LLMRetryableError

    return from_llm_error(LLMRetryableError("provider answered 503"))


def test_a_send_in_doubt_is_not_contradicted_by_an_error_notice() -> None:
    from workflows.failures import tells_user

    # Its reply may be on screen already: "Sorry, something went wrong" would be false.
    assert tells_user("SendInDoubt") is False
    assert tells_user("SendInDoubt", in_doubt_is_silent=False) is True  # runs before it
    assert tells_user("TelegramRetryable") is True
    assert tells_user("TelegramAccountFatal") is False
