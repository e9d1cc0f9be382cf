"""Heartbeats for activities that wait on the outside world (an LLM call, a Telegram send).

A call can take a minute; heartbeats let Temporal notice a dead worker within the heartbeat
timeout the workflow sets, instead of waiting out the whole start-to-close timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

from temporalio import activity

HEARTBEAT_EVERY_SECONDS = 5.0
# The worker's heartbeat throttle. A cancel reaches an activity only in the answer to a
# heartbeat the worker sends, and the SDK holds heartbeats back up to 80 % of the
# heartbeat timeout (24 s for an LLM call): a superseded burst's call would run on that
# long, paid for. With this, it hears of the cancel within a few seconds.
HEARTBEAT_THROTTLE = timedelta(seconds=2)


@contextlib.asynccontextmanager
async def heartbeating() -> AsyncIterator[None]:
    async def beat() -> None:
        activity.heartbeat()

    async with repeating(beat, every=HEARTBEAT_EVERY_SECONDS, first_now=True):
        yield


@contextlib.asynccontextmanager
async def repeating(
    action: Callable[[], Awaitable[None]], *, every: float, first_now: bool = False
) -> AsyncIterator[None]:
    """Run ``action`` every ``every`` seconds while the block runs; stop it on the way out."""

    async def loop() -> None:
        if not first_now:
            await asyncio.sleep(every)
        while True:
            await action()
            await asyncio.sleep(every)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
