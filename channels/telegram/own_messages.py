"""Which messages in a chat are the account's own replies.

A bot's outgoing messages are all replies; a user account's are replies or its human
owner's typing. A reply chunk is ours when this process just sent it (its delivery row
may not be stored yet), when a delivery row names it, or when its text is a chunk of one
of our recent replies whose message id we never learned (a retried send answered
RANDOM_ID_DUPLICATE, or one still on its way): then its id is recorded on the delivery.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.chunking import split_message
from channels.telegram.sender import TELEGRAM_MAX_CHARS
from db.queries import deliveries as db_deliveries
from workflows.ids import delivery_random_id

# An outgoing message of a user account matching a reply chunk from this far back is ours.
OUR_CHUNKS_WITHIN = timedelta(days=1)
# Message ids this process just sent, remembered until their delivery row is surely stored.
SENT_HERE_REMEMBERED = 4096


class OwnMessages:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], account_id: int) -> None:
        self._sessionmaker = sessionmaker
        self._account_id = account_id
        # (chat, message id) of chunks this process sent: a reply to one may arrive before
        # the send activity stored its delivery row, and must still count as a reply to us.
        self._sent_here: OrderedDict[tuple[int, int], None] = OrderedDict()

    def note_sent(self, chat_id: int, message_id: int) -> None:
        """The sender delivered a chunk as ``message_id`` (called before its delivery row
        is stored, so a quick reply to it is still known to be a reply to us)."""
        self._sent_here[(chat_id, message_id)] = None
        while len(self._sent_here) > SENT_HERE_REMEMBERED:
            self._sent_here.popitem(last=False)

    async def is_sent_by_us(self, chat_id: int, message_id: int) -> bool:
        """Whether ``message_id`` is a reply chunk we sent (a message replied to)."""
        if (chat_id, message_id) in self._sent_here:
            return True
        async with self._sessionmaker() as session:
            return await db_deliveries.sent_by_us(
                session,
                account_id=self._account_id,
                chat_id=chat_id,
                channel_message_id=message_id,
            )

    async def is_ours(self, chat_id: int, message_id: int, text: str) -> bool:
        """Whether an outgoing message of the account is one of our reply chunks."""
        if await self.is_sent_by_us(chat_id, message_id):
            return True
        async with self._sessionmaker() as session, session.begin():
            return await self._is_our_chunk(session, chat_id, message_id, text)

    async def _is_our_chunk(
        self, session: AsyncSession, chat_id: int, message_id: int, text: str
    ) -> bool:
        since = datetime.now(UTC) - OUR_CHUNKS_WITHIN
        replies = await db_deliveries.recent_replies(
            session, account_id=self._account_id, chat_id=chat_id, since=since
        )
        for reply_id, key, reply_text in replies:
            chunks = [c.strip() for c in split_message(reply_text, TELEGRAM_MAX_CHARS)]
            if text.strip() in chunks:
                index = chunks.index(text.strip())
                await db_deliveries.record_seen_delivery(
                    session,
                    reply_id=reply_id,
                    chunk_index=index,
                    random_id=delivery_random_id(key, index),
                    channel_message_id=message_id,
                )
                return True
        return False
