"""A history the chaos run recorded (CI, 2026-12-07) that does not replay: "No command
scheduled for event 374, TimerStarted".

The cause is in Temporal's core SDK, not in the workflow. At event 322 a task took message
2182's signal and a send_reply completion, flushed the burst and started its persist as a
local activity; a state query (the chaos fault that picks a run to terminate) had come
with the task, so core answered it, completed the task empty (event 323) and forced
another (325). Replay merges the pair and runs the signal at event 325's clock, 0.28 s
later: the message then arrives after its burst was due, opens a burst of its own, and
the replay runs a burst behind until it flushes where the run started a timer.

Runs of lull-2026-12-no-empty-tasks persist with a regular activity, so no task is
completed empty (tests/workflows/test_empty_task_replay.py). This history, of an earlier
release, keeps failing (strict xfail) until core replays such a pair at the first task's
clock; then this test turns red, and local activities could come back."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.conversation import ConversationWorkflow

HISTORY = Path(__file__).parent / "nondeterminism" / "2026-12-07-timer-374.json"


@pytest.mark.xfail(strict=True, reason="core replays an empty task pair at the later clock")
async def test_a_history_with_a_query_answered_during_a_local_activity_replays() -> None:
    history = WorkflowHistory.from_json("chaos", HISTORY.read_text())
    await Replayer(workflows=[ConversationWorkflow]).replay_workflow(history)
