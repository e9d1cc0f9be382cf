"""When held chat actions are signalled: the typing gate decides (inbound/typing_gate.py),
this drives it with timers, so a held action goes out shortly before the deadline it could
extend, unless the author's next message made it moot first."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from inbound.typing_gate import ChatKey, Hold, Send, TypingGate

log = logging.getLogger("lull.ingest")

# (chat, sender id) → a signal of their action with its age; returns whether it was sent.
Signal = Callable[[ChatKey, int, str, float], Awaitable[bool]]


class TypingSignals:
    def __init__(
        self,
        gate: TypingGate,
        signal: Signal,
        *,
        clock: Callable[[], float] = time.monotonic,
        schedule: Callable[[float, Callable[[], None]], Any] | None = None,
    ) -> None:
        self._gate = gate
        self._signal = signal
        self._clock = clock
        # Calls back when a held action is due; tests pass their own and call release_due.
        self._schedule = schedule or self._call_later
        # (chat, sender) → (when its held action is due, the timer for then).
        self._timers: dict[tuple[ChatKey, int], tuple[float, Any]] = {}
        self._tasks: set[asyncio.Task[bool]] = set()

    async def action(self, chat: ChatKey, sender_id: int, action: str) -> bool:
        """A chat action seen now; returns whether it was signalled at once."""
        return await self._apply(
            chat, sender_id, self._gate.action(chat, sender_id, action, self._clock())
        )

    def message(self, chat: ChatKey, sender_id: int) -> None:
        """The sender's message came: what they held is moot (see TypingGate.message)."""
        self._gate.message(chat, sender_id, self._clock())
        self._cancel((chat, sender_id))

    def touched(self, chat: ChatKey) -> None:
        """An edit or delete restarted the chat's quiet period."""
        self._gate.touched(chat, self._clock())

    async def release_due(self) -> int:
        """Signal the held actions whose time came; returns how many were signalled."""
        now, signalled = self._clock(), 0
        due = [key for key, (fire_at, _) in self._timers.items() if fire_at <= now]
        for key in due:
            signalled += await self._release(key)
        return signalled

    async def _release(self, key: tuple[ChatKey, int]) -> bool:
        chat, sender_id = key
        return await self._apply(chat, sender_id, self._gate.due(*key, self._clock()))

    async def _apply(self, chat: ChatKey, sender_id: int, decision: Hold | Send | None) -> bool:
        key = (chat, sender_id)
        timed = self._timers.get(key)
        if isinstance(decision, Hold) and timed is not None and timed[0] == decision.fire_at:
            return False  # already timed for then
        self._cancel(key)
        if decision is None:
            return False
        if isinstance(decision, Hold):
            delay = max(0.0, decision.fire_at - self._clock())
            handle = self._schedule(delay, lambda: self._on_timer(key))
            self._timers[key] = (decision.fire_at, handle)
            return False
        return await self._signal(chat, sender_id, decision.action, decision.age)

    def _cancel(self, key: tuple[ChatKey, int]) -> None:
        _, handle = self._timers.pop(key, (None, None))
        if handle is not None:
            handle.cancel()

    def _call_later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(delay, callback)

    def _on_timer(self, key: tuple[ChatKey, int]) -> None:
        # This timer fired: forget it, so a hold on to (nearly) the same moment re-arms.
        self._timers.pop(key, None)
        task = asyncio.create_task(self._release_logged(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _release_logged(self, key: tuple[ChatKey, int]) -> bool:
        try:
            return await self._release(key)
        except Exception as exc:  # noqa: BLE001 - a lost lease only makes a reply come sooner
            log.warning("held chat action not signalled: %s: %s", type(exc).__name__, exc)
            return False
