"""The listener's jobs: one per update, in each chat's order, retried until handed over.

Telethon dispatches updates concurrently, but a chat's messages must reach Postgres in
order, and an edit or delete must find its message recorded and signalled. Each update
becomes a job, run as our own task so that shutdown can drain it (Telethon's
``disconnect()`` cancels its handler tasks). A job starts once the jobs it follows have
handed over, and is retried with backoff for as long as Temporal or Postgres is down.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.exc import DataError, IntegrityError
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from db.errors import database_unavailable, describe_database_error, is_database_error
from inbound.input_rules import RejectedMessageError

log = logging.getLogger("lull.telegram")

# What a job in line gets: call it once its message is recorded (the chat's next may start).
HandOver = Callable[[], None]
InLineJob = Callable[[HandOver], Awaitable[Any]]


class ChatJobs:
    def __init__(self, ready: asyncio.Event, *, retry_initial: float, retry_max: float) -> None:
        """Jobs wait for ``ready`` (the listener knows which account it is) to run."""
        self._ready = ready
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._started: dict[asyncio.Task[None], float] = {}  # in-flight job → when submitted
        # Each chat's newest job, as the future its next message may start after.
        self._tails: dict[int | None, asyncio.Future[None]] = {}
        self._by_chat: dict[int | None, set[asyncio.Task[None]]] = {}
        self.failing = 0  # jobs currently retrying after a failure
        # Set whenever the last job in flight finishes; the checkpoint loop clears it.
        self.idle = asyncio.Event()

    def __len__(self) -> int:
        return len(self._started)

    def running(self) -> set[asyncio.Task[None]]:
        """The jobs in flight now."""
        return set(self._started)

    def started_at(self) -> list[float]:
        """When each job in flight was submitted (event-loop time)."""
        return list(self._started.values())

    def cancel(self) -> None:
        for job in list(self._started):
            job.cancel()

    def submit(self, chat_id: int | None, label: str, job: Callable[[], Awaitable[Any]]) -> None:
        """Run ``job`` after every earlier job of the chat has finished (``None``: after
        all earlier jobs), as an edit or delete must."""
        before = set(self._started if chat_id is None else self._by_chat.get(chat_id, ()))
        self._start(chat_id, label, before, lambda _handed: job())

    def submit_in_line(
        self, chat_id: int | None, label: str, job: Callable[[HandOver], Awaitable[Any]]
    ) -> None:
        """Run ``job`` once the chat's previous job has handed over: recorded its message
        (the callback ``job`` gets), or finished. A chat's messages so reach Postgres in
        order, while their signals may still be in flight together: the seam sends
        those that meet in flight as one signal (inbound/signal_batches.py)."""
        tail = self._tails.get(chat_id)
        self._start(chat_id, label, {tail} if tail is not None else set(), job)

    def reserve_in_line(self, chat_id: int | None, label: str) -> Callable[[InLineJob], None]:
        """Hold the chat's next place in line for a job not known yet: an album whose first
        item came but whose album event (0.5 s later) has not. The chat's later messages
        wait behind it, as they came after it. Call the returned function with the job."""
        chosen: asyncio.Future[InLineJob] = asyncio.get_running_loop().create_future()

        async def placeholder(hand_over: HandOver) -> None:
            job = await chosen
            await job(hand_over)

        self.submit_in_line(chat_id, label, placeholder)

        def fill(job: InLineJob) -> None:
            if not chosen.done():
                chosen.set_result(job)

        return fill

    def _start(
        self,
        chat_id: int | None,
        label: str,
        before: set[asyncio.Future[None]] | set[asyncio.Task[None]],
        job: Callable[[HandOver], Awaitable[Any]],
    ) -> None:
        handed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def hand_over() -> None:
            if not handed.done():
                handed.set_result(None)

        task = asyncio.create_task(self._run_after(before, label, lambda: job(hand_over)))
        self._started[task] = asyncio.get_running_loop().time()
        self._tails[chat_id] = handed
        self._by_chat.setdefault(chat_id, set()).add(task)

        def done(finished: asyncio.Task[None]) -> None:
            hand_over()
            self._started.pop(finished, None)
            chat_jobs = self._by_chat.get(chat_id, set())
            chat_jobs.discard(finished)
            if not chat_jobs:
                self._by_chat.pop(chat_id, None)
            if self._tails.get(chat_id) is handed:
                del self._tails[chat_id]
            if not self._started:
                self.idle.set()

        task.add_done_callback(done)

    async def _run_after(
        self,
        before: set[asyncio.Future[None]] | set[asyncio.Task[None]],
        label: str,
        job: Callable[[], Awaitable[Any]],
    ) -> None:
        await self._ready.wait()
        if before:
            await asyncio.wait(before)
        await self._run_with_retry(label, job)

    async def _run_with_retry(self, label: str, job: Callable[[], Awaitable[Any]]) -> None:
        delay = self._retry_initial
        failed = False
        try:
            while True:
                try:
                    await job()
                    return
                except (RejectedMessageError, ValueError) as exc:
                    log.warning("rejected %s: %s", label, exc)
                    return
                except WorkflowUpdateFailedError as exc:
                    # The workflow refused the update (a pause of no sane length): asking
                    # again gets the same answer.
                    log.error("refused %s: the conversation rejected it: %s", label, exc.cause)
                    return
                except (DataError, IntegrityError) as exc:
                    # Postgres refuses this data itself: retrying would stall the chat.
                    log.error(
                        "rejected %s: Postgres refuses it: %s",
                        label,
                        describe_database_error(exc),
                    )
                    return
                except Exception as exc:
                    if not failed:
                        failed = True
                        self.failing += 1
                    log.warning(
                        "%s not handed over yet (%s); retrying in %.1f s",
                        label,
                        what_is_down(exc),
                        delay,
                    )
                    await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                    delay = min(delay * 2, self._retry_max)
        finally:
            if failed:
                self.failing -= 1


def what_is_down(exc: BaseException) -> str:
    """The part an error says is down, in words ops act on (not ``FileNotFoundError``)."""
    if database_unavailable(exc):
        return f"Postgres is unreachable: {describe_database_error(exc)}"
    if is_database_error(exc):
        return f"Postgres refused the statement: {describe_database_error(exc)}"
    if isinstance(exc, RPCError):
        return f"Temporal answered {exc.status.name}: {exc.message}"
    return f"{type(exc).__name__}: {str(exc)[:300]}"
