"""The LLM call is tried first as a local activity: a burst answered at once costs a
marker, not a round trip through the server; a first try that fails retryably goes on as
the regular activity (visible in the UI), and a refusal stays final (time-skipping)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from activities.errors import from_llm_error
from llm.base import LLMRejectedError, LLMRetryableError
from tests.conftest import task_queue
from tests.workflows.helpers import Recorder, conversation_input, new_worker, signal_message


def scheduled_activities(history: WorkflowHistory) -> list[str]:
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


def timers(history: WorkflowHistory) -> list[timedelta]:
    return [
        e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    ]


async def test_a_burst_answered_at_once_schedules_no_generate_activity(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder()
    local_tries = []
    rec.on_generate = lambda key: local_tries.append(activity.info().is_local)
    inp = conversation_input(tq, debounce=5)
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        await handle.result()
        history = await handle.fetch_history()
    assert local_tries == [True]
    assert rec.sent == [rec.persisted[0].burst_key]
    # Only the send crosses the server as an activity (it runs in the channel's process).
    assert scheduled_activities(history) == ["send_reply"]


async def test_a_first_try_that_fails_retryably_goes_on_as_the_regular_activity(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder()
    tries = []

    def down_once(key: str) -> None:
        tries.append(activity.info().is_local)
        if len(tries) == 1:
            raise from_llm_error(LLMRetryableError("provider answered 503"))

    rec.on_generate = down_once
    inp = conversation_input(tq, debounce=5)
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        await handle.result()
        history = await handle.fetch_history()
    assert tries == [True, False]
    assert scheduled_activities(history) == ["generate_reply", "send_reply"]
    assert rec.failed == [] and rec.sent == [rec.persisted[0].burst_key]


async def test_the_providers_retry_after_is_waited_before_the_regular_activity(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder()

    def rate_limited_once(key: str) -> None:
        if activity.info().is_local:
            raise from_llm_error(LLMRetryableError("429 too many requests", retry_after=7))

    rec.on_generate = rate_limited_once
    inp = conversation_input(tq, debounce=5, idle_close=600)
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        await handle.result()
        history = await handle.fetch_history()
    # The quiet period's timer, the provider's 7 s, then the idle close.
    assert timers(history)[1:] == [timedelta(seconds=7), timedelta(seconds=600)]
    assert rec.sent == [rec.persisted[0].burst_key]


async def test_a_refusal_on_the_first_try_is_final_and_never_retried(
    time_env: WorkflowEnvironment,
) -> None:
    tq, rec = task_queue(), Recorder()
    tries = []

    def refuse(key: str) -> None:
        tries.append(key)
        raise from_llm_error(LLMRejectedError("content rejected by the provider"))

    rec.on_generate = refuse
    inp = conversation_input(tq, debounce=5)
    async with new_worker(time_env.client, rec, tq):
        handle = await signal_message(time_env.client, inp, tq, 1)
        await handle.result()
        history = await handle.fetch_history()
    assert len(tries) == 1
    assert [f.error_type for f in rec.failed] == ["LLMRejected"]
    assert "generate_reply" not in scheduled_activities(history)
    assert rec.notices == [rec.persisted[0].burst_key] and rec.sent == []
