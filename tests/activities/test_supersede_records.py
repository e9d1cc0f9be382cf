"""What Postgres keeps of a superseded burst: its status, its successor and the rule that
decided; its messages move to the burst that answers them; a cancelled call's spend."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.bursts import BurstActivities
from activities.replies import BURST_SUPERSEDED, ReplyActivities
from db.queries import bursts as db_bursts
from db.tables import account, burst, message, reply
from tests.activities.test_idempotency import OPTIONS, CountingProvider, persist_input, seed
from tests.activities.test_one_llm_call import SlowCountingLLM
from tests.activities.test_paid_once import attempt_env
from workflows.payloads import GenerateReplyInput, MidReplyInput


async def test_a_superseded_burst_hands_its_messages_to_the_burst_that_takes_it_over(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    conv, ids = await seed(sessionmaker, account_id, ["book me", "a haircut"], chat=41)
    bursts, llm = BurstActivities(sessionmaker), CountingProvider()
    replies = ReplyActivities(sessionmaker, llm, OPTIONS)
    env = ActivityEnvironment()
    first = persist_input(conv, ids[:1])
    await env.run(bursts.persist_burst, first)
    rule = "superseded (1 of 2)"
    for _ in range(2):  # safe to repeat
        done = await env.run(
            bursts.record_mid_reply, MidReplyInput(first.burst_key, superseded=True, rule=rule)
        )
        assert done is True
    merged = replace(
        persist_input(conv, ids),
        flushed_at=first.flushed_at + timedelta(seconds=6),
        takes_over=first.burst_key,
    )
    assert merged.burst_key != first.burst_key  # its own key: its random_ids never collide
    result = await env.run(bursts.persist_burst, merged)
    assert result.message_count == 2
    generated = await attempt_env(60).run(
        replies.generate_reply, GenerateReplyInput(merged.burst_key)
    )
    assert generated.reused is False
    # A late attempt of the superseded burst's call pays nothing.
    with pytest.raises(ApplicationError) as refused:
        await attempt_env(60).run(replies.generate_reply, GenerateReplyInput(first.burst_key))
    assert refused.value.type == BURST_SUPERSEDED and refused.value.non_retryable
    async with sessionmaker() as session:
        rows = {
            r.burst_key: r
            for r in await session.execute(
                select(
                    burst.c.burst_key,
                    burst.c.id,
                    burst.c.status,
                    burst.c.superseded_by,
                    burst.c.mid_reply,
                ).where(burst.c.conversation_id == conv)
            )
        }
        owners = (
            (
                await session.execute(
                    select(message.c.burst_id).where(message.c.conversation_id == conv)
                )
            )
            .scalars()
            .all()
        )
    old, new = rows[first.burst_key], rows[merged.burst_key]
    assert (old.status, old.superseded_by, old.mid_reply) == ("superseded", new.id, rule)
    assert new.status == "replied"
    assert set(owners) == {new.id}
    assert llm.prompts[-1].burst == ["book me", "a haircut"]  # both, in order
    assert len(llm.prompts) == 1


async def test_a_kept_burst_records_the_rule_that_kept_it(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    conv, ids = await seed(sessionmaker, account_id, ["hello"], chat=42)
    bursts, env = BurstActivities(sessionmaker), ActivityEnvironment()
    inp = persist_input(conv, ids)
    await env.run(bursts.persist_burst, inp)
    kept = MidReplyInput(inp.burst_key, superseded=False, rule="kept: max wait reached")
    assert await env.run(bursts.record_mid_reply, kept) is False
    async with sessionmaker() as session:
        row = (
            await session.execute(
                select(burst.c.status, burst.c.mid_reply).where(burst.c.burst_key == inp.burst_key)
            )
        ).one()
    assert tuple(row) == ("persisted", "kept: max wait reached")


async def test_a_cancelled_call_is_aborted_and_its_spend_recorded(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    conv, ids = await seed(sessionmaker, account_id, ["x" * 400], chat=43)
    bursts = BurstActivities(sessionmaker)
    inp = persist_input(conv, ids)
    await ActivityEnvironment().run(bursts.persist_burst, inp)
    llm = SlowCountingLLM(60.0)
    priced = replace(OPTIONS, price_prompt_per_1k=Decimal("0.5"))
    env = attempt_env(120)
    call = asyncio.create_task(
        env.run(
            ReplyActivities(sessionmaker, llm, priced).generate_reply,
            GenerateReplyInput(inp.burst_key),
        )
    )
    for _ in range(100):
        if llm.calls:
            break
        await asyncio.sleep(0.05)
    env.cancel()  # as Temporal delivers a cancel to a heartbeating activity
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(call, 10)  # not the 60 s the call would have taken
    async with sessionmaker() as session:
        row = (
            await session.execute(
                select(reply.c.text, reply.c.cancelled, reply.c.prompt_tokens, reply.c.cost)
                .join(burst, burst.c.id == reply.c.burst_id)
                .where(burst.c.burst_key == inp.burst_key)
            )
        ).one()
        claim = (
            await session.execute(
                select(burst.c.generating_until).where(burst.c.burst_key == inp.burst_key)
            )
        ).scalar_one()
    # "be brief" and 400 characters: 408 characters, 102 tokens at 4 a token.
    assert (row.text, row.cancelled, row.prompt_tokens) == ("", True, 102)
    assert row.cost == Decimal("0.051")
    assert claim is None
    # `lull inspect` shows the spend the supersede discarded.
    await ActivityEnvironment().run(
        bursts.record_mid_reply, MidReplyInput(inp.burst_key, superseded=True, rule="r")
    )
    async with sessionmaker() as session:
        key = (
            await session.execute(select(account.c.key).where(account.c.id == account_id))
        ).scalar_one()
        spend = await db_bursts.supersede_spend(session, account_key=key, chat_id=43, topic_id=None)
    assert spend == {
        "superseded": 1,
        "discarded": 0,
        "cancelled": 1,
        "discarded_tokens": 102,
        "discarded_cost": "0.05100000",
    }
