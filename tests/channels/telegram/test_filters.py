"""Which messages are answered, read from real Telethon events."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from telethon import events
from telethon.tl import types

from channels.telegram.events import facts_of
from channels.telegram.filters import AccessLists, Verdict, verdict
from testkit.telethon_feed import SELF_ID, WHEN, capture, chat, user

ALICE, BOT = 10, 11


async def facts(
    peer: object,
    *,
    sender: int = ALICE,
    out: bool = False,
    mentioned: bool = False,
    replies_to_us: bool = False,
    is_command: bool = False,
    chats: Sequence[object] = (),
    text: str = "hello",
    reply_to: int | None = None,
    entities: Sequence[types.TypeMessageEntity] = (),
):  # type: ignore[no-untyped-def]
    message = types.Message(
        id=5,
        peer_id=peer,
        date=WHEN,
        message=text,
        out=out,
        mentioned=mentioned,
        from_id=types.PeerUser(SELF_ID if out else sender),
        reply_to=types.MessageReplyHeader(reply_to_msg_id=reply_to) if reply_to else None,
        entities=list(entities) or None,
    )
    update = types.UpdateNewMessage(message=message, pts=1, pts_count=1)
    users = [user(ALICE), user(BOT, bot=True), user(SELF_ID)]
    (event,) = await capture(events.NewMessage(), update, users=users, chats=chats)
    return facts_of(
        event, replies_to_us=replies_to_us, is_command=is_command, us=(SELF_ID, "lullbot")
    )


OPEN = AccessLists()


async def test_private_chats_answer_people_not_bots_and_never_ourselves() -> None:
    assert verdict(await facts(types.PeerUser(ALICE)), OPEN) == Verdict.ANSWER
    assert verdict(await facts(types.PeerUser(BOT), sender=BOT), OPEN) == Verdict.RECORD_ONLY
    assert verdict(await facts(types.PeerUser(ALICE), out=True), OPEN) == Verdict.IGNORE


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ({}, Verdict.RECORD_ONLY),
        ({"mentioned": True}, Verdict.ANSWER),
        ({"replies_to_us": True}, Verdict.ANSWER),
        ({"is_command": True}, Verdict.ANSWER),
    ],
)
async def test_groups_answer_mentions_replies_and_commands(how: dict, expected: Verdict) -> None:  # type: ignore[type-arg]
    group = await facts(types.PeerChat(77), chats=[chat(77)], **how)
    assert group.is_private is False
    assert verdict(group, OPEN) == expected


async def test_a_reply_to_us_is_flagged_mentioned_yet_is_a_reply_unless_it_names_us() -> None:
    # Telegram sets `mentioned` on a reply to one of our messages: that alone must not make
    # it a mention, or anyone answering the bot's reply in another user's flow is admitted.
    group = [types.PeerChat(77)]
    reply = await facts(*group, chats=[chat(77)], mentioned=True, reply_to=3)
    assert (reply.mentions_us, reply.replies_to_us) == (False, True)
    named = await facts(*group, chats=[chat(77)], mentioned=True, reply_to=3, text="@LullBot hi")
    assert (named.mentions_us, named.replies_to_us) == (True, False)
    by_id = types.MessageEntityMentionName(offset=0, length=4, user_id=SELF_ID)
    no_username = await facts(
        *group, chats=[chat(77)], mentioned=True, reply_to=3, text="Lull hi", entities=[by_id]
    )
    assert no_username.mentions_us is True
    other = await facts(*group, chats=[chat(77)], text="@someoneelse hi")
    assert (other.mentions_us, other.replies_to_us) == (False, False)


async def test_allow_and_deny_lists() -> None:
    private = await facts(types.PeerUser(ALICE))
    assert verdict(private, AccessLists(deny_users=frozenset({ALICE}))) == Verdict.IGNORE
    assert verdict(private, AccessLists(allow_users=frozenset({99}))) == Verdict.IGNORE
    assert verdict(private, AccessLists(allow_users=frozenset({ALICE}))) == Verdict.ANSWER
    group = await facts(types.PeerChat(77), chats=[chat(77)], mentioned=True)
    assert verdict(group, AccessLists(allow_chats=frozenset({-77}))) == Verdict.ANSWER
    both = AccessLists(allow_chats=frozenset({-77}), deny_chats=frozenset({-77}))
    assert verdict(group, both) == Verdict.IGNORE  # deny wins
