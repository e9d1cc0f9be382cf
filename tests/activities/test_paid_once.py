"""A reply the LLM was paid for is stored even when Postgres goes down meanwhile: the
attempt waits the outage out instead of failing into a retry that pays again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.bursts import BurstActivities
from activities.replies import ReplyActivities
from activities.safe_errors import safe_failure
from db.engine import make_engine, make_sessionmaker
from db.tables import reply
from llm.base import Completion, Prompt
from tests.activities.test_idempotency import OPTIONS, persist_input, seed
from tests.faults.tcp_proxy import FaultProxy, postgres_proxy
from workflows.error_types import ErrorType
from workflows.payloads import GenerateReplyInput


class OutageDuringCall:
    """An LLM that answers while Postgres goes down for ``down_for`` seconds."""

    name = "outage"

    def __init__(self, proxy: FaultProxy, down_for: float) -> None:
        self.proxy, self.down_for, self.calls = proxy, down_for, 0

    async def complete(self, prompt: Prompt, *, model: str) -> Completion:
        self.calls += 1
        await self.proxy.cut()
        self.proxy.restore_after(self.down_for)
        return Completion("the paid answer", model, 10, 5)


@pytest.fixture
async def through_proxy(
    database_url: str,
) -> AsyncIterator[tuple[FaultProxy, async_sessionmaker[AsyncSession]]]:
    proxy, url = await postgres_proxy(database_url)
    engine = make_engine(url)
    yield proxy, make_sessionmaker(engine)
    await engine.dispose()
    await proxy.stop()


def attempt_env(seconds: float) -> ActivityEnvironment:
    env = ActivityEnvironment()
    now = datetime.now(UTC)
    timeout = timedelta(seconds=seconds)
    env.info = replace(
        env.info,
        started_time=now,
        scheduled_time=now,
        start_to_close_timeout=timeout,
        schedule_to_close_timeout=timeout,
    )
    return env


async def persisted_burst(sm: async_sessionmaker[AsyncSession], account_id: int) -> str:
    conv, ids = await seed(sm, account_id, ["book me a haircut"], chat=3, first_id=30)
    inp = persist_input(conv, ids)
    await ActivityEnvironment().run(BurstActivities(sm).persist_burst, inp)
    return inp.burst_key


async def test_a_postgres_outage_after_the_llm_answered_is_waited_out_not_paid_twice(
    sessionmaker: async_sessionmaker[AsyncSession],
    account_id: int,
    through_proxy: tuple[FaultProxy, async_sessionmaker[AsyncSession]],
) -> None:
    proxy, via_proxy = through_proxy
    key = await persisted_burst(sessionmaker, account_id)
    llm = OutageDuringCall(proxy, down_for=2.5)
    replies = ReplyActivities(via_proxy, llm, OPTIONS)
    result = await attempt_env(60).run(replies.generate_reply, GenerateReplyInput(key))
    assert proxy.cuts == 1 and llm.calls == 1
    assert result.reused is False
    async with sessionmaker() as session:
        stored = await session.execute(select(reply.c.text).where(reply.c.id == result.reply_id))
    assert stored.scalar_one() == "the paid answer"


async def test_an_outage_longer_than_the_attempt_fails_it_as_retryable_and_unavailable(
    sessionmaker: async_sessionmaker[AsyncSession],
    account_id: int,
    through_proxy: tuple[FaultProxy, async_sessionmaker[AsyncSession]],
) -> None:
    proxy, via_proxy = through_proxy
    key = await persisted_burst(sessionmaker, account_id)
    replies = ReplyActivities(via_proxy, OutageDuringCall(proxy, down_for=30), OPTIONS)
    with pytest.raises(Exception) as failed:
        await attempt_env(8).run(replies.generate_reply, GenerateReplyInput(key))
    err = safe_failure(failed.value)
    assert isinstance(err, ApplicationError)
    assert err.type == ErrorType.DATABASE_UNAVAILABLE and not err.non_retryable


def test_a_cost_the_column_cannot_hold_is_capped() -> None:
    from decimal import Decimal

    from activities.replies import MAX_STORED_COST

    pricey = replace(OPTIONS, price_completion_per_1k=Decimal(100))
    assert pricey.cost(Completion("x", "m", 0, 10**12)) == MAX_STORED_COST
    assert pricey.cost(Completion("x", "m", 1, 3)) == Decimal("0.3")
