"""The conversation's two timers, in the style of Temporal's updatable-timer sample.

Deterministic: ``workflow.sleep`` and ``workflow.wait_condition`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.policy import must_rearm


async def sleep_until(
    due_at: datetime,
    summary: str,
    current_due: Callable[[], datetime | None],
    *,
    keep_only_with: timedelta | None,
) -> None:
    """Sleep until ``due_at`` or until the deadline (``current_due``) moves in a way the
    armed timer cannot serve (``policy.must_rearm``; docs/decisions/0001); the caller's
    loop then decides again and arms for the new deadline."""

    def moved() -> bool:
        due = current_due()
        return due is not None and must_rearm(
            due_at, due, now=workflow.now(), keep_only_with=keep_only_with
        )

    # Timing out is the normal way out: the deadline came.
    with contextlib.suppress(TimeoutError):
        await workflow.wait_condition(
            moved, timeout=due_at - workflow.now(), timeout_summary=summary
        )


class IdleTimer:
    """The idle-close timer, left armed while bursts come and go.

    A wait with a timeout starts a timer each time the conversation goes idle and cancels
    it at the next message: two history events a burst. This timer stays armed instead;
    when it fires early (the conversation was busy meanwhile) it is re-armed for the rest,
    at most once an idle close."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def _fired(self) -> bool:
        return self._task is not None and self._task.done()

    async def wait(self, close_at: datetime, woken: Callable[[], bool]) -> bool:
        """True once ``woken()``; False at ``close_at`` with it still not."""
        while True:
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(
                    workflow.sleep(close_at - workflow.now(), summary="idle close")
                )
            await workflow.wait_condition(lambda: woken() or self._fired())
            if woken():
                return True
            if workflow.now() >= close_at:
                return False
