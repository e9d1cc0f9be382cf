"""Hostile and malformed input never crashes the mappers or the replay parser: every
update maps to something the seam accepts or refuses with a clear reason, and every
script line parses or is refused with a ScriptError naming its line."""

from __future__ import annotations

import json
import unicodedata
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from telethon import events
from telethon.tl import types

from channels.replay import ScriptError, parse_script
from channels.telegram.events import (
    Placeholders,
    to_chat_action,
    to_deletion,
    to_edit,
    to_incoming,
)
from inbound.input_rules import (
    INT64_MAX,
    MAX_MESSAGE_CHARS,
    RejectedMessageError,
    check_ids,
    clean_text,
)
from testkit.telethon_feed import WHEN, channel, chat, offline_client, user

HOSTILE_TEXT = st.one_of(
    st.text(),
    st.sampled_from(
        [
            "",
            "   ",
            "\u200b\u200b",  # zero-width spaces only
            "\u202eolleh\u202c",  # right-to-left override
            "\u200fשלום\u200e hi",  # RTL and LTR marks around Hebrew
            "a\x00b",  # NUL: Postgres text cannot hold it
            "\ud800 lone surrogate",
            "x" * (MAX_MESSAGE_CHARS + 10),
        ]
    ),
)
ANY_ID = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70), st.sampled_from([0, -1, INT64_MAX])
)
PEERS = st.one_of(
    st.builds(types.PeerUser, ANY_ID),
    st.builds(types.PeerChat, ANY_ID),
    st.builds(types.PeerChannel, ANY_ID),
)
MEDIA = st.sampled_from(
    [
        None,
        types.MessageMediaUnsupported(),
        types.MessageMediaDocument(document=None),
        types.MessageMediaPhoto(photo=None),
        types.MessageMediaGeo(geo=types.GeoPointEmpty()),
    ]
)


@st.composite
def messages(draw: st.DrawFn) -> types.Message:
    return types.Message(
        id=draw(ANY_ID),
        peer_id=draw(PEERS),
        date=WHEN,
        message=draw(HOSTILE_TEXT),
        from_id=draw(st.one_of(st.none(), PEERS)),
        media=draw(MEDIA),
        out=draw(st.booleans()),
        mentioned=draw(st.booleans()),
        reply_to=draw(
            st.one_of(
                st.none(),
                st.builds(
                    types.MessageReplyHeader,
                    reply_to_msg_id=st.one_of(st.none(), ANY_ID),
                    forum_topic=st.booleans(),
                ),
            )
        ),
    )


UPDATES = st.one_of(
    st.builds(types.UpdateNewMessage, messages(), pts=st.just(1), pts_count=st.just(1)),
    st.builds(types.UpdateEditMessage, messages(), pts=st.just(1), pts_count=st.just(1)),
    st.builds(
        types.UpdateDeleteMessages,
        st.lists(ANY_ID, max_size=5),
        pts=st.just(1),
        pts_count=st.just(1),
    ),
    st.builds(types.UpdateUserTyping, ANY_ID, st.just(types.SendMessageTypingAction())),
    st.builds(
        types.UpdateChatUserTyping,
        ANY_ID,
        PEERS,
        st.sampled_from(
            [types.SendMessageCancelAction(), types.SendMessageRecordAudioAction(), None]
        ),
    ),
    # Update kinds Lull has no use for: they must pass through without effect.
    st.sampled_from(
        [
            types.UpdateConfig(),
            types.UpdatePtsChanged(),
            types.UpdateDcOptions(dc_options=[]),
            types.UpdateLoginToken(),
        ]
    ),
)

BUILDERS = (
    events.NewMessage(),
    events.MessageEdited(),
    events.MessageDeleted(),
    events.UserUpdate(),
)


