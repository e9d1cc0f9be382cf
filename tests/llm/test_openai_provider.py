"""The openai provider through the real SDK against a local chat-completions server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import openai
import pytest

from activities.errors import from_llm_error
from llm.base import LLMAuthError, LLMRejectedError, LLMRetryableError, Prompt
from llm.openai_compat import OpenAIProvider
from testkit.fake_llm import Answer, FakeOpenAI, running_fake_openai

PROMPT = Prompt(system="be brief", history=[("hi", "hello!")], burst=["can you", "book me"])


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with running_fake_openai() as server:
        yield server


def provider(fake: FakeOpenAI, timeout: float = 2.0) -> OpenAIProvider:
    client = openai.AsyncOpenAI(
        api_key="sk-test", base_url=fake.base_url, max_retries=0, timeout=timeout
    )
    return OpenAIProvider(client)


async def test_200_returns_text_and_usage_and_sends_the_whole_burst_as_one_turn(
    fake: FakeOpenAI,
) -> None:
    fake.script.append(Answer(content="Sure, when?"))
    completion = await provider(fake).complete(PROMPT, model="gpt-test")
    assert completion.text == "Sure, when?"
    assert completion.model == "gpt-test"
    assert completion.completion_tokens == 2
    assert completion.prompt_tokens > 0
    sent = fake.requests[0]["messages"]
    assert sent == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello!"},
        {"role": "user", "content": "can you\nbook me"},
    ]


async def test_429_is_retryable_with_the_providers_retry_after(fake: FakeOpenAI) -> None:
    fake.script.append(Answer(status=429, headers={"retry-after": "7"}))
    with pytest.raises(LLMRetryableError) as caught:
        await provider(fake).complete(PROMPT, model="m")
    assert caught.value.retry_after == 7
    err = from_llm_error(caught.value)
    assert err.non_retryable is False
    assert err.next_retry_delay == timedelta(seconds=7)
    assert len(fake.requests) == 1  # max_retries=0: Temporal, not the SDK, retries


async def test_500_is_retryable(fake: FakeOpenAI) -> None:
    fake.script.append(Answer(status=500))
    with pytest.raises(LLMRetryableError):
        await provider(fake).complete(PROMPT, model="m")
    assert len(fake.requests) == 1


async def test_timeout_is_retryable(fake: FakeOpenAI) -> None:
    fake.script.append(Answer(delay=1.0))
    with pytest.raises(LLMRetryableError, match="timed out"):
        await provider(fake, timeout=0.2).complete(PROMPT, model="m")


async def test_400_is_rejected_for_good(fake: FakeOpenAI) -> None:
    fake.script.append(Answer(status=400))
    with pytest.raises(LLMRejectedError) as caught:
        await provider(fake).complete(PROMPT, model="m")
    assert from_llm_error(caught.value).non_retryable is True


async def test_401_is_fatal_for_the_account_and_never_leaks_the_key(fake: FakeOpenAI) -> None:
    fake.script.append(Answer(status=401))
    with pytest.raises(LLMAuthError) as caught:
        await provider(fake).complete(PROMPT, model="m")
    err = from_llm_error(caught.value)
    assert err.non_retryable is True
    assert err.type == "LLMAccountFatal"
    assert "sk-test" not in str(err)


async def test_empty_completion_is_rejected(fake: FakeOpenAI) -> None:
    fake.script.append(Answer(content="   "))
    with pytest.raises(LLMRejectedError):
        await provider(fake).complete(PROMPT, model="m")
