"""Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, OpenRouter)."""

from __future__ import annotations

import openai

from llm.base import Completion, LLMAuthError, LLMRejectedError, LLMRetryableError, Prompt


def to_messages(prompt: Prompt) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": prompt.system}]
    for user_text, reply_text in prompt.history:
        messages.append({"role": "user", "content": user_text})
        messages.append({"role": "assistant", "content": reply_text})
    # The whole burst is one user turn: the user meant it as one thought.
    messages.append({"role": "user", "content": "\n".join(prompt.burst)})
    return messages


class OpenAIProvider:
    name = "openai"

    def __init__(self, client: openai.AsyncOpenAI) -> None:
        # The client must be built with max_retries=0: Temporal owns retries, visibly.
        self._client = client

    async def complete(self, prompt: Prompt, *, model: str) -> Completion:
        try:
            response = await self._client.chat.completions.create(
                model=model,
                messages=to_messages(prompt),  # type: ignore[arg-type]
            )
        except openai.APIError as exc:
            raise classify(exc) from exc
        choice = response.choices[0] if response.choices else None
        text = (choice.message.content or "").strip() if choice else ""
        if not text:
            raise LLMRejectedError(f"{model} returned an empty reply")
        usage = response.usage
        return Completion(
            text=text,
            model=response.model or model,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        )


def classify(exc: openai.APIError) -> Exception:
    """Map the SDK's exception types (never message text) onto our retry classes."""
    if isinstance(exc, openai.APITimeoutError | openai.APIConnectionError):
        return LLMRetryableError(f"{type(exc).__name__}: provider unreachable or timed out")
    if isinstance(exc, openai.RateLimitError):
        return LLMRetryableError("429 rate limited", retry_after=_retry_after(exc))
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return LLMAuthError(f"{exc.status_code}: provider refused the credentials")
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500 or exc.status_code in (408, 409):
            return LLMRetryableError(
                f"{exc.status_code} from provider", retry_after=_retry_after(exc)
            )
        return LLMRejectedError(f"{exc.status_code} from provider: {_short(exc)}")
    return LLMRetryableError(f"{type(exc).__name__} from provider")


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _short(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    message = body.get("message") or body.get("error", {}).get("message") if body else None
    return str(message or exc.message)[:300]
