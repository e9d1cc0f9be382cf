"""Telethon updates mapped to the ingest seam, through Telethon's real event layer."""

from __future__ import annotations

import pytest
from telethon import events
from telethon.tl import types

from channels.telegram.events import (
    Placeholders,
    to_chat_action,
    to_deletion,
    to_edit,
    to_incoming,
)
from testkit.telethon_feed import WHEN, capture, channel, chat, user

ALICE = 10
PLACEHOLDERS = Placeholders()
PHOTO = types.Photo(id=1, access_hash=1, file_reference=b"", date=WHEN, sizes=[], dc_id=1)


def private_message(text: str, *, msg_id: int = 5, media: object = None) -> types.UpdateNewMessage:
    message = types.Message(
        id=msg_id,
        peer_id=types.PeerUser(ALICE),
        date=WHEN,
        message=text,
        from_id=types.PeerUser(ALICE),
        media=media,
    )
    return types.UpdateNewMessage(message=message, pts=1, pts_count=1)


async def incoming(update: object, chats: list[object] | None = None):  # type: ignore[no-untyped-def]
    (event,) = await capture(events.NewMessage(), update, users=[user(ALICE)], chats=chats or [])
    return to_incoming(event, PLACEHOLDERS)


async def test_private_text_message() -> None:
    msg = await incoming(private_message("hi there"))
    assert msg is not None
    assert (msg.chat_id, msg.sender_id, msg.message_id, msg.text) == (ALICE, ALICE, 5, "hi there")
    assert (msg.topic_id, msg.kind, msg.sent_at) == (None, "text", WHEN)


async def test_captioned_photo_is_its_caption_and_bare_photo_a_placeholder() -> None:
    photo = types.MessageMediaPhoto(photo=PHOTO)
    captioned = await incoming(private_message("look at this", media=photo))
    bare = await incoming(private_message("", media=photo))
    assert captioned is not None and captioned.text == "look at this"
    assert bare is not None and (bare.text, bare.kind) == ("[photo]", "media")


def document(
    *attributes: object, mime: str = "application/octet-stream"
) -> types.MessageMediaDocument:
    doc = types.Document(
        id=1,
        access_hash=1,
        file_reference=b"",
        date=WHEN,
        mime_type=mime,
        size=10,
        dc_id=1,
        attributes=list(attributes),
    )
    return types.MessageMediaDocument(document=doc)


@pytest.mark.parametrize(
    ("media", "text"),
    [
        (
            document(types.DocumentAttributeAudio(duration=12, voice=True), mime="audio/ogg"),
            "[voice message 0:12]",
        ),
        (
            document(
                types.DocumentAttributeSticker(alt="😀", stickerset=types.InputStickerSetEmpty()),
                mime="image/webp",
            ),
            "[sticker 😀]",
        ),
        (
            document(types.DocumentAttributeFilename("plan.pdf"), mime="application/pdf"),
            "[file plan.pdf]",
        ),
        (document(types.DocumentAttributeVideo(duration=3, w=1, h=1), mime="video/mp4"), "[video]"),
    ],
)
async def test_media_without_caption_becomes_a_placeholder(media: object, text: str) -> None:
    msg = await incoming(private_message("", media=media))
    assert msg is not None and msg.text == text


async def test_placeholders_are_configurable() -> None:
    photo = types.MessageMediaPhoto(photo=PHOTO)
    (event,) = await capture(
        events.NewMessage(), private_message("", media=photo), users=[user(ALICE)]
    )
    custom = Placeholders({**PLACEHOLDERS.texts, "photo": "<image>"})
    msg = to_incoming(event, custom)
    assert msg is not None and msg.text == "<image>"


async def test_service_messages_are_ignored() -> None:
    service = types.MessageService(
        id=6,
        peer_id=types.PeerChat(77),
        date=WHEN,
        from_id=types.PeerUser(ALICE),
        action=types.MessageActionChatEditTitle(title="new"),
    )
    update = types.UpdateNewMessage(message=service, pts=1, pts_count=1)
    seen = await capture(events.NewMessage(), update, users=[user(ALICE)], chats=[chat(77)])
    # Telethon's NewMessage builder drops service messages itself (pinned 1.45.0)...
    assert seen == []
    # ...and should one reach us anyway (another builder, a newer Telethon), it is no text.
    direct = events.NewMessage.Event(service)
    assert to_incoming(direct, PLACEHOLDERS) is None


