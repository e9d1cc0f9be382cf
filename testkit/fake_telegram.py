"""A fake Telegram at Telethon's network boundary (the client's ``_call``), for the send path.

Models Telegram's documented behaviour for messages.sendMessage:
- a random_id repeated toward the same peer is de-duplicated: the earlier message is
  returned, or RANDOM_ID_DUPLICATE while the first call is still in flight;
- FLOOD_WAIT_X on demand;
- more than 4096 characters is MESSAGE_TOO_LONG, an empty text MESSAGE_EMPTY;
- per-peer message ids;
- a reply to a message that is gone (deleted) is MESSAGE_ID_INVALID, as the MTProto fake
  (testkit/telegram_server) answers it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from telethon import TelegramClient, errors, functions
from telethon.tl import types

from testkit.telethon_feed import WHEN, offline_client


@dataclass
class FakeTelegram:
    visible: dict[int, list[tuple[int, str]]] = field(default_factory=dict)  # peer → messages
    by_random_id: dict[tuple[int, int], int] = field(default_factory=dict)
    in_flight: set[tuple[int, int]] = field(default_factory=set)
    flood_waits: list[int] = field(default_factory=list)  # seconds for the next calls
    refuse_with: list[Exception] = field(default_factory=list)
    delay: float = 0.0
    calls: int = 0
    gone: set[int] = field(default_factory=set)  # message ids deleted since they came
    replied_to: list[int | None] = field(default_factory=list)  # per message shown

    def client(self) -> TelegramClient:
        client = offline_client()
        client._call = self._call  # type: ignore[method-assign]
        return client

    async def _call(
        self, sender: Any, request: Any, ordered: bool = False, flood_sleep_threshold: Any = None
    ) -> Any:
        self.calls += 1
        if not isinstance(request, functions.messages.SendMessageRequest):
            raise NotImplementedError(type(request).__name__)
        if self.refuse_with:
            raise self.refuse_with.pop(0)
        if self.flood_waits:
            raise errors.FloodWaitError(request=request, capture=self.flood_waits.pop(0))
        if not request.message.strip():
            raise errors.MessageEmptyError(request=request)
        if len(request.message) > 4096:
            raise errors.MessageTooLongError(request=request)
        reply_to = getattr(request.reply_to, "reply_to_msg_id", None)
        if reply_to in self.gone:
            raise errors.MessageIdInvalidError(request=request)
        peer = _peer_id(request.peer)
        key = (peer, request.random_id)
        if key in self.in_flight:
            raise errors.RandomIdDuplicateError(request=request)
        if key not in self.by_random_id:
            self.in_flight.add(key)
            try:
                await asyncio.sleep(self.delay)
            finally:
                self.in_flight.discard(key)
            messages = self.visible.setdefault(peer, [])
            message_id = len(messages) + 1
            messages.append((message_id, request.message))
            self.replied_to.append(reply_to)
            self.by_random_id[key] = message_id
        return types.Updates(
            updates=[types.UpdateMessageID(id=self.by_random_id[key], random_id=request.random_id)],
            users=[],
            chats=[],
            date=WHEN,
            seq=0,
        )


def _peer_id(peer: Any) -> int:
    for attr in ("user_id", "chat_id", "channel_id"):
        if hasattr(peer, attr):
            return int(getattr(peer, attr))
    raise ValueError(f"unexpected peer {peer!r}")
