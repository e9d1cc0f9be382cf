"""The listener end to end in one process: a real Telethon client connected over TCP to the
project's MTProto server, the real listener and send activity, a real Temporal dev server,
real Postgres and the echo LLM. Users act through the fake Telegram, as their apps would."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from telethon.tl import types
from temporalio.testing import WorkflowEnvironment

import ingest as telegram_service
from app.dev_stack import StackError
from db.locks import AccountLockedError
from db.tables import account, burst, conversation, delivery, reply, telegram_update_state
from testkit.fake_llm import Answer, running_fake_openai
from testkit.servers import free_port
from testkit.telegram_server.model import STARTING_PTS
from testkit.telegram_server.server import FakeTelegramServer
from tests.channels.telegram.harness import ALICE, BOB, BOT_ID, GROUP, TelegramHarness, private
from tests.conftest import binary

TYPING = types.SendMessageTypingAction()


async def test_a_burst_in_a_private_chat_gets_one_reply(tg: TelegramHarness) -> None:
    async with tg.worker():
        listener = await tg.start_listener()
        for text in ("hi", "can you", "book me a haircut"):
            tg.world.typing(ALICE, private(), TYPING)
            tg.world.send(ALICE, private(), text)
            await asyncio.sleep(0.2)
        replies = await tg.wait_for_replies(ALICE, 1)
        await tg.replies_match_bursts(ALICE)  # and no second reply, however late
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
        await tg.replies_match_bursts(ALICE, group)
        assert len(tg.replies_to(ALICE, group)) == 2
        assert "thanks" in replies[1].text and "me too" not in replies[1].text
        # In groups the first chunk replies to the burst's last message.
        assert replies[1].reply_to is not None
        reasons = {r.text: r.unanswered_reason for r in await tg.messages()}
        assert reasons["anyone here?"] == "group_chatter"
        assert reasons["me too"] == "flow_owned"
        assert reasons["thanks"] is None
        await tg.stop_listener(listener)


async def test_a_reply_to_a_chunk_before_its_delivery_row_is_stored_is_a_reply_to_us(
    tg: TelegramHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The send activity stores a chunk's message id after Telegram accepted it; a user
    # replying within that gap once read as chatter (seen on CI as 'group_chatter').
    from activities import sending

    stored = asyncio.Event()
    insert_delivery = sending.db_replies.insert_delivery

    async def slow_insert_delivery(*args: object, **kwargs: object) -> None:
        await asyncio.sleep(3)
        await insert_delivery(*args, **kwargs)  # type: ignore[arg-type]
        stored.set()

    monkeypatch.setattr(sending.db_replies, "insert_delivery", slow_insert_delivery)
    tg.world.add_group(GROUP, "salon", [BOT_ID, ALICE, BOB])
    group = types.PeerChat(GROUP)
    async with tg.worker():
        listener = await tg.start_listener()
        tg.world.send(ALICE, group, "/start")
        await tg.wait_for_replies(ALICE, 1, peer=group)
        assert not stored.is_set()
        bot_message = next(m.id for m in tg.world.visible_to(BOB, group) if m.sender_id == BOT_ID)
        tg.world.send(BOB, group, "me too", reply_to=bot_message)
        await asyncio.wait_for(stored.wait(), 10)
        await tg.replies_match_bursts(ALICE, group)
        reasons = {r.text: r.unanswered_reason for r in await tg.messages()}
        assert reasons["me too"] == "flow_owned"  # a reply to us, in Alice's flow
        await tg.stop_listener(listener)


async def test_a_second_listener_for_the_account_is_refused(tg: TelegramHarness) -> None:
    listener = await tg.start_listener()
    with pytest.raises(AccountLockedError, match="already served"):
        await tg.start_listener()
    # The refused one never connected: only the first listener's session asked anything.
    assert await tg.stop_listener(listener) == 0


async def test_edits_and_deletes_change_the_buffered_burst(tg: TelegramHarness) -> None:
    async with tg.worker():
        listener = await tg.start_listener()
        first = tg.world.send(ALICE, private(), "tuesday")
        second = tg.world.send(ALICE, private(), "at 10")
        tg.world.edit(ALICE, private(), second, "at 11")
        tg.world.delete(ALICE, [first])
        replies = await tg.wait_for_replies(ALICE, 1)
        await tg.replies_match_bursts(ALICE)
        assert [r.text for r in tg.replies_to(ALICE)] == ["[echo: 1 message] at 11"]
        assert [r.text for r in replies] == ["[echo: 1 message] at 11"]
        rows = {r.message_id: r for r in await tg.messages()}
        assert rows[min(rows)].deleted_at is not None
        await tg.stop_listener(listener)


async def test_a_crashed_listener_catches_up_without_losing_or_doubling(
    tg: TelegramHarness,
) -> None:
    async with tg.worker():
        listener = await tg.start_listener()
        tg.world.send(ALICE, private(), "first")
        await tg.wait_for_replies(ALICE, 1)
        await tg.crash_listener(listener)
        tg.world.send(ALICE, private(), "while you")
        tg.world.send(ALICE, private(), "were away")
        restarted = await tg.start_listener()
        replies = await tg.wait_for_replies(ALICE, 2)
        await tg.replies_match_bursts(ALICE)
        assert [r.text for r in tg.replies_to(ALICE)] == [
            "[echo: 1 message] first",
            "[echo: 2 messages] while you were away",
        ]
        assert len(replies) == 2
        assert "GetDifferenceRequest" in {name for _, name in tg.server.requests}
        await tg.stop_listener(restarted)


async def test_health_endpoints_report_alive_and_ready(tg: TelegramHarness) -> None:
    listener = await tg.start_listener()
    port = listener.health.port
    assert await http_get(port, "/healthz") == (200, {"alive": True})
    status, checks = await http_get(port, "/readyz")
    assert (status, checks) == (
        200,
        {"telegram": True, "temporal": True, "postgres": True, "updates": True},
    )
    assert (await http_get(port, "/nope"))[0] == 404
    await tg.stop_listener(listener)


async def http_get(port: int, path: str) -> tuple[int, object]:
    import json

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


async def test_the_owner_writing_hands_the_chat_over(tg_user: TelegramHarness) -> None:
    tg = tg_user
    async with tg.worker():
        listener = await tg.start_listener()
        tg.world.send(ALICE, private(), "hello?")
        await tg.wait_for_replies(ALICE, 1)
        # The owner types on their phone: Telegram pushes it as an outgoing message.
        tg.world.send(BOT_ID, types.PeerUser(ALICE), "I'll take it from here")
        await asyncio.sleep(0.5)
        tg.world.send(ALICE, private(), "great, thanks")
        await asyncio.sleep(2.5)  # debounce 1 s: a reply would have come
        from_account = tg.replies_to(ALICE)
        assert [m.text for m in from_account] == [
            "[echo: 1 message] hello?",
            "I'll take it from here",
        ]
        rows = {r.text: r for r in await tg.messages()}
        assert rows["great, thanks"].status == "dropped"  # recorded, not answered
        await tg.stop_listener(listener)


async def test_the_owner_starting_to_type_hands_the_chat_over_until_resumed(
    tg_user: TelegramHarness,
) -> None:
    # LULL_HANDOFF_MINUTES=0 means "until `lull resume`", not "no handoff".
    tg = tg_user
    tg.settings_overrides.update(handoff_minutes=0)
    tg.world.add_group(GROUP, "salon", [BOT_ID, ALICE])
    group = types.PeerChat(GROUP)
    async with tg.worker():
        listener = await tg.start_listener()
        tg.world.send(ALICE, group, "/start")
        await tg.wait_for_replies(ALICE, 1, peer=group)
        # The owner starts typing on their phone: the bot stops before their message.
        tg.world.own_typing(BOT_ID, GROUP, TYPING)
        await asyncio.sleep(0.5)
        state = await tg.conversation_state(-GROUP)
        assert state.paused and state.resume_at is None
        tg.world.send(ALICE, group, "/help")
        await asyncio.sleep(2.5)  # a reply would have come
        assert len(tg.replies_to(ALICE, group)) == 1
        await tg.stop_listener(listener)


async def test_our_own_typing_while_generating_hands_nothing_over(
    tg_user: TelegramHarness,
) -> None:
    tg = tg_user
    tg.world.add_group(GROUP, "salon", [BOT_ID, ALICE])
    group = types.PeerChat(GROUP)
    async with running_fake_openai() as llm:
        llm.script.append(Answer(delay=4.0, content="done"))
        tg.settings_overrides.update(llm_base_url=llm.base_url, llm_api_key="k", commands="book")
        async with tg.worker():
            listener = await tg.start_listener()
            tg.world.send(ALICE, group, "/book a table")
            await asyncio.sleep(2.5)  # generating now: the account shows "typing…"
            tg.world.own_typing(BOT_ID, GROUP, TYPING)  # how another session sees it
            replies = await tg.wait_for_replies(ALICE, 1, peer=group)
            state = await tg.conversation_state(-GROUP)
            await tg.stop_listener(listener)
    assert [r.text for r in replies] == ["done"]
    assert not state.paused


async def test_the_chat_shows_typing_while_the_reply_is_generated(tg: TelegramHarness) -> None:
    seen: list[str] = []
    tg.world.push_observers.append(
        lambda user_id, updates: seen.extend(
            type(u.action).__name__
            for u in updates.updates
            if isinstance(u, types.UpdateUserTyping) and u.user_id == BOT_ID
        )
    )
    async with running_fake_openai() as llm:
        llm.script.append(Answer(delay=9.0, content="sorry for the wait"))
        tg.settings_overrides.update(llm_base_url=llm.base_url, llm_api_key="k")
        listener = await tg.start_listener()
        async with tg.worker():
            tg.world.send(ALICE, private(), "slow question")
            await asyncio.sleep(7.5)  # debounce 1 s, then generation running
            typing_while_generating = list(seen)
            replies = await tg.wait_for_replies(ALICE, 1)
            await tg.replies_match_bursts(ALICE)
            for _ in range(40):  # the indicator's next poll cancels the typing status
                if seen[-1] == "SendMessageCancelAction":
                    break
                await asyncio.sleep(0.1)
        await tg.stop_listener(listener)
    assert [r.text for r in replies] == ["sorry for the wait"]
    # Shown within a second of persisting, renewed every 4 s, cancelled when done.
    assert typing_while_generating[:2] == ["SendMessageTypingAction"] * 2
    assert "SendMessageCancelAction" not in typing_while_generating
    assert seen[-1] == "SendMessageCancelAction"


async def test_login_stores_a_user_session_the_listener_then_uses(tg: TelegramHarness) -> None:
    owner = tg.world.add_account(500, "Owner")
    owner.authorized = False  # a fresh key: Telegram knows it, no one signed in with it
    await tg.seed_session(500)
    answers = iter(["+15550100", "12345"])
    message = await telegram_service.login(tg.runtime(), ask=lambda prompt: next(answers))
    assert message.startswith("logged in as Owner (id 500)")
    assert owner.authorized
    # The session is in Postgres: a listener started from it serves the user account.
    async with tg.worker():
        listener = await tg.start_listener()
        tg.world.send(ALICE, types.PeerUser(500), "are you there?")
        replies = []
        for _ in range(200):
            replies = [
                m for m in tg.world.visible_to(ALICE, types.PeerUser(500)) if m.sender_id == 500
            ]
            if replies:
                break
            await asyncio.sleep(0.05)
        assert [m.text for m in replies] == ["[echo: 1 message] are you there?"]
        await tg.stop_listener(listener)


async def test_login_refuses_beside_a_listener_and_never_skips_what_came_meanwhile(
    tg_user: TelegramHarness,
) -> None:
    tg = tg_user

    def no_questions(prompt: str) -> str:
        raise AssertionError(f"a stored session needs no login questions, asked {prompt!r}")

    async with tg.worker():
        listener = await tg.start_listener()
        tg.world.send(ALICE, private(), "first")
        await tg.wait_for_replies(ALICE, 1)
        with pytest.raises(AccountLockedError):
            await telegram_service.login(tg.runtime(), ask=no_questions)
        assert await tg.stop_listener(listener) == 0
        saved = await tg.saved_pts()
        # While no listener runs: two messages, then a login on the stored session.
        tg.world.send(ALICE, private(), "while you were")
        tg.world.send(ALICE, private(), "away")
        await telegram_service.login(tg.runtime(), ask=no_questions)
        assert await tg.saved_pts() == saved
        listener = await tg.start_listener()
        replies = await tg.wait_for_replies(ALICE, 2)
        await tg.stop_listener(listener)
    assert [r.text for r in replies][1] == "[echo: 2 messages] while you were away"


async def test_a_listener_that_loses_its_lock_stops_serving_before_another_takes_over(
    tg: TelegramHarness, database_url: str
) -> None:
    from dataclasses import replace

    from db.engine import make_engine
    from tests.faults.tcp_proxy import postgres_proxy

    proxy, url = await postgres_proxy(database_url)
    proxied = make_engine(url)
    try:
        async with tg.worker():
            first = await replace(tg, engine=proxied).start_listener()
            tg.world.send(ALICE, private(), "before")
            await tg.wait_for_replies(ALICE, 1)
            connected = tg.server.sessions_of(BOT_ID)
            assert connected == 1
            await proxy.cut()  # Postgres restarts: the lock's session is gone
            code = await asyncio.wait_for(first.task, 5)
            assert code == telegram_service.EXIT_LOCK_LOST
            for _ in range(20):  # the server sees the close a moment later
                if tg.server.sessions_of(BOT_ID) == 0:
                    break
                await asyncio.sleep(0.05)
            assert tg.server.sessions_of(BOT_ID) == 0  # off Telegram before anyone else
            second = await tg.start_listener()  # takes the account over
            tg.world.send(ALICE, private(), "after")
            replies = await tg.wait_for_replies(ALICE, 2)
            await tg.stop_listener(second)
    finally:
        await proxied.dispose()
        await proxy.stop()
    assert [r.text for r in replies] == ["[echo: 1 message] before", "[echo: 1 message] after"]


@pytest.mark.parametrize("answer", ["RANDOM_ID_DUPLICATE", "the earlier message"])
async def test_a_reply_whose_retried_send_was_a_duplicate_is_not_taken_for_the_owner(
    tg_user: TelegramHarness, answer: str
) -> None:
    # Telegram takes the send but its answer never comes; the listener restarts, catch-up
    # brings the account's own message, and the retried send is answered as Telegram
    # documents a repeated random_id: RANDOM_ID_DUPLICATE (no message id to store) or
    # the earlier message. Either way it must not read as the owner writing.
    tg = tg_user
    tg.world.duplicate_in_flight = answer == "RANDOM_ID_DUPLICATE"
    async with tg.worker():
        listener = await tg.start_listener()
        tg.server.withhold_send_answers = 1
        tg.world.send(ALICE, private(), "hello?")
        await tg.wait_for_replies(ALICE, 1)  # Telegram carried it out
        await tg.crash_listener(listener)
        listener = await tg.start_listener()
        for _ in range(600):  # the retried send after the send's heartbeat timeout
            if [r.status for r in await tg.messages()] == ["sent"]:
                break
            await asyncio.sleep(0.1)
        tg.world.send(ALICE, private(), "still there?")
        replies = await tg.wait_for_replies(ALICE, 2, within=30)
        await tg.stop_listener(listener)
    assert [r.text for r in replies] == [
        "[echo: 1 message] hello?",
        "[echo: 1 message] still there?",
    ]
    own = [
        m.id for m in tg.world.visible_to(BOT_ID, types.PeerUser(ALICE)) if m.sender_id == BOT_ID
    ]
    async with tg.sessionmaker() as session:
        ids = (
            (
                await session.execute(
                    select(delivery.c.channel_message_id)
                    .join(reply, reply.c.id == delivery.c.reply_id)
                    .join(burst, burst.c.id == reply.c.burst_id)
                    .join(conversation, conversation.c.id == burst.c.conversation_id)
                    .join(account, account.c.id == conversation.c.account_id)
                    .where(account.c.key == tg.account_key)
                )
            )
            .scalars()
            .all()
        )
    assert sorted(ids) == sorted(own)  # the first reply's id, learnt from its own update


async def test_a_disabled_account_is_not_served_and_a_served_one_stops_when_disabled(
    tg: TelegramHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telegram_service, "ACTIVE_POLL_SECONDS", 0.2)

    async def set_active(active: bool) -> None:
        async with tg.sessionmaker() as session, session.begin():
            await session.execute(
                update(account).where(account.c.key == tg.account_key).values(active=active)
            )

    async with tg.worker():
        listener = await tg.start_listener()
        tg.world.send(ALICE, private(), "hi")
        await tg.wait_for_replies(ALICE, 1)
        await set_active(False)
        assert await asyncio.wait_for(listener.task, 10) == 0  # drained, then stopped
        with pytest.raises(StackError, match="is disabled"):
            await tg.start_listener()
        await set_active(True)
        listener = await tg.start_listener()
        await tg.stop_listener(listener)


async def test_a_bot_signs_in_with_its_token(tg: TelegramHarness) -> None:
    bot = tg.world.add_account(600, "Fresh bot", bot=True, bot_token="600:secret")
    bot.authorized = False
    await tg.seed_session(600)
    tg.settings_overrides["tg_bot_token"] = "600:secret"
    listener = await tg.start_listener()
    assert bot.authorized
    await tg.stop_listener(listener)


async def test_a_listener_without_a_session_says_how_to_get_one(tg: TelegramHarness) -> None:
    tg.world.add_account(700, "Nobody").authorized = False
    await tg.seed_session(700)
    with pytest.raises(StackError, match="run `lull login`"):
        await tg.start_listener()


async def test_updates_wait_out_a_temporal_outage_and_the_listener_reports_unready(
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    port = free_port()
    options = {
        "dev_server_existing_path": binary("temporal"),
        "port": port,
        "ui": False,
        "dev_server_database_filename": str(tmp_path / "temporal.db"),
    }
    temporal = await WorkflowEnvironment.start_local(**options)  # type: ignore[arg-type]
    server = await FakeTelegramServer().start()
    server.world.add_account(BOT_ID, "Lull", bot=True)
    server.world.add_account(ALICE, "Alice")
    tg = TelegramHarness(temporal, engine, sessionmaker, server)
    await tg.seed_session()
    try:
        async with tg.worker():
            listener = await tg.start_listener()
            tg.world.send(ALICE, private(), "before")
            await tg.wait_for_replies(ALICE, 1)
            await temporal.shutdown()
            tg.world.send(ALICE, private(), "during the outage")
            await asyncio.sleep(6)  # the listener reports unready after 5 s
            status, checks = await http_get(listener.health.port, "/readyz")
            assert status == 503
            assert checks == {
                "telegram": True,
                "temporal": False,
                "postgres": True,
                "updates": False,
            }
            temporal = await WorkflowEnvironment.start_local(**options)  # type: ignore[arg-type]
            replies = await tg.wait_for_replies(ALICE, 2, within=60)
            assert [r.text for r in replies][-1] == "[echo: 1 message] during the outage"
            assert (await http_get(listener.health.port, "/readyz"))[0] == 200
            await tg.stop_listener(listener)
    finally:
        await temporal.shutdown()
        await server.stop()


async def test_a_flood_wait_delays_the_send_which_then_goes_out_once(tg: TelegramHarness) -> None:
    tg.world.flood_wait_next(BOT_ID, seconds=2)
    async with tg.worker():
        listener = await tg.start_listener()
        tg.world.send(ALICE, private(), "busy?")
        replies = await tg.wait_for_replies(ALICE, 1, within=30)
        await asyncio.sleep(1.0)
        await tg.stop_listener(listener)
    assert [r.text for r in tg.replies_to(ALICE)] == ["[echo: 1 message] busy?"]
    assert len(replies) == 1
    sends = [name for _, name in tg.server.requests if name == "SendMessageRequest"]
    assert len(sends) == 2  # refused with FLOOD_WAIT_2, retried by Temporal after it


async def test_a_long_reply_arrives_in_chunks_within_telegrams_limit(tg: TelegramHarness) -> None:
    paragraphs = [f"Paragraph {i}. " + "word " * 300 for i in range(7)]
    long_text = "\n\n".join(paragraphs)  # about 10,600 characters
    async with running_fake_openai() as llm:
        llm.script.append(Answer(content=long_text))
        tg.settings_overrides.update(llm_base_url=llm.base_url, llm_api_key="k")
        async with tg.worker():
            listener = await tg.start_listener()
            tg.world.send(ALICE, private(), "tell me everything")
            replies = await tg.wait_for_replies(ALICE, 4, within=30)
            await asyncio.sleep(1.0)
            await tg.stop_listener(listener)
    # Paragraphs of ~1,500 characters: two fit a 4,096-character message, three do not.
    assert len(tg.replies_to(ALICE)) == 4
    assert all(len(r.text) <= 4096 for r in replies)
    assert "\n\n".join(r.text for r in replies).split() == long_text.split()
    assert all(r.text.startswith("Paragraph") for r in replies)  # split between paragraphs


async def test_an_album_is_one_message_and_a_bare_photo_a_placeholder(
    tg: TelegramHarness,
) -> None:
    async with tg.worker():
        listener = await tg.start_listener()
        for caption in ("", "our new salon", ""):
            tg.world.send(ALICE, private(), caption, photo=True, grouped_id=42)
        await tg.wait_for_replies(ALICE, 1)
        tg.world.send(ALICE, private(), "", photo=True)
        replies = await tg.wait_for_replies(ALICE, 2)
        await tg.replies_match_bursts(ALICE)
        await tg.stop_listener(listener)
    assert [r.text for r in tg.replies_to(ALICE)] == [
        "[echo: 1 message] our new salon",
        "[echo: 1 message] [photo]",
    ]
    assert len(replies) == 2
    rows = await tg.messages()
    # Ids in the bot's box: the album took 1-3, the bot's reply 4.
    assert [(r.message_id, r.kind) for r in rows] == [(1, "media"), (5, "media")]


async def test_a_message_sent_right_after_an_album_is_recorded_after_it(
    tg: TelegramHarness,
) -> None:
    # Telethon delivers an album 0.5 s after its last item: a text sent meanwhile once
    # reached Postgres (and the reply) first, seen by the chaos run as out of order.
    async with tg.worker():
        listener = await tg.start_listener()
        tg.world.send(ALICE, private(), "the salon", photo=True, grouped_id=7)
        tg.world.send(ALICE, private(), "", photo=True, grouped_id=7)
        tg.world.send(ALICE, private(), "and the menu")
        await tg.wait_for_replies(ALICE, 1)
        await tg.replies_match_bursts(ALICE)
        await tg.stop_listener(listener)
    assert [r.text for r in tg.replies_to(ALICE)] == ["[echo: 2 messages] the salon and the menu"]
    rows = await tg.messages()
    assert [r.text for r in sorted(rows, key=lambda r: r.id)] == ["the salon", "and the menu"]


async def test_a_revoked_session_stops_the_listener_loudly(
    tg: TelegramHarness, caplog: pytest.LogCaptureFixture
) -> None:
    async with tg.worker():
        listener = await tg.start_listener()
        tg.world.send(ALICE, private(), "hello")
        tg.world.revoke(BOT_ID)
        code = await asyncio.wait_for(listener.task, 30)
        rows = await tg.messages()
        for _ in range(100):  # the workflow records the failure after the activity's
            if rows[0].status == "failed":
                break
            await asyncio.sleep(0.1)
            rows = await tg.messages()
    assert code == telegram_service.EXIT_SESSION_DEAD
    assert any(
        r.levelname == "CRITICAL" and "refused the session" in r.getMessage()
        for r in caplog.records
    )
    assert rows[0].status == "failed"
    assert tg.replies_to(ALICE) == []


async def test_a_replay_of_answered_updates_produces_no_second_burst(
    tg: TelegramHarness,
) -> None:
    async with tg.worker():
        listener = await tg.start_listener()
        tg.world.send(ALICE, private(), "once")
        await tg.wait_for_replies(ALICE, 1)
        await tg.stop_listener(listener)
        # Forget how far the session got: catch-up replays every update from the start.
        async with tg.sessionmaker() as session, session.begin():
            await session.execute(
                update(telegram_update_state)
                .where(telegram_update_state.c.account_key == tg.account_key)
                .values(pts=STARTING_PTS)
            )
        listener = await tg.start_listener()
        tg.world.send(ALICE, private(), "twice?")
        await tg.wait_for_replies(ALICE, 2)
        await tg.replies_match_bursts(ALICE)
        await tg.stop_listener(listener)
    assert [r.text for r in tg.replies_to(ALICE)] == [
        "[echo: 1 message] once",
        "[echo: 1 message] twice?",
    ]
    assert len({r.burst_id for r in await tg.messages()}) == 2


async def test_a_dropped_connection_is_reestablished(tg: TelegramHarness) -> None:
    async with tg.worker():
        listener = await tg.start_listener()
        tg.world.send(ALICE, private(), "before")
        await tg.wait_for_replies(ALICE, 1)
        connected = tg.server.connections_made[BOT_ID]
        tg.server.drop_connections(BOT_ID)
        for _ in range(100):  # the drop happened, and the client came back on its own
            if tg.server.connections_made[BOT_ID] > connected:
                break
            await asyncio.sleep(0.1)
        assert tg.server.connections_made[BOT_ID] == connected + 1
        tg.world.send(ALICE, private(), "after")  # pushed after reconnecting, or fetched
        replies = await tg.wait_for_replies(ALICE, 2, within=30)
        await tg.stop_listener(listener)
    assert [r.text for r in replies] == ["[echo: 1 message] before", "[echo: 1 message] after"]


async def test_a_listener_that_is_never_idle_still_saves_its_update_state(
    tg: TelegramHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two users write steadily and each message takes 0.4 s to hand over, so some update
    is always in flight. The state must still be saved (a busy listener that never saved
    replayed its whole history on every restart in the chaos run), and only as far as
    the updates handed over."""
    from inbound.ingestor import Ingestor

    handed_over = Ingestor.message

    async def slow_message(self: Ingestor, *args: object, **kwargs: object) -> object:
        await asyncio.sleep(0.4)
        return await handed_over(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Ingestor, "message", slow_message)

    async with tg.worker():
        listener = await tg.start_listener()
        before = await tg.saved_pts()
        for i in range(30):
            tg.world.send(ALICE if i % 2 == 0 else BOB, private(), f"m{i}")
            await asyncio.sleep(0.3)
        during = await tg.saved_pts()
        box = tg.world.state(BOT_ID).pts
        await tg.stop_listener(listener)
    assert before is not None and during is not None
    assert before < during < box  # saved while busy, never past what was in flight
    assert await tg.saved_pts() == box  # a clean stop saves everything
