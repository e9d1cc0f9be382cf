"""Albums Telethon has taken in but not yet delivered as one event.

Telethon dispatches an album's items as they come, but its ``events.Album`` fires 0.5 s
after the latest item, from a task of its own (``AlbumHack``) that the listener's
checkpoint cannot see. Until the album event has started a job, the album counts as in
flight here, so a checkpoint never saves an update state past an album not handed over.

Telethon keeps every delivered album's hack for good: an item that comes after its album
was delivered only extends that spent hack, and no event ever fires for it. Such an item
would stay pending forever, holding every checkpoint; once its album is overdue its
items go to ``overdue`` to be handed over one by one, not dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Telethon delivers an album 0.5 s after its latest item; this leaves room for a busy loop.
OVERDUE_AFTER_SECONDS = 3.0


@dataclass
class _Pending:
    handed_over: asyncio.Future[None]
    first_at: float
    items: list[Any] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class PendingAlbums:
    def __init__(self, overdue: Callable[[int, list[Any]], None]) -> None:
        """``overdue(grouped_id, items)`` gets the items of an album Telethon did not
        deliver in time: it must hand them over itself."""
        self._overdue = overdue
        self._albums: dict[int, _Pending] = {}

    def item(self, grouped_id: int, event: Any) -> None:
        """An album item was dispatched: its album is in flight until delivered."""
        loop = asyncio.get_running_loop()
        pending = self._albums.get(grouped_id)
        if pending is None:
            pending = self._albums[grouped_id] = _Pending(loop.create_future(), loop.time())
        pending.items.append(event)
        if pending.timer is not None:
            pending.timer.cancel()
        pending.timer = loop.call_later(OVERDUE_AFTER_SECONDS, self._expire, grouped_id)

    def delivered(self, grouped_id: int) -> None:
        """The album event came and its job was started."""
        self._settle(grouped_id)

    def waiters(self) -> set[asyncio.Future[None]]:
        """One future per album in flight now, done once it is handed over."""
        return {pending.handed_over for pending in self._albums.values()}

    def first_seen(self) -> list[float]:
        """When each album in flight got its first item (event-loop time)."""
        return [pending.first_at for pending in self._albums.values()]

    def __len__(self) -> int:
        return len(self._albums)

    def cancel(self) -> None:
        for grouped_id in list(self._albums):
            pending = self._albums.pop(grouped_id)
            if pending.timer is not None:
                pending.timer.cancel()
            pending.handed_over.cancel()

    def _expire(self, grouped_id: int) -> None:
        pending = self._albums.get(grouped_id)
        if pending is not None:
            self._overdue(grouped_id, pending.items)
        self._settle(grouped_id)

    def _settle(self, grouped_id: int) -> None:
        pending = self._albums.pop(grouped_id, None)
        if pending is None:
            return
        if pending.timer is not None:
            pending.timer.cancel()
        if not pending.handed_over.done():
            pending.handed_over.set_result(None)
