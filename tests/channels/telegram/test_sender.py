"""The Telegram send path against a fake Telegram at Telethon's network boundary."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest
from telethon import errors
from temporalio.exceptions import ApplicationError

from channels.base import SendTarget
from channels.telegram.sender import TelegramSender
from testkit.fake_telegram import FakeTelegram
from testkit.telethon_feed import chat, user
from workflows.ids import delivery_random_id

ALICE = 10
TARGET = SendTarget(chat_id=ALICE, topic_id=None, reply_to=None)
GROUP = 77
GROUP_TARGET = SendTarget(chat_id=-GROUP, topic_id=None, reply_to=6)


async def sender_for(fake: FakeTelegram) -> TelegramSender:
    client = fake.client()
    # Alice wrote to us before, so her access hash is in the session's entity cache.
    await client._preprocess_updates([], [user(ALICE)], [chat(GROUP)])
    return TelegramSender(client)


async def test_a_retried_send_shows_one_message() -> None:
    fake = FakeTelegram()
    sender = await sender_for(fake)
    rid = delivery_random_id("b-1", 0)
    first = await sender.send(TARGET, "hello", random_id=rid)
    again = await sender.send(TARGET, "hello", random_id=rid)
    assert first == again == 1
    assert fake.visible[ALICE] == [(1, "hello")]
    other = await sender.send(TARGET, "second chunk", random_id=delivery_random_id("b-1", 1))
    assert other == 2


async def test_a_duplicate_while_the_first_is_in_flight_counts_as_sent() -> None:
    fake = FakeTelegram(delay=0.2)
    sender = await sender_for(fake)
    rid = delivery_random_id("b-2", 0)
    results = await asyncio.gather(
        sender.send(TARGET, "hi", random_id=rid), sender.send(TARGET, "hi", random_id=rid)
    )
    assert sorted(results, key=str) == [1, None]  # RANDOM_ID_DUPLICATE: already sent
    assert fake.visible[ALICE] == [(1, "hi")]


async def test_a_reply_to_a_message_deleted_since_the_flush_goes_out_plain() -> None:
    # A group reply answers the burst's last message; once that was deleted every attempt
    # was refused with MESSAGE_ID_INVALID and the chat waited out the outage window.
    fake = FakeTelegram(gone={5})
    sender = await sender_for(fake)
    live = await sender.send(GROUP_TARGET, "first", random_id=1)
    sent = await sender.send(
        replace(GROUP_TARGET, reply_to=5), "hello", random_id=delivery_random_id("b-9", 0)
    )
    assert (live, sent) == (1, 2) and fake.visible[GROUP] == [(1, "first"), (2, "hello")]
    assert fake.replied_to == [6, None]


async def test_flood_wait_becomes_the_next_retry_delay() -> None:
    fake = FakeTelegram(flood_waits=[42])
    sender = await sender_for(fake)
    with pytest.raises(ApplicationError) as caught:
        await sender.send(TARGET, "hi", random_id=1)
    assert caught.value.next_retry_delay == timedelta(seconds=42)
    assert not caught.value.non_retryable
    assert fake.calls == 1  # Telethon did not sleep and resend by itself


async def test_too_long_and_refusals_are_permanent() -> None:
    fake = FakeTelegram()
    sender = await sender_for(fake)
    with pytest.raises(ApplicationError) as too_long:
        await sender.send(TARGET, "x" * 4097, random_id=3)
    assert too_long.value.non_retryable and too_long.value.type == "TelegramRejected"
    fake.refuse_with.append(errors.UserIsBlockedError(request=None))
    with pytest.raises(ApplicationError) as blocked:
        await sender.send(TARGET, "hi", random_id=4)
    assert blocked.value.non_retryable and "UserIsBlocked" in str(blocked.value)


async def test_a_revoked_session_is_fatal_and_server_errors_retry() -> None:
    fake = FakeTelegram()
    sender = await sender_for(fake)
    fake.refuse_with.append(errors.SessionRevokedError(request=None))
    with pytest.raises(ApplicationError) as revoked:
        await sender.send(TARGET, "hi", random_id=5)
    assert revoked.value.non_retryable and revoked.value.type == "TelegramAccountFatal"
    fake.refuse_with.append(errors.ServerError(request=None, message="INTERNAL", code=500))
    with pytest.raises(ApplicationError) as server:
        await sender.send(TARGET, "hi", random_id=6)
    assert not server.value.non_retryable
    # And the same chunk then goes through once.
    assert await sender.send(TARGET, "hi", random_id=6) == 1
