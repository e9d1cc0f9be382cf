"""Baseline: the per-message bot. Every message gets its own LLM call and reply."""

from __future__ import annotations

from collections.abc import Awaitable, Callable


class PerMessageBot:
    def __init__(self, answer: Callable[[int, list[str]], Awaitable[None]]) -> None:
        self._answer = answer
        self.llm_calls = 0

    async def ingest(self, chat_id: int, text: str) -> None:
        self.llm_calls += 1
        await self._answer(chat_id, [text])
