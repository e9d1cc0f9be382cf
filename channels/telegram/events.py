"""Telethon events → the ingest seam's inputs. Pure mapping: no IO, no client calls.

Kept apart from the listener so every update kind can be tested through Telethon's own
event layer without a network (see testkit/telethon_feed.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from telethon import events
from telethon.tl import types

from channels.telegram.filters import MessageFacts
from inbound.incoming import IncomingMessage

DEFAULT_PLACEHOLDERS = {
    "photo": "[photo]",
    "voice": "[voice message {duration}]",
    "video_note": "[video message {duration}]",
    "video": "[video]",
    "gif": "[GIF]",
    "audio": "[audio]",
    "sticker": "[sticker {emoji}]",
    "document": "[file {name}]",
    "other": "[media]",
    "album": "[album of {count}]",
}
# The values a placeholder template may use.
PLACEHOLDER_FIELDS = ("duration", "emoji", "name", "count")


@dataclass(frozen=True)
class Placeholders:
    """What stands for media sent without a caption (configurable per account)."""

    texts: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PLACEHOLDERS))

    def render(self, kind: str, **values: str) -> str:
        template = self.texts.get(kind, self.texts["other"])
        try:
            return template.format(**values).replace("  ", " ").strip()
        except (KeyError, IndexError, ValueError, AttributeError):
            # A bad template (settings refuse one) still stands for the media: never drop it.
            return template


@dataclass(frozen=True)
class ChatAction:
    chat_id: int
    sender_id: int
    action: str
    topic_id: int | None = None


@dataclass(frozen=True)
class Edit:
    chat_id: int
    message_id: int
    text: str
    topic_id: int | None


@dataclass(frozen=True)
class Deletion:
    # None for private chats and basic groups: Telegram does not say which chat.
    chat_id: int | None
    message_ids: list[int]


def topic_of(message: types.Message) -> int | None:
    """The forum topic a message belongs to, or None outside forum topics."""
    reply = message.reply_to
    if not isinstance(reply, types.MessageReplyHeader) or not reply.forum_topic:
        return None
    return reply.reply_to_top_id or reply.reply_to_msg_id


def _duration(document: Any) -> str:
    for attr in getattr(document, "attributes", []) or []:
        seconds = getattr(attr, "duration", None)
        if seconds is not None:
            seconds = int(seconds)
            return f"{seconds // 60}:{seconds % 60:02d}"
    return ""


def message_text(message: Any, placeholders: Placeholders) -> str:
    """The text Lull buffers: the text or caption, else a placeholder for the media."""
    text = (message.message or "").strip()
    if text or message.media is None:
        return text
    if message.photo:
        return placeholders.render("photo")
    if message.voice:
        return placeholders.render("voice", duration=_duration(message.document))
    if message.video_note:
        return placeholders.render("video_note", duration=_duration(message.document))
    if message.sticker:
        emoji = next((a.alt for a in message.document.attributes if hasattr(a, "stickerset")), "")
        return placeholders.render("sticker", emoji=emoji)
    if message.gif:
        return placeholders.render("gif")
    if message.video:
        return placeholders.render("video")
    if message.audio:
        return placeholders.render("audio")
    if message.document:
        name = message.file.name if message.file and message.file.name else ""
        return placeholders.render("document", name=name)
    return placeholders.render("other")


def to_incoming(
    event: events.NewMessage.Event, placeholders: Placeholders
) -> IncomingMessage | None:
    """The message to ingest, or None for what Lull never buffers (service messages)."""
    message = event.message
    if isinstance(message, types.MessageService) or message.action is not None:
        return None
    text = message_text(message, placeholders)
    if not text:
        return None
    return IncomingMessage(
        chat_id=event.chat_id,
        sender_id=event.sender_id,
        message_id=message.id,
        text=text,
        sent_at=message.date,
        topic_id=topic_of(message),
        kind="text" if message.media is None else "media",
    )


def album_to_incoming(
    event: events.Album.Event, placeholders: Placeholders
) -> IncomingMessage | None:
    """An album (messages sharing a ``grouped_id``) is one message: its caption, else a
    placeholder; it takes the first item's id, so a re-delivered album is still one."""
    return album_items_to_incoming(event.messages, event.chat_id, event.sender_id, placeholders)


