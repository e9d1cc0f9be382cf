"""Forum topics end to end: the real listener over the fake MTProto server's forums, which
are channels (one box per forum, its own pts, getChannelDifference after a gap or a
restart), with a real Temporal dev server, real Postgres and the echo LLM."""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from telethon.tl import types

from db.tables import account, burst, conversation
from testkit.telegram_server.model import Visible
from tests.channels.telegram.harness import ALICE, BOB, BOT_ID, TelegramHarness

FORUM = 4242
TYPING = types.SendMessageTypingAction()
# Telethon's (and Lull's) id of a channel: -100 followed by its id.
FORUM_CHAT = -1_000_000_000_000 - FORUM


def forum(tg: TelegramHarness) -> tuple[types.PeerChannel, int, int]:
    """The forum with two topics, the bot named @lullbot in it; (peer, topic a, topic b)."""
    tg.world.accounts[BOT_ID].username = "lullbot"
    made = tg.world.add_forum(FORUM, "salon", [BOT_ID, ALICE, BOB])
    first, second = made.topics
    return types.PeerChannel(FORUM), first, second


def bot_replies(tg: TelegramHarness, topic: int) -> list[Visible]:
    return [m for m in tg.world.forum_messages(FORUM, topic) if m.sender_id == BOT_ID]


async def until_replies(tg: TelegramHarness, topic: int, count: int) -> list[Visible]:
    for _ in range(400):
        if len(bot_replies(tg, topic)) >= count:
            break
        await asyncio.sleep(0.05)
    return bot_replies(tg, topic)


async def sent_bursts(tg: TelegramHarness) -> dict[int | None, list[str]]:
    """Once nothing is being answered: each topic's bursts, by status."""
    for _ in range(400):
        async with tg.sessionmaker() as session:
            rows = (
                await session.execute(
                    select(burst.c.status, conversation.c.chat_id, conversation.c.topic_id)
                    .join(conversation, conversation.c.id == burst.c.conversation_id)
                    .join(account, account.c.id == conversation.c.account_id)
                    .where(account.c.key == tg.account_key)
                )
            ).all()
        if rows and all(r.status not in ("persisted", "replied") for r in rows):
            break
        await asyncio.sleep(0.1)
    found: dict[int | None, list[str]] = {}
    for row in rows:
        assert row.chat_id == FORUM_CHAT
        found.setdefault(row.topic_id, []).append(row.status)
    return found


async def test_each_forum_topic_is_a_conversation_answered_in_its_topic(
    tg: TelegramHarness,
) -> None:
    peer, a, b = forum(tg)
    async with tg.worker():
        listener = await tg.start_listener()
        tg.world.typing(ALICE, peer, TYPING, topic=a)
        tg.world.send(ALICE, peer, "@lullbot book me", topic=a)
        tg.world.send(BOB, peer, "@lullbot what time", topic=b)
        tg.world.send(ALICE, peer, "@lullbot a haircut", topic=a)
        tg.world.send(BOB, peer, "nice weather", topic=b)  # chatter: not addressed
        in_a, in_b = await until_replies(tg, a, 1), await until_replies(tg, b, 1)
        assert [r.text for r in in_a] == ["[echo: 2 messages] @lullbot book me @lullbot a haircut"]
        assert [r.text for r in in_b] == ["[echo: 1 message] @lullbot what time"]
        # Each reply stays in its topic and answers the burst's last message there.
        assert in_a[0].topic == a and in_b[0].topic == b
        assert await sent_bursts(tg) == {a: ["sent"], b: ["sent"]}
        # One workflow per topic, named by the chat and the topic.
        assert (await tg.conversation_state(FORUM_CHAT, a)).bursts_flushed == 1
        assert (await tg.conversation_state(FORUM_CHAT, b)).bursts_flushed == 1
        assert await tg.stop_listener(listener) == 0


async def test_edits_and_deletes_in_a_topic_change_its_buffered_burst(tg: TelegramHarness) -> None:
    peer, a, _ = forum(tg)
    async with tg.worker():
        listener = await tg.start_listener()
        first = tg.world.send(ALICE, peer, "@lullbot tuesday", topic=a)
        second = tg.world.send(ALICE, peer, "@lullbot at 10", topic=a)
        tg.world.edit(ALICE, peer, second, "@lullbot at 11")
        tg.world.delete(ALICE, [first], peer=peer)
        replies = await until_replies(tg, a, 1)
        assert [r.text for r in replies] == ["[echo: 1 message] @lullbot at 11"]
        assert await sent_bursts(tg) == {a: ["sent"]}
        await tg.stop_listener(listener)


async def test_topic_messages_sent_while_the_listener_was_down_are_caught_up_once(
    tg: TelegramHarness,
) -> None:
    """The forum's updates are not in the account's difference: a restarted listener
    learns of them from updateChannelTooLong and asks getChannelDifference from the forum
    pts it saved, so each message is answered, once."""
    peer, a, b = forum(tg)
    async with tg.worker():
        listener = await tg.start_listener()
        tg.world.send(ALICE, peer, "@lullbot first", topic=a)
        await until_replies(tg, a, 1)
        await tg.crash_listener(listener)
        tg.world.send(ALICE, peer, "@lullbot while you", topic=a)
        tg.world.send(ALICE, peer, "@lullbot were away", topic=a)
        tg.world.send(BOB, peer, "@lullbot me too", topic=b)
        restarted = await tg.start_listener()
        in_a, in_b = await until_replies(tg, a, 2), await until_replies(tg, b, 1)
        assert await sent_bursts(tg) == {a: ["sent", "sent"], b: ["sent"]}
        assert [r.text for r in bot_replies(tg, a)] == [
            "[echo: 1 message] @lullbot first",
            "[echo: 2 messages] @lullbot while you @lullbot were away",
        ]
        assert [r.text for r in in_b] == ["[echo: 1 message] @lullbot me too"]
        assert len(in_a) == 2
        assert "GetChannelDifferenceRequest" in {name for _, name in tg.server.requests}
        await tg.stop_listener(restarted)
