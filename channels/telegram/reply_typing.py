""" "typing…" while a reply is generated, shown by the listener process.

A burst is being answered from the moment it is persisted until its reply is stored
(status ``replied``, after which the send starts) or it fails. The listener polls Postgres
for its account's bursts in that state and keeps Telegram's typing status up in those
chats: renewed every 4 s (a client shows it for about 6 s), cancelled as soon as the
burst leaves that state. Doing it here, not in the workflow, adds no history events and
keeps Telegram calls in the one process that owns the connection. Best effort: a failed
typing call is logged at debug level and never retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telethon import TelegramClient, functions
from telethon.tl import types

from db.tables import burst, conversation

log = logging.getLogger("lull.telegram.typing")

POLL_SECONDS = 1.0
RENEW_SECONDS = 4.0
# A burst stuck longer than this (a dead worker, a long outage) stops showing typing.
MAX_TYPING = timedelta(minutes=2)

Chat = tuple[int, int | None]  # (chat, topic)
SetTyping = Callable[[Chat, bool], Awaitable[None]]


async def generating_chats(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> set[Chat]:
    stmt = (
        select(conversation.c.chat_id, conversation.c.topic_id)
        .join(burst, burst.c.conversation_id == conversation.c.id)
        .where(
            conversation.c.account_id == account_id,
            burst.c.status == "persisted",
            burst.c.flushed_at > func.now() - MAX_TYPING,
        )
        .distinct()
    )
    async with sessionmaker() as session:
        return {(row.chat_id, row.topic_id) for row in await session.execute(stmt)}


def telethon_typing(client: TelegramClient) -> SetTyping:
    async def set_typing(chat: Chat, on: bool) -> None:
        chat_id, topic_id = chat
        action = types.SendMessageTypingAction() if on else types.SendMessageCancelAction()
        peer = await client.get_input_entity(chat_id)
        await client(functions.messages.SetTypingRequest(peer, action, top_msg_id=topic_id))

    return set_typing


class TypingIndicator:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        account_id: int,
        set_typing: SetTyping,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._account_id = account_id
        self._set_typing = set_typing
        self._clock = clock or asyncio.get_running_loop().time
        self._shown: dict[Chat, float] = {}  # chat → when typing was last sent

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.warning("typing indicator poll failed", exc_info=True)
            await asyncio.sleep(POLL_SECONDS)

    async def tick(self) -> None:
        wanted = await generating_chats(self._sessionmaker, self._account_id)
        now = self._clock()
        for chat in list(self._shown):
            if chat not in wanted:
                del self._shown[chat]
                await self._call(chat, on=False)
        for chat in wanted:
            last = self._shown.get(chat)
            if last is None or now - last >= RENEW_SECONDS:
                self._shown[chat] = now
                await self._call(chat, on=True)

    async def _call(self, chat: Chat, *, on: bool) -> None:
        try:
            await self._set_typing(chat, on)
        except Exception as exc:  # best effort: never let typing break anything
            log.debug("typing %s in %s failed: %s", "on" if on else "off", chat, exc)
