"""The designs Lull replaces, run on the bench's workload: a Redis batcher on its own
redis-server, and a bot that answers every message."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench.baselines.per_message import PerMessageBot
from bench.baselines.redis_batcher import RedisBatcher
from bench.lull_driver import (
    Sent,
)
from bench.workload import DEBOUNCE, MAX_BATCH, Workload
from testkit.servers import free_port


def overheads(sent: list[Sent], workload: Workload) -> tuple[list[float], int]:
    """Seconds from each batch's ideal flush moment to its send call; and how many batches
    did not match an ideal batch (split or merged differently)."""
    values, unmatched = [], 0
    for s in sent:
        due = workload.due.get((s.chat_id, s.last_message_id))
        if due is None:
            unmatched += 1
            continue
        values.append(s.at - due)
    return values, unmatched


# -- the Redis batcher ---------------------------------------------------------------------
@contextlib.asynccontextmanager
async def running_redis(work_dir: Path) -> AsyncIterator[Redis]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found; install it: apt-get install -y redis-server")
    port = free_port()
    # A one-off spawn at set-up; the bench measures nothing while it runs.
    proc = subprocess.Popen(  # noqa: ASYNC220
        [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(work_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # One connection per concurrently ingesting chat, as many bots run it.
    redis = Redis(host="127.0.0.1", port=port, max_connections=4096)
    try:
        for _ in range(100):
            with contextlib.suppress(Exception):
                if await redis.ping():
                    break
            await asyncio.sleep(0.05)
        yield redis
    finally:
        await redis.aclose()
        proc.terminate()
        proc.wait(10)


async def run_redis_batcher(redis: Redis, workload: Workload) -> tuple[list[Sent], int]:
    await redis.flushall()
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent: list[Sent] = []

    async def answer(chat_id: int, texts: list[str]) -> None:
        last = int(texts[-1].removeprefix("m"))
        sent.append(Sent(chat_id, last, len(texts), loop.time() - started))

    batcher = RedisBatcher(redis, debounce=DEBOUNCE, max_batch=MAX_BATCH, answer=answer)
    stop = asyncio.Event()
    processor = asyncio.create_task(batcher.run(stop))
    by_chat: dict[int, list[Any]] = {}
    for event in workload.events:
        if event.kind == "message":
            by_chat.setdefault(event.chat_id, []).append(event)

    async def chat(events: list[Any]) -> None:
        for event in events:
            delay = started + event.at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await batcher.ingest(event.chat_id, f"m{event.message_id}")

    await asyncio.gather(*(chat(e) for e in by_chat.values()))
    deadline = loop.time() + DEBOUNCE + 30
    # Polls the baseline's own record of answers, which offers no event to wait on.
    while sum(s.messages for s in sent) < workload.messages and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    stop.set()
    await processor
    return sent, batcher.llm_calls


async def count_per_message_calls(workload: Workload) -> int:
    async def answer(chat_id: int, texts: list[str]) -> None:
        await asyncio.sleep(0)

    bot = PerMessageBot(answer)
    for event in workload.events:
        if event.kind == "message":
            await bot.ingest(event.chat_id, f"m{event.message_id}")
    return bot.llm_calls