async def dispatch(update: Any) -> list[Any]:
    """Telethon's own event layer, as the listener gets it (see testkit/telethon_feed)."""
    client = offline_client()
    seen: list[Any] = []

    async def handler(event: Any) -> None:
        seen.append(event)

    for builder in BUILDERS:
        client.add_event_handler(handler, builder)
    users = [user(10), user(11, bot=True)]
    await client._preprocess_updates([update], users, [chat(5), channel(6)])
    await client._dispatch_update(update)
    return seen


def map_event(event: Any) -> Any:
    """What the listener's jobs do with an event before the database: map, then check."""
    placeholders = Placeholders()
    if isinstance(event, events.MessageEdited.Event):
        edit = to_edit(event, placeholders)
        if edit is not None:
            check_ids("edit", chat_id=edit.chat_id, message_id=edit.message_id)
            return clean_text(edit.text, "edit")
        return None
    if isinstance(event, events.NewMessage.Event):
        incoming = to_incoming(event, placeholders)
        if incoming is None:
            return None
        check_ids(
            "message",
            chat_id=incoming.chat_id,
            sender_id=incoming.sender_id,
            message_id=incoming.message_id,
            topic_id=incoming.topic_id,
        )
        return clean_text(incoming.text, "message")
    if isinstance(event, events.MessageDeleted.Event):
        return to_deletion(event)
    return to_chat_action(event)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(UPDATES)
async def test_any_update_maps_to_accepted_input_or_a_clear_refusal(update: Any) -> None:
    for event in await dispatch(update):
        try:
            mapped = map_event(event)
        except RejectedMessageError as refused:
            assert str(refused).split(":")[0] in ("message", "edit")
            continue
        if isinstance(mapped, str):
            assert "\x00" not in mapped and len(mapped) <= MAX_MESSAGE_CHARS
            mapped.encode("utf-8")  # storable


@given(st.text(), st.integers(), st.integers(), st.one_of(st.none(), st.integers()))
def test_the_seam_accepts_exactly_what_postgres_can_store(
    text: str, chat_id: int, message_id: int, topic_id: int | None
) -> None:
    try:
        check_ids("m", chat_id=chat_id, sender_id=1, message_id=message_id, topic_id=topic_id)
    except RejectedMessageError:
        fits = all(-(2**63) <= v <= INT64_MAX for v in (chat_id, message_id, topic_id or 0))
        assert not fits or message_id < 1
    else:
        assert message_id >= 1 and -(2**63) <= chat_id <= INT64_MAX
    cleaned = clean_text(text, "m")
    assert "\x00" not in cleaned and cleaned == cleaned.strip()
    cleaned.encode("utf-8")
    if cleaned:
        assert any(not c.isspace() and unicodedata.category(c) != "Cf" for c in cleaned)


def test_a_ten_megabyte_caption_is_kept_cut_to_the_limit_with_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caption = "word " * (2 * 1024 * 1024)
    with caplog.at_level("WARNING", logger="lull.ingest"):
        kept = clean_text(caption, "message 7 in chat 10")
    assert len(kept) == MAX_MESSAGE_CHARS and kept.startswith("word word")
    assert "message 7 in chat 10: 10485759 characters, cut to 16384" in caplog.text


SCRIPT_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    HOSTILE_TEXT,
    st.lists(st.integers(), max_size=2),
)
SCRIPT_KEYS = st.sampled_from(["at", "chat", "user", "type", "id", "text", "topic", "line", "x"])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.dictionaries(SCRIPT_KEYS, SCRIPT_VALUES).map(json.dumps),
            st.text(),  # not JSON at all
        ),
        max_size=5,
    )
)
def test_any_script_parses_or_names_the_bad_line(lines: list[str]) -> None:
    try:
        parsed = parse_script(lines, source="fuzz.jsonl")
    except ScriptError as refused:
        assert str(refused).startswith("fuzz.jsonl")
        return
    for event in parsed:
        assert event.at >= 0 and event.at != float("inf")
        for value in (event.chat, event.user, event.id or 1, event.topic or 0):
            assert -(2**63) <= value <= INT64_MAX
