"""Recording activities registered under the real names, and a helper to drive a workflow."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import (
    HandleSignalInput,
    Interceptor,
    Worker,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from activities.heartbeat import HEARTBEAT_THROTTLE
from workflows.conversation import ConversationWorkflow
from workflows.ids import conversation_workflow_id
from workflows.payloads import (
    ConversationConfig,
    ConversationInput,
    ConversationRef,
    FailureNoticeInput,
    GenerateReplyInput,
    GenerateReplyResult,
    MarkBurstFailedInput,
    MessageReceived,
    MidReplyInput,
    PersistBurstInput,
    PersistBurstResult,
    SendReplyInput,
    SendReplyResult,
    TypingObserved,
)

# How late past its deadline a flush may land on a loaded host and still count as on
# time. The time-skipping server starts a timer when the workflow task that set it
# completes, and a worker's first task (the sandbox loads the workflow) once took 0.8 s
# on CI. Tests that use it have their wrong answers at least 3 s away.
LOADED_HOST_SLACK = 1.5


@dataclass
class Recorder:
    """What the workflow asked of the outside world, in order."""

    persisted: list[PersistBurstInput] = field(default_factory=list)
    generated: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    failed: list[MarkBurstFailedInput] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    mid_replies: list[MidReplyInput] = field(default_factory=list)
    # When each send was scheduled (the server's clock, skipped time included).
    sent_at: list[datetime] = field(default_factory=list)
    # Set: each LLM call runs (heartbeating) until the test sets it, as a slow LLM would;
    # a call cancelled meanwhile is recorded in ``cancelled``.
    slow_llm: asyncio.Event | None = None
    generating: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    # Real seconds each LLM call takes (cancellably), by call: a property test's LLM.
    llm_seconds: Callable[[int], float] | None = None
    # Called at the start of each generate_reply/send_reply attempt (with the burst key):
    # raise from it to make the step fail as a real provider or channel would.
    on_generate: Callable[[str], None] | None = None
    on_send: Callable[[str], None] | None = None
    on_reopen: Callable[[str], None] | None = None

    def activities(self) -> list:  # type: ignore[type-arg]
        @activity.defn(name="persist_burst")
        async def persist_burst(input: PersistBurstInput) -> PersistBurstResult:
            self.persisted.append(input)
            return PersistBurstResult(
                burst_id=len(self.persisted), message_count=len(input.message_ids)
            )

        @activity.defn(name="generate_reply")
        async def generate_reply(input: GenerateReplyInput) -> GenerateReplyResult:
            if self.on_generate is not None:
                self.on_generate(input.burst_key)
            if self.slow_llm is not None or self.llm_seconds is not None:
                self.generating.append(input.burst_key)
                until = time.monotonic() + (
                    self.llm_seconds(len(self.generating)) if self.llm_seconds else 0
                )
                try:
                    while (self.slow_llm is not None and not self.slow_llm.is_set()) or (
                        time.monotonic() < until
                    ):
                        activity.heartbeat()
                        await asyncio.sleep(0.05)
                except asyncio.CancelledError:
                    self.cancelled.append(input.burst_key)
                    raise
            self.generated.append(input.burst_key)
            return GenerateReplyResult(reply_id=len(self.generated), chars=10, reused=False)

        @activity.defn(name="send_reply")
        async def send_reply(input: SendReplyInput) -> SendReplyResult:
            if self.on_send is not None:
                self.on_send(input.burst_key)
            self.sent.append(input.burst_key)
            self.sent_at.append(activity.info().scheduled_time)
            return SendReplyResult(chunks=1, newly_sent=1)

        @activity.defn(name="mark_burst_failed")
        async def mark_burst_failed(input: MarkBurstFailedInput) -> None:
            self.failed.append(input)

        @activity.defn(name="send_failure_notice")
        async def send_failure_notice(input: FailureNoticeInput) -> bool:
            self.notices.append(input.burst_key)
            return True

        @activity.defn(name="record_mid_reply")
        async def record_mid_reply(input: MidReplyInput) -> bool:
            self.mid_replies.append(input)
            return input.superseded

        @activity.defn(name="reopen_failed_burst")
        async def reopen_failed_burst(burst_key: str) -> str:
            if self.on_reopen is not None:
                self.on_reopen(burst_key)
            return "persisted"

        return [
            persist_burst,
            generate_reply,
            send_reply,
            mark_burst_failed,
            send_failure_notice,
            reopen_failed_burst,
            record_mid_reply,
        ]

    def bursts(self) -> list[list[int]]:
        return [p.message_ids for p in self.persisted]


def new_worker(
    client: Client,
    recorder: Recorder,
    task_queue: str,
    *,
    interceptors: Sequence[Interceptor] = (),
    activities: Sequence[Callable[..., Any]] | None = None,
) -> Worker:
    """A worker for the conversation and retry workflows; ``activities`` replace the
    recorder's own (a test that needs one of them slow)."""
    from workflows.retry_burst import RetryBurstWorkflow

    return Worker(
        client,
        task_queue=task_queue,
        workflows=[ConversationWorkflow, RetryBurstWorkflow],
        activities=recorder.activities() if activities is None else activities,
        interceptors=interceptors,
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
    )


