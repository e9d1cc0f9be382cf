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

An item may also be held a while (``hold``) for the items after it: its batch goes when the
earliest of its items' holds ends (see inbound/signal_linger.py for when the seam holds a
message). ``flush`` sends a conversation's held items at once, for a signal that must not
overtake them.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class SignalBatches(Generic[Item, Result]):
    """Per key (a conversation), sends what is pending as one batch, one batch at a time."""

    def __init__(self, send: Callable[[list[Item]], Awaitable[Result]]) -> None:
        self._send = send
        self._pending: dict[Hashable, list[tuple[Item, asyncio.Future[Result]]]] = {}
        # The batch on its way, per key: a flush waits for it too.
        self._flying: dict[Hashable, list[tuple[Item, asyncio.Future[Result]]]] = {}
        # When the pending batch goes (event-loop time), and what wakes its sender sooner.
        self._send_at: dict[Hashable, float] = {}
        self._wakes: dict[Hashable, asyncio.Event] = {}
        # The task sending a key's batches, while it has any to send.
        self._senders: dict[Hashable, asyncio.Task[None]] = {}
        self.batches_sent = 0
        self.items_sent = 0

    async def deliver(self, key: Hashable, item: Item, *, hold: float = 0.0) -> Result:
        """Send ``item`` with whatever else is pending for ``key``, at most ``hold`` seconds
        from now; returns the batch's result."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Result] = loop.create_future()
        self._pending.setdefault(key, []).append((item, done))
        self._send_by(key, loop.time() + max(0.0, hold))
        if key not in self._senders:
            self._senders[key] = asyncio.create_task(self._send_pending(key))
        # A cancelled caller does not cancel the batch: other callers' items ride it too.
        return await asyncio.shield(done)

    async def flush(self, key: Hashable) -> None:
        """Send ``key``'s held items now; returns once they and the batch on its way have
        landed or failed (their callers get the outcome)."""
        waiting = [done for _, done in self._flying.get(key, []) + self._pending.get(key, [])]
        if key in self._pending:
            self._send_by(key, -math.inf)
        if waiting:
            await asyncio.wait(waiting)

    def _send_by(self, key: Hashable, at: float) -> None:
        if at < self._send_at.get(key, math.inf):
            self._send_at[key] = at
            wake = self._wakes.get(key)
            if wake is not None:
                wake.set()

    async def _held(self, key: Hashable) -> None:
        """Until the pending batch's time comes; an earlier hold or a flush wakes it."""
        loop = asyncio.get_running_loop()
        while (delay := self._send_at[key] - loop.time()) > 0:
            wake = self._wakes[key] = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), delay)
        self._wakes.pop(key, None)

    @property
    def in_flight(self) -> int:
        """Conversations with a batch on its way or waiting."""
        return len(self._senders)

    async def _send_pending(self, key: Hashable) -> None:
        try:
            while key in self._pending:
                await self._held(key)
                batch = self._flying[key] = self._pending.pop(key)
                del self._send_at[key]
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
                finally:
                    del self._flying[key]
                self.batches_sent += 1
                self.items_sent += len(batch)
                for _, done in batch:
                    done.set_result(result)
        finally:
            # No await between the last check finding nothing and this: no item is stranded.
            del self._senders[key]
            self._send_at.pop(key, None)
            self._wakes.pop(key, None)
            for _, done in self._pending.pop(key, []):
                # Only on cancellation (shutdown): their callers must not wait forever.
                done.cancel()
