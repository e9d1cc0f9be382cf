"""A job the conversation refused is not retried forever."""

from __future__ import annotations

import asyncio

from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from channels.telegram.chat_jobs import ChatJobs


async def test_an_update_the_conversation_refused_is_given_up_not_retried() -> None:
    ready = asyncio.Event()
    ready.set()
    jobs = ChatJobs(ready, retry_initial=0.01, retry_max=0.01)
    attempts = 0

    async def pause_refused() -> None:
        nonlocal attempts
        attempts += 1
        raise WorkflowUpdateFailedError(ApplicationError("pause minutes must be ..."))

    jobs.submit(1, "pause of chat 1", pause_refused)
    await asyncio.wait(jobs.running(), timeout=2)
    assert attempts == 1 and len(jobs) == 0 and jobs.failing == 0