class SlowSignals(Interceptor):
    """Holds the workflow task of each signal ``seconds`` longer, as a loaded worker would.
    The server's clock runs on meanwhile, so a timer can fire while the task is in flight,
    and a timer started by such a task fires that much after the deadline it serves."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        seconds = self.seconds

        class Slow(WorkflowInboundInterceptor):
            async def handle_signal(self, input: HandleSignalInput) -> None:
                await super().handle_signal(input)
                with workflow.unsafe.sandbox_unrestricted():
                    time.sleep(seconds)  # noqa: ASYNC251 - blocking the task is the point

        return Slow


def conversation_input(
    task_queue: str,
    *,
    debounce: float = 5,
    max_messages: int = 10,
    idle_close: float = 60,
    **config: object,
) -> ConversationInput:
    ref = ConversationRef(
        account_key=f"acct-{uuid.uuid4().hex[:6]}",
        account_id=1,
        conversation_id=1,
        chat_ref="abc",
    )
    # The send activity runs on the same queue here: one worker hosts every fake.
    return ConversationInput(
        ref,
        ConversationConfig(debounce, max_messages, idle_close, **config),  # type: ignore[arg-type]
        send_task_queue=task_queue,
    )


async def signal_message(
    client: Client,
    input: ConversationInput,
    task_queue: str,
    message_id: int,
    chars: int = 5,
    *,
    accepted_at: datetime | None = None,
) -> WorkflowHandle:  # type: ignore[type-arg]
    """Signal-with-start, exactly as the ingest seam does it."""
    ref = input.conversation
    return await client.start_workflow(
        ConversationWorkflow.run,
        input,
        id=conversation_workflow_id(ref.account_key, ref.chat_ref),
        task_queue=task_queue,
        start_signal="message_received",
        start_signal_args=[MessageReceived(message_id, 7, chars, accepted_at=accepted_at)],
    )


async def until_sent(env: WorkflowEnvironment, rec: Recorder, bursts: int = 1) -> None:
    """Sleep (or, on the test server, skip time) in short steps until the replies are sent.
    (A skip that outlives every workflow timer runs in real time on the test server, so
    never skip past the idle close.)"""
    for _ in range(40):
        if len(rec.sent) >= bursts:
            return
        await env.sleep(0.5)
    raise AssertionError(f"only {len(rec.sent)} of {bursts} replies sent")


def seconds_between(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds()


async def signal_typing(handle: WorkflowHandle, action: str = "typing", sender: int = 7) -> None:  # type: ignore[type-arg]
    await handle.signal("typing_observed", TypingObserved(sender, action))


def upserted(history: WorkflowHistory, name: str) -> list[Any]:
    """The values of search attribute ``name`` upserted in ``history``, in order."""
    values = []
    for event in history.events:
        if not event.HasField("upsert_workflow_search_attributes_event_attributes"):
            continue
        fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
        payload = fields.indexed_fields.get(name)
        if payload is not None:
            values.append(json.loads(payload.data))
    return values


async def run_sizes(
    client: Client, workflow_id: str, first_run_id: str, by_type: Counter[str] | None = None
) -> list[int]:
    """Event counts of every run in the continue-as-new chain, oldest first."""
    sizes, run_id = [], first_run_id
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        sizes.append(len(history.events))
        if by_type is not None:
            by_type.update(
                EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in history.events
            )
        last = history.events[-1]
        run_id = (
            last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if last.HasField("workflow_execution_continued_as_new_event_attributes")
            else ""
        )
    return sizes
