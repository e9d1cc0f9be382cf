"""Inline buttons: a press reaches the conversation through the MTProto server as an
event of its own. A configured button joins the burst as its text, or is answered at
once; every press is recorded and answered exactly once (the spinner stops)."""

from __future__ import annotations

import asyncio

from sqlalchemy import select, update

from db.queries import accounts as db_accounts
from db.tables import account, message
from tests.channels.telegram.harness import ALICE, BOT_ID, TelegramHarness, private

BUTTONS = {
    "book": {"text": "Book the 3 pm slot"},
    "hours": {"answer": "We open 9 to 18", "alert": True},
}


async def with_buttons(tg: TelegramHarness) -> None:
    async with tg.sessionmaker() as session, session.begin():
        account_id = await db_accounts.upsert_account(
            session, key=tg.account_key, kind="telegram_bot", display_name=tg.account_key
        )
        await session.execute(
            update(account).where(account.c.id == account_id).values(settings={"buttons": BUTTONS})
        )


async def answered(tg: TelegramHarness, query_id: int) -> list[tuple[str | None, bool]]:
    for _ in range(200):
        if query_id in tg.world.callback_answers:
            break
        await asyncio.sleep(0.05)
    return tg.world.callback_answers.get(query_id, [])


async def test_button_presses_join_the_burst_or_are_answered_at_once(tg: TelegramHarness) -> None:
    await with_buttons(tg)
    async with tg.worker():
        listener = await tg.start_listener()
        tg.world.send(ALICE, private(), "hello")
        (greeting,) = await tg.wait_for_replies(ALICE, 1)

        # A message and a press within the quiet period: one reply answers both, in order.
        tg.world.send(ALICE, private(), "I'd like a haircut")
        book = tg.world.press(ALICE, BOT_ID, greeting.id, b"book")
        replies = await tg.wait_for_replies(ALICE, 2)
        assert replies[1].text == "[echo: 2 messages] I'd like a haircut Book the 3 pm slot"
        assert await answered(tg, book) == [(None, False)]  # the spinner stopped

        # Answered at once, as an alert; no reply message.
        hours = tg.world.press(ALICE, BOT_ID, greeting.id, b"hours")
        assert await answered(tg, hours) == [("We open 9 to 18", True)]
        # A button nobody configured: recorded, answered with nothing.
        unknown = tg.world.press(ALICE, BOT_ID, greeting.id, b"zzz")
        assert await answered(tg, unknown) == [(None, False)]
        await tg.replies_match_bursts(ALICE)
        assert len(tg.replies_to(ALICE)) == 2
        await tg.stop_listener(listener)
    assert tg.world.open_queries == {}
    async with tg.sessionmaker() as session:
        presses = [
            (row.text, row.kind, row.unanswered_reason)
            for row in await session.execute(
                select(message)
                .join(account, account.c.id == message.c.account_id)
                .where(account.c.key == tg.account_key, message.c.kind == "callback")
                .order_by(message.c.id)
            )
        ]
    assert presses == [
        ("Book the 3 pm slot", "callback", None),
        ("[button hours]", "callback", "button_answered"),
        ("[button zzz]", "callback", "unknown_button"),
    ]


async def test_a_second_answer_is_refused_by_telegram_and_the_press_counts_once(
    tg: TelegramHarness,
) -> None:
    """A job retried after its answer went out answers again: Telegram refuses that
    (QUERY_ID_INVALID), the listener takes it as answered, and the press is one message."""
    await with_buttons(tg)
    async with tg.worker():
        listener = await tg.start_listener()
        tg.world.send(ALICE, private(), "hello")
        (greeting,) = await tg.wait_for_replies(ALICE, 1)
        query = tg.world.press(ALICE, BOT_ID, greeting.id, b"book")
        await tg.wait_for_replies(ALICE, 2)
        # The same update again (a retried job, a re-delivery).
        tg.world.open_queries.pop(query, None)
        from telethon.tl import types

        again = types.UpdateBotCallbackQuery(
            query_id=query,
            user_id=ALICE,
            peer=types.PeerUser(ALICE),
            msg_id=greeting.id,
            chat_instance=1,
            data=b"book",
        )
        tg.world._deliver(BOT_ID, tg.world._envelope(BOT_ID, [again]))
        await asyncio.sleep(2)  # the quiet period: no second burst comes of it
        await tg.replies_match_bursts(ALICE)
        assert len(tg.replies_to(ALICE)) == 2
        assert tg.world.callback_answers[query] == [(None, False)]
        await tg.stop_listener(listener)


def test_a_reply_never_replies_to_a_button_press() -> None:
    from channels.base import callback_message_id, reply_target

    press = callback_message_id(7_000_000_000_001)
    assert press > 2**31 and press < 2**63
    assert reply_target([4, press, 5]) == 5
    assert reply_target([press]) is None
    assert reply_target([]) is None
