"""Failed bursts in Postgres: the failure recorded, ops alerted once per kind and hour,
the user's error message sent once, and a failed burst reopened for `lull retry`."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.bursts import BurstActivities
from activities.errors import from_telegram_error
from activities.replies import ReplyActivities
from activities.sending import SendActivities
from db.queries import accounts as db_accounts
from db.queries import failures as db_failures
from db.tables import burst, reply, send_attempt
from tests.activities.test_idempotency import (
    OPTIONS,
    CountingProvider,
    RecordingSender,
    persist_input,
    seed,
)
from workflows.error_types import ErrorType
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
        key = (await db_accounts.load_account(session, account_id)).key
    assert f"ALERT account {key}:" in alerts[0].getMessage()
    async with sessionmaker() as session:
        rows = await db_failures.alerts(session, account_id)
    assert [(r.kind, r.occurrences, r.first_burst_key) for r in rows] == [
        ("LLMRejected", 3, first),
        ("TelegramRejected", 1, fourth),
    ]
    async with sessionmaker() as session:
        listed = await db_failures.failed_bursts(session, limit=1000)
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
    assert refused.value.type == ErrorType.NOT_FAILED and refused.value.non_retryable
    assert "is sent, not failed" in str(refused.value)


async def test_a_failed_burst_without_a_reply_is_reopened_to_generate_it(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    key = await failed_burst(sessionmaker, account_id, 7)
    env = ActivityEnvironment()
    assert await env.run(BurstActivities(sessionmaker).reopen_failed_burst, key) == "persisted"


class LostAnswerSender(RecordingSender):
    """Telegram took the first send but its answer never came (a dropped connection);
    refusals, when set, are answers (FLOOD_WAIT): surely not delivered."""

    def __init__(self, *, refuse: bool = False) -> None:
        super().__init__()
        self.fail_next = True
        self.refuse = refuse

    async def send(self, target: Any, text: str, *, random_id: int) -> int | None:
        if self.fail_next:
            self.fail_next = False
            from telethon import errors

            cause: Exception = (
                errors.FloodWaitError(request=None, capture=5)
                if self.refuse
                else ConnectionError("connection lost")
            )
            raise from_telegram_error(cause)
        return await super().send(target, text, random_id=random_id)


async def a_burst_with_a_reply(
    sm: async_sessionmaker[AsyncSession], account_id: int, chat: int
) -> str:
    conv, ids = await seed(sm, account_id, ["hello"], chat=chat, first_id=chat * 10)
    env, bursts = ActivityEnvironment(), BurstActivities(sm)
    key = persist_input(conv, ids).burst_key
    await env.run(bursts.persist_burst, persist_input(conv, ids))
    await env.run(
        ReplyActivities(sm, CountingProvider(), OPTIONS).generate_reply, GenerateReplyInput(key)
    )
    return key


async def age_attempts(sm: async_sessionmaker[AsyncSession], key: str, seconds: int) -> None:
    """Move the burst's send attempts ``seconds`` into the past."""
    replies = select(reply.c.id).join(burst, burst.c.id == reply.c.burst_id)
    async with sm() as session, session.begin():
        await session.execute(
            update(send_attempt)
            .where(send_attempt.c.reply_id.in_(replies.where(burst.c.burst_key == key)))
            .values(
                unknown_since=send_attempt.c.unknown_since - timedelta(seconds=seconds),
                in_flight_since=send_attempt.c.in_flight_since - timedelta(seconds=seconds),
            )
        )


async def test_a_send_never_answered_is_repeated_only_while_telegram_deduplicates_it(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    # A retry soon after a lost answer repeats the random_id: Telegram de-duplicates it.
    env = ActivityEnvironment()
    soon = await a_burst_with_a_reply(sessionmaker, account_id, 11)
    sender = LostAnswerSender()
    acts = SendActivities(sessionmaker, sender, random_id_trust_seconds=600)
    with pytest.raises(ApplicationError):
        await env.run(acts.send_reply, SendReplyInput(soon))
    assert (await env.run(acts.send_reply, SendReplyInput(soon))).newly_sent == 1
    # Long after (the burst failed, ops retried an hour later), the chunk may be on screen
    # already and a repeat would show twice: refused, named, left to the operator.
    late = await a_burst_with_a_reply(sessionmaker, account_id, 12)
    sender = LostAnswerSender()
    acts = SendActivities(sessionmaker, sender, random_id_trust_seconds=600)
    with pytest.raises(ApplicationError):
        await env.run(acts.send_reply, SendReplyInput(late))
    await age_attempts(sessionmaker, late, 3600)
    with pytest.raises(ApplicationError) as doubt:
        await env.run(acts.send_reply, SendReplyInput(late))
    assert doubt.value.type == "SendInDoubt" and doubt.value.non_retryable
    assert "--resend-in-doubt" in str(doubt.value) and sender.sends == []
    sent = await env.run(acts.send_reply, SendReplyInput(late, resend_in_doubt=True))
    assert sent.newly_sent == 1 and len(sender.sends) == 1


async def test_a_refused_send_was_not_delivered_and_may_be_repeated_any_time(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    key = await a_burst_with_a_reply(sessionmaker, account_id, 13)
    sender = LostAnswerSender(refuse=True)  # FLOOD_WAIT: Telegram answered, nothing sent
    acts = SendActivities(sessionmaker, sender, random_id_trust_seconds=600)
    env = ActivityEnvironment()
    with pytest.raises(ApplicationError):
        await env.run(acts.send_reply, SendReplyInput(key))
    await age_attempts(sessionmaker, key, 3600)
    assert (await env.run(acts.send_reply, SendReplyInput(key))).newly_sent == 1
