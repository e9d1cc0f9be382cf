"""The fake Telegram's records: accounts, basic groups, forums (supergroups with topics)
and the messages each user's box (or a forum's one box) holds, from which the world builds
TL objects."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from telethon.tl import types

MAX_MESSAGE_CHARS = 4096
STARTING_PTS = 1


class RpcRefusal(Exception):
    """An RPC error Telegram would answer with (code and TL error message)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


@dataclass
class Account:
    id: int
    first_name: str
    bot: bool = False
    username: str | None = None
    auth_key: bytes = field(default_factory=lambda: os.urandom(256))
    access_hash: int = field(default_factory=lambda: int.from_bytes(os.urandom(7), "big"))
    # Login: a key not yet authorized gets AUTH_KEY_UNREGISTERED until it signs in.
    authorized: bool = True
    login_code: str = "12345"
    bot_token: str | None = None
    next_message_id: int = 1
    # An account has a history before any test starts, as real ones do: Telethon reads
    # pts 0 as "no state at all" (its NO_SEQ), so a state at 0 could never be resumed.
    pts: int = STARTING_PTS
    # (pts after the change, the update) for getDifference.
    log: list[tuple[int, types.TypeUpdate]] = field(default_factory=list)

    def as_user(self, *, viewer: int) -> types.User:
        return types.User(
            id=self.id,
            is_self=self.id == viewer,
            bot=self.bot,
            bot_info_version=1 if self.bot else None,
            access_hash=self.access_hash,
            first_name=self.first_name,
            username=self.username,
        )


@dataclass
class Group:
    id: int
    title: str
    members: list[int]

    def as_chat(self) -> types.Chat:
        return types.Chat(
            id=self.id,
            title=self.title,
            photo=types.ChatPhotoEmpty(),
            participants_count=len(self.members),
            date=now(),
            version=1,
        )


@dataclass
class Forum:
    """A supergroup with topics. Telegram calls it a channel: unlike a basic group, it has
    one message box for all members, numbered per channel, with its own ``pts``; its
    updates are not in a member's getDifference, only an ``updateChannelTooLong`` there,
    after which the client asks ``updates.getChannelDifference``."""

    id: int
    title: str
    members: list[int]
    # The topics' ids: a topic is named by the id of the service message that created it.
    topics: list[int] = field(default_factory=list)
    access_hash: int = field(default_factory=lambda: int.from_bytes(os.urandom(7), "big"))
    next_message_id: int = 1
    pts: int = STARTING_PTS
    # (pts after the change, the update as a given member sees it) for
    # getChannelDifference.
    log: list[tuple[int, Callable[[int], types.TypeUpdate]]] = field(default_factory=list)
    messages: list[Visible] = field(default_factory=list)

    def as_channel(self) -> types.Channel:
        return types.Channel(
            id=self.id,
            title=self.title,
            photo=types.ChatPhotoEmpty(),
            date=now(),
            megagroup=True,
            forum=True,
            access_hash=self.access_hash,
            participants_count=len(self.members),
        )


@dataclass(frozen=True)
class Visible:
    """A message as one participant sees it."""

    box_owner: int
    id: int
    sender_id: int
    peer: types.TypePeer
    text: str
    reply_to: int | None
    # A photo (no other media is modelled) and the album it belongs to.
    photo: bool = False
    grouped_id: int | None = None
    # The forum topic it was posted in (forums only).
    topic: int | None = None


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def peer_key(peer: types.TypePeer) -> tuple[str, int]:
    if isinstance(peer, types.PeerUser):
        return ("user", peer.user_id)
    if isinstance(peer, types.PeerChat):
        return ("chat", peer.chat_id)
    if isinstance(peer, types.PeerChannel):
        return ("channel", peer.channel_id)
    raise RpcRefusal(400, "PEER_ID_INVALID")


def _photo(seed: int) -> types.MessageMediaPhoto:
    return types.MessageMediaPhoto(
        photo=types.Photo(
            id=seed,
            access_hash=seed,
            file_reference=b"",
            date=now(),
            sizes=[types.PhotoSize(type="x", w=800, h=600, size=1000)],
            dc_id=2,
        )
    )