async def test_basic_group_supergroup_and_forum_topic() -> None:
    group = types.UpdateNewMessage(
        message=types.Message(
            id=7, peer_id=types.PeerChat(77), date=WHEN, message="g", from_id=types.PeerUser(ALICE)
        ),
        pts=1,
        pts_count=1,
    )
    msg = await incoming(group, chats=[chat(77)])
    assert msg is not None and (msg.chat_id, msg.topic_id) == (-77, None)

    supergroup = types.UpdateNewChannelMessage(
        message=types.Message(
            id=8,
            peer_id=types.PeerChannel(500),
            date=WHEN,
            message="s",
            from_id=types.PeerUser(ALICE),
        ),
        pts=1,
        pts_count=1,
    )
    msg = await incoming(supergroup, chats=[channel(500)])
    assert msg is not None and msg.chat_id == -1000000000500 and msg.topic_id is None

    in_topic = types.UpdateNewChannelMessage(
        message=types.Message(
            id=9,
            peer_id=types.PeerChannel(501),
            date=WHEN,
            message="t",
            from_id=types.PeerUser(ALICE),
            reply_to=types.MessageReplyHeader(reply_to_msg_id=42, forum_topic=True),
        ),
        pts=1,
        pts_count=1,
    )
    msg = await incoming(in_topic, chats=[channel(501, forum=True)])
    assert msg is not None and (msg.chat_id, msg.topic_id) == (-1000000000501, 42)


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (types.SendMessageTypingAction(), "typing"),
        (types.SendMessageRecordAudioAction(), "record_audio"),
        (types.SendMessageRecordRoundAction(), "record_video"),
        (types.SendMessageRecordVideoAction(), "record_video"),
        (types.SendMessageUploadPhotoAction(progress=10), "upload"),
        (types.SendMessageCancelAction(), "cancel"),
        (types.SendMessageGeoLocationAction(), None),
    ],
)
async def test_chat_actions_in_private_groups_and_supergroups(
    action: object, expected: str | None
) -> None:
    cases = [
        (types.UpdateUserTyping(user_id=ALICE, action=action), [], ALICE),
        (
            types.UpdateChatUserTyping(chat_id=77, from_id=types.PeerUser(ALICE), action=action),
            [chat(77)],
            -77,
        ),
        (
            types.UpdateChannelUserTyping(
                channel_id=500, from_id=types.PeerUser(ALICE), action=action
            ),
            [channel(500)],
            -1000000000500,
        ),
    ]
    for update, chats, chat_id in cases:
        (event,) = await capture(events.UserUpdate(), update, users=[user(ALICE)], chats=chats)
        mapped = to_chat_action(event)
        if expected is None:
            assert mapped is None
        else:
            assert mapped is not None
            assert (mapped.chat_id, mapped.sender_id, mapped.action) == (chat_id, ALICE, expected)


async def test_edits_and_deletes() -> None:
    edited = types.UpdateEditMessage(
        message=types.Message(
            id=5,
            peer_id=types.PeerUser(ALICE),
            date=WHEN,
            message="fixed",
            from_id=types.PeerUser(ALICE),
            edit_date=WHEN,
        ),
        pts=2,
        pts_count=1,
    )
    (event,) = await capture(events.MessageEdited(), edited, users=[user(ALICE)])
    edit = to_edit(event, PLACEHOLDERS)
    assert edit is not None and (edit.chat_id, edit.message_id, edit.text) == (ALICE, 5, "fixed")

    private_delete = types.UpdateDeleteMessages(messages=[5, 6], pts=3, pts_count=2)
    (event,) = await capture(events.MessageDeleted(), private_delete)
    assert to_deletion(event).message_ids == [5, 6]
    assert to_deletion(event).chat_id is None  # Telegram does not say which private chat

    channel_delete = types.UpdateDeleteChannelMessages(
        channel_id=500, messages=[8], pts=2, pts_count=1
    )
    (event,) = await capture(events.MessageDeleted(), channel_delete, chats=[channel(500)])
    deletion = to_deletion(event)
    assert (deletion.chat_id, deletion.message_ids) == (-1000000000500, [8])
