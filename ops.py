"""Operator commands on open conversations: list, inspect, flush, clear, pause, resume.

They talk to Temporal only (queries, updates and the visibility API), so they work against
any running Lull, embedded or not.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from workflows import attributes
from workflows.conversation import ConversationWorkflow
from workflows.payloads import ConversationState, PauseInput

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


async def list_conversations(client: Client, account: str | None = None) -> list[dict[str, Any]]:
    query = OPEN_CONVERSATIONS
    if account is not None:
        query += f" AND WorkflowId STARTS_WITH 'conversation/{account}/'"
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
    return {"workflow_id": workflow_id, "run_id": described.run_id, "state": state}


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
