"""The provider interface, the prompt it takes and the errors it raises (by type)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Prompt:
    system: str
    # Earlier exchanges of this context, oldest first: (user text, assistant reply).
    history: list[tuple[str, str]] = field(default_factory=list)
    # The burst being answered, one entry per user message, in message-id order.
    burst: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int


class LLMProvider(Protocol):
    name: str

    async def complete(self, prompt: Prompt, *, model: str) -> Completion: ...


class LLMError(Exception):
    """Base of provider failures. Subclasses say how Temporal should treat them."""


class LLMRetryableError(LLMError):
    """Timeouts, connection errors, 5xx and 429; ``retry_after`` is the provider's hint."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LLMRejectedError(LLMError):
    """The provider refused this request (bad request, content, context too long)."""


class LLMAuthError(LLMError):
    """The provider refused our credentials (401/403): fatal for the account."""
