"""Operator commands: on open conversations (list, inspect, flush, clear, pause, resume,
through Temporal queries, updates and the visibility API) and on failed bursts (list from
Postgres, retry through a workflow)."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from db.queries import accounts as db_accounts
from db.queries import bursts as db_bursts
from db.queries import failures as db_failures
from inbound.send_queue import send_task_queue
from workflows import attributes
from workflows.conversation import ConversationWorkflow
from workflows.error_types import ErrorType
from workflows.payloads import ConversationState, PauseInput, RetryBurstInput, RetryBurstResult
from workflows.retry_burst import RetryBurstWorkflow, retry_workflow_id

OPEN_CONVERSATIONS = "WorkflowType = 'ConversationWorkflow' AND ExecutionStatus = 'Running'"


class NoConversationError(LookupError):
    """No open conversation has that workflow id."""


def to_json(value: Any) -> str:
    def default(obj: Any) -> Any:
        if isinstance(obj, datetime):
            return obj.isoformat()
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return dataclasses.asdict(obj)
        return str(obj)

    return json.dumps(value, default=default, ensure_ascii=False)


def quoted(value: str) -> str:
    """A string literal for a visibility query: quotes and backslashes escaped, so a value
    can never end the literal and add to the query."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


async def list_conversations(client: Client, account: str | None = None) -> list[dict[str, Any]]:
    query = OPEN_CONVERSATIONS
    if account is not None:
        query += f" AND WorkflowId STARTS_WITH {quoted(f'conversation/{account}/')}"
    rows = []
    async for wf in client.list_workflows(query):
        found = wf.typed_search_attributes
        rows.append(
            {
                "workflow_id": wf.id,
                "started_at": wf.start_time,
                "account": found.get(attributes.ACCOUNT),
                "chat_ref": found.get(attributes.CHAT_REF),
                "phase": found.get(attributes.PHASE),
            }
        )
    return rows


async def inspect(client: Client, workflow_id: str) -> dict[str, Any]:
    handle = client.get_workflow_handle(workflow_id)
    try:
        described = await handle.describe()
        if described.status != WorkflowExecutionStatus.RUNNING:
            raise NoConversationError(workflow_id)
        state = await handle.query(ConversationWorkflow.state)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise NoConversationError(workflow_id) from None
        raise
    # "phase" in the words of `lull conversations` and LullPhase (active or paused); what
    # the conversation is doing right now is "doing" (collecting, generating, ...).
    return {
        "workflow_id": workflow_id,
        "run_id": described.run_id,
        "phase": attributes.steady_phase(state.phase),
        "doing": state.phase,
        "state": state,
    }


async def control(
    client: Client, workflow_id: str, action: str, *, minutes: float | None = None
) -> ConversationState:
    """Run one of the workflow's ops updates: flush_now, clear, pause or resume."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        if action == "flush":
            return await handle.execute_update(ConversationWorkflow.flush_now)
        if action == "clear":
            return await handle.execute_update(ConversationWorkflow.clear)
        if action == "pause":
            return await handle.execute_update(ConversationWorkflow.pause, PauseInput(minutes))
        if action == "resume":
            return await handle.execute_update(ConversationWorkflow.resume)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise NoConversationError(workflow_id) from None
        raise
    raise ValueError(f"unknown action {action!r}")


async def supersede_spend(
    sessionmaker: async_sessionmaker[AsyncSession], account: str, chat: int, topic: int | None
) -> dict[str, Any]:
    """What supersedes discarded in one chat (`lull inspect`)."""
    async with sessionmaker() as session:
        return await db_bursts.supersede_spend(
            session, account_key=account, chat_id=chat, topic_id=topic
        )


async def failed_bursts(
    sessionmaker: async_sessionmaker[AsyncSession], account: str | None, *, limit: int = 100
) -> list[dict[str, Any]]:
    """Failed bursts, newest first: where, which messages, what went wrong. No user text."""
    async with sessionmaker() as session:
        rows = await db_failures.failed_bursts(session, account_key=account, limit=limit)
    return [dict(row._mapping) for row in rows]


async def retry_send_queue(
    sessionmaker: async_sessionmaker[AsyncSession], burst_key: str, *, task_queue: str
) -> str:
    """The send task queue of the account a burst belongs to."""
    async with sessionmaker() as session:
        row = await db_bursts.load_burst(session, burst_key)
        if row is None:
            raise NoBurstError(burst_key)
        acct = await db_accounts.load_account(session, row.account_id)
    return send_task_queue(task_queue, acct.key)


async def activity_pollers(client: Client, task_queue: str) -> int:
    """How many workers poll ``task_queue`` for activities right now (a listener hosting
    an account's sends, for its send queue)."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    described = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        )
    )
    return len(described.pollers)


async def retry_burst(
    client: Client,
    burst_key: str,
    *,
    task_queue: str,
    sends_on: str,
    outage_window_seconds: float,
    wait: bool = True,
    resend_in_doubt: bool = False,
) -> RetryBurstResult | str:
    """Re-run a failed burst's remaining steps and wait for the outcome (or, without
    ``wait``, start it and return its workflow id)."""
    options: dict[str, Any] = {
        "id": retry_workflow_id(burst_key),
        "task_queue": task_queue,
        # One retry of a burst at a time; a finished one may be run again.
        "id_conflict_policy": WorkflowIDConflictPolicy.USE_EXISTING,
        "static_summary": f"retry failed burst {burst_key}",
    }
    inp = RetryBurstInput(burst_key, sends_on, outage_window_seconds, resend_in_doubt)
    if not wait:
        handle = await client.start_workflow(RetryBurstWorkflow.run, inp, **options)
        return handle.id
    try:
        return await client.execute_workflow(RetryBurstWorkflow.run, inp, **options)
    except WorkflowFailureError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type == ErrorType.RETRY_FAILED:
            raise RetryFailedError(cause.message) from None
        raise RetryRefusedError(str(getattr(cause, "cause", None) or cause)) from None


class NoBurstError(LookupError):
    """No burst has that key."""


class RetryFailedError(RuntimeError):
    """The retry ran and failed again; the burst is failed, with the new error stored."""


class RetryRefusedError(RuntimeError):
    """The burst could not be retried (e.g. it is not failed); the text says why."""
