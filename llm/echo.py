"""The offline, deterministic provider for demos and tests."""

from __future__ import annotations

import asyncio

from llm.base import Completion, Prompt


class EchoProvider:
    """Names how many messages the burst held and repeats them joined by a space."""

    name = "echo"

    def __init__(self, delay_seconds: float = 0.0) -> None:
        # LULL_ECHO_DELAY_SECONDS: a call that takes this long (cancellably), so a replay
        # script can put a message in the middle of a generation.
        self._delay = delay_seconds

    async def complete(self, prompt: Prompt, *, model: str) -> Completion:
        if self._delay > 0:
            await asyncio.sleep(self._delay)
        count = len(prompt.burst)
        noun = "message" if count == 1 else "messages"
        text = f"[echo: {count} {noun}] " + " ".join(prompt.burst)
        prompt_words = sum(len(t.split()) for t in (prompt.system, *prompt.burst))
        prompt_words += sum(len(u.split()) + len(a.split()) for u, a in prompt.history)
        return Completion(text, "echo", prompt_words, len(text.split()))
