"""Sending through the account's Telethon client, exactly once per chunk.

`client.send_message` draws a fresh random_id per call, so a retried activity could post
twice. We send the raw request with the random_id derived from the burst key and chunk:
Telegram de-duplicates a repeat toward the same peer. The client must be built with
``flood_sleep_threshold=0, request_retries=0, raise_last_call_error=True`` so that
Temporal, not Telethon, retries and the real error type reaches us.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from telethon import TelegramClient, errors, functions
from telethon.tl import types

from activities.errors import from_telegram_error
from channels.base import SendTarget

log = logging.getLogger("lull.telegram")

TELEGRAM_MAX_CHARS = 4096


class TelegramSender:
    max_chars = TELEGRAM_MAX_CHARS

    def __init__(
        self,
        client: TelegramClient,
        *,
        on_session_dead: Callable[[Exception], None] | None = None,
        on_sent: Callable[[int, int], None] | None = None,
    ) -> None:
        self._client = client
        # Told (chat id, message id) of each chunk as soon as Telegram accepted it.
        self._on_sent = on_sent
        # Told when Telegram says the session is unusable (revoked, deactivated, used
        # twice): the listener must stop loudly, since nothing it does can succeed.
        self._on_session_dead = on_session_dead

    async def send(self, target: SendTarget, text: str, *, random_id: int) -> int | None:
        try:
            peer = await self._client.get_input_entity(target.chat_id)
            try:
                result = await self._request(peer, text, random_id, target)
            except (errors.MessageIdInvalidError, errors.MsgIdInvalidError):
                if target.reply_to is None:
                    raise
                # The message replied to was deleted since the flush: the reply still goes
                # out, as a plain message (in its topic). The refused request posted nothing,
                # so the same random_id stays safe.
                log.info("message %s to reply to is gone; sending without reply", target.reply_to)
                plain = SendTarget(target.chat_id, target.topic_id, None)
                result = await self._request(peer, text, random_id, plain)
        except errors.RandomIdDuplicateError:
            # This chunk reached Telegram on an earlier attempt: it is sent.
            return None
        except (errors.RPCError, ConnectionError, TimeoutError, ValueError) as exc:
            dead = isinstance(exc, errors.UnauthorizedError | errors.AuthKeyDuplicatedError)
            if dead and self._on_session_dead is not None:
                self._on_session_dead(exc)
            raise from_telegram_error(exc) from exc
        message_id = sent_message_id(result, random_id)
        if message_id is not None and self._on_sent is not None:
            self._on_sent(target.chat_id, message_id)
        return message_id

    async def _request(self, peer: Any, text: str, random_id: int, target: SendTarget) -> Any:
        return await self._client(
            functions.messages.SendMessageRequest(
                peer=peer,
                message=text,
                random_id=random_id,
                no_webpage=True,
                reply_to=_reply_header(target),
            )
        )


def _reply_header(target: SendTarget) -> types.InputReplyToMessage | None:
    # Groups: the first chunk replies to the burst's last message; topics: stay in the topic.
    is_group = target.chat_id < 0
    if target.topic_id is None and not (is_group and target.reply_to):
        return None
    reply_to = target.reply_to if is_group and target.reply_to else target.topic_id
    assert reply_to is not None
    return types.InputReplyToMessage(reply_to_msg_id=reply_to, top_msg_id=target.topic_id)


def sent_message_id(result: Any, random_id: int) -> int | None:
    """The id Telegram gave the sent message, from whichever shape of reply it sent."""
    if isinstance(result, types.UpdateShortSentMessage):
        return int(result.id)
    for update in getattr(result, "updates", []) or []:
        if isinstance(update, types.UpdateMessageID) and update.random_id == random_id:
            return int(update.id)
    return None
