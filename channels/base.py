"""The outgoing half of the channel seam: a reply becomes sends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SendTarget:
    chat_id: int
    topic_id: int | None
    # The message the first chunk replies to (groups), or None.
    reply_to: int | None


# A button press (a Telegram callback query) is recorded as a message of its chat with an
# id from here up, derived from the query's id: never a real message id (those stay far
# below 2**31), so it is never replied to and never hit by an edit or a delete.
CALLBACK_MESSAGE_ID_BASE = 2**62


def callback_message_id(query_id: int) -> int:
    return CALLBACK_MESSAGE_ID_BASE + query_id % 2**61


def reply_target(message_ids: list[int]) -> int | None:
    """The message a reply's first chunk answers: the burst's last real message."""
    return max((i for i in message_ids if i < CALLBACK_MESSAGE_ID_BASE), default=None)


class ChannelSender(Protocol):
    """Delivers one chunk. ``random_id`` is stable across retries so the channel de-duplicates."""

    max_chars: int

    async def send(self, target: SendTarget, text: str, *, random_id: int) -> int | None:
        """Send and return the channel's id for the sent message (None if it has none)."""
        ...


class DedupingSender:
    """Base for in-process channels: a repeated ``random_id`` returns the first send's id,
    as Telegram does, so a retried activity never shows a reply twice."""

    max_chars = 4096

    def __init__(self) -> None:
        self._sent: dict[int, int] = {}

    async def send(self, target: SendTarget, text: str, *, random_id: int) -> int | None:
        if random_id in self._sent:
            return self._sent[random_id]
        message_id = len(self._sent) + 1
        self._sent[random_id] = message_id
        await self.deliver(target, text, message_id)
        return message_id

    async def deliver(self, target: SendTarget, text: str, message_id: int) -> None:
        raise NotImplementedError
