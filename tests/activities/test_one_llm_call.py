"""Temporal delivers an activity at least once: two attempts of generate_reply running at
the same time (around a server restart) pay the LLM once, and a claim left by a dead
worker lapses instead of blocking the burst."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities import replies as replies_module
from activities.replies import ReplyActivities
from db.tables import burst
from llm.base import Completion, LLMRetryableError, Prompt
from tests.activities.test_idempotency import OPTIONS
from tests.activities.test_paid_once import attempt_env, persisted_burst
from workflows.payloads import GenerateReplyInput


class SlowCountingLLM:
    name = "slow"

    def __init__(self, seconds: float, fail_first: bool = False) -> None:
        self.seconds, self.fail_first, self.calls = seconds, fail_first, 0

    async def complete(self, prompt: Prompt, *, model: str) -> Completion:
        self.calls += 1
        await asyncio.sleep(self.seconds)
        if self.fail_first and self.calls == 1:
            raise LLMRetryableError("provider 503")
        return Completion("one answer", model, 3, 2)


async def test_two_attempts_at_once_pay_the_llm_once(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    key = await persisted_burst(sessionmaker, account_id)
    llm = SlowCountingLLM(1.0)
    acts = ReplyActivities(sessionmaker, llm, OPTIONS)
    first, second = await asyncio.gather(
        attempt_env(60).run(acts.generate_reply, GenerateReplyInput(key)),
        attempt_env(60).run(acts.generate_reply, GenerateReplyInput(key)),
    )
    assert llm.calls == 1
    assert first.reply_id == second.reply_id
    assert sorted([first.reused, second.reused]) == [False, True]


async def test_a_claim_left_by_a_dead_worker_lapses_and_the_burst_is_answered(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(replies_module, "WAIT_POLL_SECONDS", 0.1)
    key = await persisted_burst(sessionmaker, account_id)
    async with sessionmaker() as session, session.begin():
        # A worker claimed it and died: nobody renews the claim, which lapses in 1.5 s.
        await session.execute(
            update(burst)
            .where(burst.c.burst_key == key)
            .values(generating_until=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, 1.5))
        )
    llm = SlowCountingLLM(0.0)
    acts = ReplyActivities(sessionmaker, llm, OPTIONS)
    result = await attempt_env(60).run(acts.generate_reply, GenerateReplyInput(key))
    assert llm.calls == 1 and result.reused is False


async def test_a_failed_call_releases_its_claim_so_the_retry_calls_at_once(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    key = await persisted_burst(sessionmaker, account_id)
    llm = SlowCountingLLM(0.0, fail_first=True)
    acts = ReplyActivities(sessionmaker, llm, OPTIONS)
    try:
        await attempt_env(60).run(acts.generate_reply, GenerateReplyInput(key))
    except Exception as exc:
        assert "503" in str(exc)
    async with sessionmaker() as session:
        held = await session.execute(
            select(burst.c.generating_until).where(burst.c.burst_key == key)
        )
        assert held.scalar_one() is None  # released: the retry need not wait out a lease
    result = await attempt_env(60).run(acts.generate_reply, GenerateReplyInput(key))
    assert llm.calls == 2 and result.reused is False
