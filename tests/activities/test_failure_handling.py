"""Failed bursts in Postgres: the failure recorded, ops alerted once per kind and hour,
the user's error message sent once, and a failed burst reopened for `lull retry`."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.bursts import NOT_FAILED, BurstActivities
from activities.replies import ReplyActivities
from activities.sending import SendActivities
from db import failure_queries, queries
from db.tables import burst
from tests.activities.test_idempotency import (
    OPTIONS,
    CountingProvider,
    RecordingSender,
    persist_input,
    seed,
)
from workflows.ids import delivery_random_id
from workflows.payloads import (
    FailureNoticeInput,
    GenerateReplyInput,
    MarkBurstFailedInput,
    SendReplyInput,
)


async def failed_burst(
    sm: async_sessionmaker[AsyncSession], account_id: int, chat: int, kind: str = "LLMRejected"
) -> str:
    conv, ids = await seed(sm, account_id, ["hi"], chat=chat, first_id=chat * 10)
    acts, env = BurstActivities(sm), ActivityEnvironment()
    key = persist_input(conv, ids).burst_key
    await env.run(acts.persist_burst, persist_input(conv, ids))
    await env.run(acts.mark_burst_failed, MarkBurstFailedInput(key, kind, f"{kind} happened"))
    return key


async def test_failures_alert_ops_once_per_kind_and_hour_and_count_the_rest(
    sessionmaker: async_sessionmaker[AsyncSession],
    account_id: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="lull.alerts"):
        first = await failed_burst(sessionmaker, account_id, 1)
        await failed_burst(sessionmaker, account_id, 2)
        await failed_burst(sessionmaker, account_id, 3)
        fourth = await failed_burst(sessionmaker, account_id, 4, kind="TelegramRejected")
    alerts = [r for r in caplog.records if r.name == "lull.alerts"]
    assert len(alerts) == 2
    assert all(r.levelno == logging.ERROR for r in alerts)
    assert "LLMRejected" in alerts[0].getMessage() and first in alerts[0].getMessage()
    # Named by the account's key, as ops know it, not its internal id.
    async with sessionmaker() as session:
        key = (await queries.load_account(session, account_id)).key
    assert f"ALERT account {key}:" in alerts[0].getMessage()
    async with sessionmaker() as session:
        rows = await failure_queries.alerts(session, account_id)
    assert [(r.kind, r.occurrences, r.first_burst_key) for r in rows] == [
        ("LLMRejected", 3, first),
        ("TelegramRejected", 1, fourth),
    ]
    async with sessionmaker() as session:
        listed = await failure_queries.failed_bursts(session, limit=1000)
        status = await session.execute(
            select(burst.c.status, burst.c.failed_at).where(burst.c.burst_key == first)
        )
    assert status.one().failed_at is not None
    assert first in {r.burst_key for r in listed}


async def test_the_error_message_goes_to_the_user_once(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    key = await failed_burst(sessionmaker, account_id, 5)
    sender, env = RecordingSender(), ActivityEnvironment()
    sends = SendActivities(sessionmaker, sender)
    assert await env.run(sends.send_failure_notice, FailureNoticeInput(key)) is True
    assert await env.run(sends.send_failure_notice, FailureNoticeInput(key)) is False
    ((target, text, random_id),) = sender.sends
    assert text == "Sorry, something went wrong."
    assert (target.chat_id, target.reply_to) == (5, 50)
    # Not a reply chunk's random_id: Telegram must not take it for chunk 0 of the reply.
    assert random_id not in {delivery_random_id(key, i) for i in range(10)}


async def test_a_failed_burst_with_a_stored_reply_is_reopened_to_send_it_not_regenerate(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    conv, ids = await seed(sessionmaker, account_id, ["hello"], chat=6, first_id=60)
    env, bursts = ActivityEnvironment(), BurstActivities(sessionmaker)
    key = persist_input(conv, ids).burst_key
    await env.run(bursts.persist_burst, persist_input(conv, ids))
    provider = CountingProvider()
    replies = ReplyActivities(sessionmaker, provider, OPTIONS)
    await env.run(replies.generate_reply, GenerateReplyInput(key))
    await env.run(bursts.mark_burst_failed, MarkBurstFailedInput(key, "TelegramRetryable", "x"))

    assert await env.run(bursts.reopen_failed_burst, key) == "replied"
    again = await env.run(replies.generate_reply, GenerateReplyInput(key))
    sender = RecordingSender()
    await env.run(SendActivities(sessionmaker, sender).send_reply, SendReplyInput(key))
    assert again.reused is True and len(provider.prompts) == 1
    assert len(sender.sends) == 1
    async with sessionmaker() as session:
        row = (await session.execute(select(burst).where(burst.c.burst_key == key))).one()
    assert (row.status, row.retries, row.error_type) == ("sent", 1, None)

    with pytest.raises(ApplicationError) as refused:
        await env.run(bursts.reopen_failed_burst, key)
    assert refused.value.type == NOT_FAILED and refused.value.non_retryable
    assert "is sent, not failed" in str(refused.value)


async def test_a_failed_burst_without_a_reply_is_reopened_to_generate_it(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    key = await failed_burst(sessionmaker, account_id, 7)
    env = ActivityEnvironment()
    assert await env.run(BurstActivities(sessionmaker).reopen_failed_burst, key) == "persisted"
