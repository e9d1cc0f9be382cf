"""Builds the configured provider once per process (called by entrypoints only)."""

from __future__ import annotations

import openai

from app.settings import Settings
from llm.base import LLMProvider
from llm.echo import EchoProvider
from llm.openai_compat import OpenAIProvider


def build_provider(settings: Settings) -> LLMProvider:
    if settings.llm_provider == "echo":
        return EchoProvider(settings.echo_delay_seconds)
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else "unused"
    client = openai.AsyncOpenAI(
        api_key=key,
        base_url=settings.llm_base_url,
        max_retries=0,
        timeout=settings.llm_timeout_seconds,
    )
    return OpenAIProvider(client)
