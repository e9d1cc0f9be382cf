"""One message signal in flight per conversation; what arrives meanwhile rides the next one.

A burst typed fast reaches the seam as several updates a few milliseconds apart, and a
busy seam takes tens of milliseconds per signal. Each signal costs the server a history
write and the conversation a workflow task, so messages that reach the seam while their
conversation's signal is on its way are sent together, as one ``messages_received``,
once it lands. A single message still goes as ``message_received``.

Nothing changes for a caller: ``deliver`` returns once the signal carrying its item was
accepted by Temporal, or raises that signal's error (every item in a failed batch gets
it; the caller retries, and the workflow drops message ids it has seen). Batches of one
conversation go in order, one at a time, so its messages keep their order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class SignalBatches(Generic[Item, Result]):
    """Per key (a conversation), sends what is pending as one batch, one batch at a time."""

    def __init__(self, send: Callable[[list[Item]], Awaitable[Result]]) -> None:
        self._send = send
        self._pending: dict[Hashable, list[tuple[Item, asyncio.Future[Result]]]] = {}
        # The task sending a key's batches, while it has any to send.
        self._senders: dict[Hashable, asyncio.Task[None]] = {}
        self.batches_sent = 0
        self.items_sent = 0

    async def deliver(self, key: Hashable, item: Item) -> Result:
        """Send ``item`` with whatever else is pending for ``key``; returns the batch's result."""
        done: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(key, []).append((item, done))
        if key not in self._senders:
            self._senders[key] = asyncio.create_task(self._send_pending(key))
        # A cancelled caller does not cancel the batch: other callers' items ride it too.
        return await asyncio.shield(done)

    @property
    def in_flight(self) -> int:
        """Conversations with a batch on its way or waiting."""
        return len(self._senders)

    async def _send_pending(self, key: Hashable) -> None:
        try:
            while batch := self._pending.pop(key, None):
                try:
                    result = await self._send([item for item, _ in batch])
                except Exception as exc:  # noqa: BLE001 - handed to every waiter of the batch
                    for _, done in batch:
                        done.set_exception(exc)
                    continue
                except asyncio.CancelledError:
                    for _, done in batch:
                        done.cancel()
                    raise
                self.batches_sent += 1
                self.items_sent += len(batch)
                for _, done in batch:
                    done.set_result(result)
        finally:
            # No await between the last pop finding nothing and this: no item is stranded.
            del self._senders[key]
            for _, done in self._pending.pop(key, []):
                # Only on cancellation (shutdown): their callers must not wait forever.
                done.cancel()
