"""Baseline: the Redis "rapid-fire" batcher many Telegram bots run today.

Every message is RPUSHed to a per-chat list with the chat's last-message timestamp; a
processor polls every second and flushes a chat once the debounce has passed since its
last message or 10 messages are waiting, taking at most 10 per batch. Typing is ignored.
One LLM call per batch, then the send.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

PENDING = "batcher:pending"  # set of chats with queued messages
POLL_SECONDS = 1.0


class RedisBatcher:
    def __init__(
        self,
        redis: Redis,
        *,
        debounce: float,
        max_batch: int,
        answer: Callable[[int, list[str]], Awaitable[None]],
    ) -> None:
        self._redis = redis
        self._debounce = debounce
        self._max_batch = max_batch
        self._answer = answer
        self.llm_calls = 0

    async def ingest(self, chat_id: int, text: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(f"batcher:chat:{chat_id}", text)
            pipe.set(f"batcher:last:{chat_id}", time.time())
            pipe.sadd(PENDING, chat_id)
            await pipe.execute()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.poll_once()
            await asyncio.sleep(POLL_SECONDS)

    async def poll_once(self) -> None:
        now = time.time()
        for raw in await self._redis.smembers(PENDING):
            chat_id = int(raw)
            length = await self._redis.llen(f"batcher:chat:{chat_id}")
            last = float(await self._redis.get(f"batcher:last:{chat_id}") or 0)
            if length == 0:
                await self._redis.srem(PENDING, chat_id)
                continue
            if length < self._max_batch and now - last < self._debounce:
                continue
            await self._flush(chat_id)

    async def _flush(self, chat_id: int) -> None:
        key = f"batcher:chat:{chat_id}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lrange(key, 0, self._max_batch - 1)
            pipe.ltrim(key, self._max_batch, -1)
            texts, _ = await pipe.execute()
        if texts:
            self.llm_calls += 1
            await self._answer(chat_id, [t.decode() for t in texts])
