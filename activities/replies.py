"""The LLM activity: one call per burst, stored so a retry never pays twice."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.errors import from_llm_error, missing
from db import queries
from llm.base import Completion, LLMError, LLMProvider, Prompt
from workflows.payloads import GenerateReplyInput, GenerateReplyResult


@dataclass(frozen=True)
class ReplyOptions:
    default_model: str
    default_system_prompt: str
    history_bursts: int
    price_prompt_per_1k: Decimal = Decimal(0)
    price_completion_per_1k: Decimal = Decimal(0)

    def cost(self, completion: Completion) -> Decimal:
        return (
            self.price_prompt_per_1k * completion.prompt_tokens
            + self.price_completion_per_1k * completion.completion_tokens
        ) / 1000


class ReplyActivities:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        provider: LLMProvider,
        options: ReplyOptions,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._provider = provider
        self._options = options

    @activity.defn(name="generate_reply")
    async def generate_reply(self, input: GenerateReplyInput) -> GenerateReplyResult:
        prompt, model, burst_id, stored = await self._prepare(input.burst_key)
        if stored is not None:
            return GenerateReplyResult(reply_id=stored.id, chars=len(stored.text), reused=True)
        try:
            completion = await self._provider.complete(prompt, model=model)
        except LLMError as exc:
            raise from_llm_error(exc) from exc
        return await self._store(burst_id, completion)

    async def _prepare(self, key: str) -> tuple[Prompt, str, int, Any]:
        """Load what the call needs in one short transaction (no connection held over the call)."""
        async with self._sessionmaker() as session:
            burst = await queries.load_burst(session, key)
            if burst is None:
                raise missing(f"burst {key}")
            stored = await queries.load_reply(session, burst.id)
            acct = await queries.load_account(session, burst.account_id)
            model = acct.model or self._options.default_model
            if stored is not None:
                return Prompt(system=""), model, burst.id, stored
            history = await queries.recent_turns(
                session,
                conversation_id=burst.conversation_id,
                epoch=burst.context_epoch,
                before_burst_id=burst.id,
                limit=self._options.history_bursts,
            )
            texts = await queries.burst_texts(session, burst.id)
        system = acct.system_prompt or self._options.default_system_prompt
        return Prompt(system=system, history=history, burst=texts), model, burst.id, None

    async def _store(self, burst_id: int, completion: Completion) -> GenerateReplyResult:
        async with self._sessionmaker() as session, session.begin():
            reply_id = await queries.insert_reply(
                session,
                burst_id=burst_id,
                text=completion.text,
                model=completion.model,
                prompt_tokens=completion.prompt_tokens,
                completion_tokens=completion.completion_tokens,
                cost=self._options.cost(completion),
            )
            if reply_id is None:
                # A concurrent attempt stored its reply first; that one is the reply.
                stored = await queries.load_reply(session, burst_id)
                return GenerateReplyResult(stored.id, len(stored.text), reused=True)
            await queries.set_burst_status(
                session, burst_id, "replied", only_from=("persisted",), replied_at=func.now()
            )
        return GenerateReplyResult(reply_id=reply_id, chars=len(completion.text), reused=False)
