"""Stored histories must replay against today's workflow code: determinism guard for CI."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.conversation import ConversationWorkflow
from workflows.retry_burst import RetryBurstWorkflow

# Read at collection time, so the async test does no blocking file IO.
HISTORIES = [
    WorkflowHistory.from_json(path.stem, path.read_text())
    for path in sorted((Path(__file__).parent / "histories").glob("*.json"))
]


def test_there_are_histories_to_replay() -> None:
    assert len(HISTORIES) >= 2


@pytest.mark.parametrize("history", HISTORIES, ids=lambda h: h.workflow_id)
async def test_history_replays_without_nondeterminism(history: WorkflowHistory) -> None:
    workflows = [ConversationWorkflow, RetryBurstWorkflow]
    result = await Replayer(workflows=workflows).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert result.replay_failure is None, result.replay_failure