def album_items_to_incoming(
    messages: list[Any], chat_id: int, sender_id: int, placeholders: Placeholders
) -> IncomingMessage | None:
    """The one message an album's items make, whether Telethon delivered them as an album
    event or the listener folded them itself (an album event that never came)."""
    items = sorted(messages, key=lambda m: m.id)
    if not items:
        return None
    first = items[0]
    caption = next((m.message.strip() for m in items if (m.message or "").strip()), "")
    if caption:
        text = caption
    elif len(items) == 1:  # a late item of an album already answered
        text = message_text(first, placeholders)
    else:
        text = placeholders.render("album", count=_album_count(items))
    return IncomingMessage(
        chat_id=chat_id,
        sender_id=sender_id,
        message_id=first.id,
        text=text,
        sent_at=first.date,
        topic_id=topic_of(first),
        kind="media",
    )


def _album_count(items: list[Any]) -> str:
    photos = sum(1 for m in items if m.photo)
    if photos == len(items):
        return f"{photos} photos"
    return f"{len(items)} files"


def facts_of(
    event: Any,
    *,
    replies_to_us: bool,
    is_command: bool,
    us: tuple[int, str | None] = (0, None),
    message: Any = None,
) -> MessageFacts:
    """The facts the answer filter needs, read from a Telethon event (a new message, or an
    album with ``message`` its first item). Whether the message replies to one of ours
    takes a lookup (our deliveries), so the caller passes it in; ``us`` is the account's
    (id, username).

    Telegram's ``mentioned`` flag is also set on a reply to one of our messages. Such a
    reply is not a mention: someone answering the bot's reply to another user's question
    is in that user's flow, not calling the bot. So a flagged reply counts as a mention
    only when its text names us, and otherwise as a reply to us (Telegram says so even
    when our delivery row is not stored yet)."""
    message = message if message is not None else event.message
    sender = message.sender
    mentioned = bool(message.mentioned)
    is_reply = getattr(message.reply_to, "reply_to_msg_id", None) is not None
    named = names_us(message, *us)
    return MessageFacts(
        chat_id=event.chat_id,
        sender_id=event.sender_id,
        is_private=event.is_private,
        outgoing=bool(message.out),
        sender_is_bot=bool(getattr(sender, "bot", False)),
        mentions_us=named or (mentioned and not is_reply),
        replies_to_us=replies_to_us or (mentioned and is_reply and not named),
        is_command=is_command,
    )


def names_us(message: Any, self_id: int, username: str | None) -> bool:
    """Whether the text names the account: its @username, or a mention entity of its id
    (how a user without a username is mentioned)."""
    for entity in message.entities or []:
        if isinstance(entity, types.MessageEntityMentionName) and entity.user_id == self_id:
            return True
        if isinstance(entity, types.InputMessageEntityMentionName):
            user = entity.user_id
            if getattr(user, "user_id", None) == self_id:
                return True
    if not username:
        return False
    handle = f"@{username.lower()}"
    return any(word.strip(".,!?:;") == handle for word in (message.message or "").lower().split())


def to_chat_action(event: events.UserUpdate.Event) -> ChatAction | None:
    """A typing / recording / uploading / cancel action, or None for other user updates."""
    if getattr(event, "action", None) is None or event.chat_id is None:
        return None
    if event.cancel:
        action = "cancel"
    elif event.recording and (event.video or event.round):
        action = "record_video"
    elif event.recording and event.audio:
        action = "record_audio"
    elif event.uploading:
        action = "upload"
    elif event.typing:
        action = "typing"
    else:
        return None
    # Forum topics: a supergroup's typing names its topic (top_msg_id).
    topic = getattr(event.original_update, "top_msg_id", None)
    return ChatAction(event.chat_id, event.user_id, action, topic)


def to_edit(event: events.MessageEdited.Event, placeholders: Placeholders) -> Edit | None:
    text = message_text(event.message, placeholders)
    if not text:
        return None
    return Edit(event.chat_id, event.message.id, text, topic_of(event.message))


def to_deletion(event: events.MessageDeleted.Event) -> Deletion:
    return Deletion(event.chat_id, list(event.deleted_ids))
