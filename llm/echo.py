"""The offline, deterministic provider for demos and tests."""

from __future__ import annotations

from llm.base import Completion, Prompt


class EchoProvider:
    """Names how many messages the burst held and repeats them joined by a space."""

    name = "echo"

    async def complete(self, prompt: Prompt, *, model: str) -> Completion:
        count = len(prompt.burst)
        noun = "message" if count == 1 else "messages"
        text = f"[echo: {count} {noun}] " + " ".join(prompt.burst)
        prompt_words = sum(len(t.split()) for t in (prompt.system, *prompt.burst))
        prompt_words += sum(len(u.split()) + len(a.split()) for u, a in prompt.history)
        return Completion(text, "echo", prompt_words, len(text.split()))
