"""Real Telethon TL updates through Telethon's own event layer, with no network.

Telethon pinned at 1.45.0: ``_preprocess_updates`` and ``_dispatch_update`` are private,
so this helper is the one place that touches them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from telethon import TelegramClient
from telethon.sessions import StringSession
from telethon.tl import types

SELF_ID = 999
WHEN = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def offline_client() -> TelegramClient:
    client = TelegramClient(
        StringSession(),
        api_id=1,
        api_hash="x",
        receive_updates=False,
        flood_sleep_threshold=0,
        request_retries=0,
        raise_last_call_error=True,
    )
    client._mb_entity_cache.set_self_user(SELF_ID, False, 7)
    return client


def user(user_id: int, *, bot: bool = False) -> types.User:
    return types.User(id=user_id, access_hash=user_id * 7, first_name=f"u{user_id}", bot=bot)


def channel(channel_id: int, *, forum: bool = False) -> types.Channel:
    return types.Channel(
        id=channel_id,
        title=f"c{channel_id}",
        photo=types.ChatPhotoEmpty(),
        date=WHEN,
        access_hash=channel_id * 3,
        megagroup=True,
        forum=forum,
    )


def chat(chat_id: int) -> types.Chat:
    return types.Chat(
        id=chat_id,
        title=f"g{chat_id}",
        photo=types.ChatPhotoEmpty(),
        participants_count=3,
        date=WHEN,
        version=1,
    )


async def capture(
    event_builder: Any, update: Any, *, users: Sequence[Any] = (), chats: Sequence[Any] = ()
) -> list[Any]:
    """Feed one update; return the events ``event_builder`` fired for it."""
    client = offline_client()
    seen: list[Any] = []

    async def handler(event: Any) -> None:
        seen.append(event)

    client.add_event_handler(handler, event_builder)
    await client._preprocess_updates([update], list(users), list(chats))
    await client._dispatch_update(update)
    return seen
