"""The listener end to end in one process: a real Telethon client connected over TCP to the
project's MTProto server, the real listener and send activity, a real Temporal dev server,
real Postgres and the echo LLM. Users act through the fake Telegram, as their apps would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from telethon.tl import types
from temporalio.testing import WorkflowEnvironment

from db.locks import AccountLockedError
from tests.ingest.telegram_harness import ALICE, BOB, BOT_ID, GROUP, TelegramHarness, private
from tests.telegram_server.server import FakeTelegramServer

TYPING = types.SendMessageTypingAction()


@pytest.fixture
async def tg(
    dev_env: WorkflowEnvironment,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[TelegramHarness]:
    server = await FakeTelegramServer().start()
    server.world.add_account(BOT_ID, "Lull", bot=True, username="lullbot")
    server.world.add_account(ALICE, "Alice")
    server.world.add_account(BOB, "Bob")
    harness = TelegramHarness(dev_env, engine, sessionmaker, server)
    await harness.seed_session()
    yield harness
    await server.stop()


async def test_a_burst_in_a_private_chat_gets_one_reply(tg: TelegramHarness) -> None:
    async with tg.worker():
        listener = await tg.start_listener()
        for text in ("hi", "can you", "book me a haircut"):
            tg.world.typing(ALICE, private(), TYPING)
            tg.world.send(ALICE, private(), text)
            await asyncio.sleep(0.2)
        replies = await tg.wait_for_replies(ALICE, 1)
        await asyncio.sleep(1.5)  # a second reply would have arrived by now
        assert [r.text for r in tg.replies_to(ALICE)] == [
            "[echo: 3 messages] hi can you book me a haircut"
        ]
        assert replies[0].reply_to is None  # private chats: a plain message
        rows = await tg.messages()
        assert [(r.text, r.reason, r.status) for r in rows] == [
            ("hi", "quiet", "sent"),
            ("can you", "quiet", "sent"),
            ("book me a haircut", "quiet", "sent"),
        ]
        assert await tg.stop_listener(listener) == 0


async def test_group_messages_are_answered_only_when_addressed(tg: TelegramHarness) -> None:
    tg.world.add_group(GROUP, "salon", [BOT_ID, ALICE, BOB])
    group = types.PeerChat(GROUP)
    async with tg.worker():
        listener = await tg.start_listener()
        tg.world.send(BOB, group, "anyone here?")  # chatter: recorded only
        tg.world.send(ALICE, group, "/start")  # a command: answered
        first = await tg.wait_for_replies(ALICE, 1, peer=group)
        assert len(first) == 1
        # The bot's reply is Alice's flow: Bob replying to it is recorded, not answered,
        # while Alice's own reply to it is answered.
        bot_message_for_bob = next(
            m.id for m in tg.world.visible_to(BOB, group) if m.sender_id == BOT_ID
        )
        tg.world.send(BOB, group, "me too", reply_to=bot_message_for_bob)
        tg.world.send(ALICE, group, "thanks", reply_to=first[0].id)
        replies = await tg.wait_for_replies(ALICE, 2, peer=group)
        await asyncio.sleep(1.5)
        assert len(tg.replies_to(ALICE, group)) == 2
        assert "thanks" in replies[1].text and "me too" not in replies[1].text
        # In groups the first chunk replies to the burst's last message.
        assert replies[1].reply_to is not None
        reasons = {r.text: r.unanswered_reason for r in await tg.messages()}
        assert reasons["anyone here?"] == "group_chatter"
        assert reasons["me too"] == "flow_owned"
        assert reasons["thanks"] is None
        await tg.stop_listener(listener)


async def test_a_second_listener_for_the_account_is_refused(tg: TelegramHarness) -> None:
    listener = await tg.start_listener()
    with pytest.raises(AccountLockedError, match="already served"):
        await tg.start_listener()
    # The refused one never connected: only the first listener's session asked anything.
    assert await tg.stop_listener(listener) == 0
