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
# long, paid for. With this, it hears of the cancel within about that.
HEARTBEAT_THROTTLE = timedelta(seconds=1)
# While an LLM call runs: a cancel (its burst superseded) is heard at the next heartbeat
# the worker sends, so a call is abandoned within about a second, not paid to the end.
CALL_HEARTBEAT_EVERY_SECONDS = 1.0


@contextlib.asynccontextmanager
async def heartbeating(*, llm_call: bool = False) -> AsyncIterator[None]:
    """Heartbeat while the block runs; faster around an LLM call (a cancel is heard sooner)."""

    async def beat() -> None:
        activity.heartbeat()

    every = CALL_HEARTBEAT_EVERY_SECONDS if llm_call else HEARTBEAT_EVERY_SECONDS
    async with repeating(beat, every=every, first_now=True):
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
