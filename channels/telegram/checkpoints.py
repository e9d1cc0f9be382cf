"""Saving the listener's update state, never past an update it has not handed over.

Telethon keeps the account's update state (pts, qts, date, seq and each channel's pts) in
memory; a restart catches up from the state last saved. So the state is saved only once
every update it covers has been handed to the seam: a crash then replays, never skips.
Telethon is pinned (1.45.0): the message box, handler-task set and state saving used here
are private.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from telethon import TelegramClient
from telethon.tl import types as tl_types

from channels.telegram.albums import PendingAlbums
from channels.telegram.chat_jobs import ChatJobs
from channels.telegram.session import PostgresSession

log = logging.getLogger("lull.telegram")

CHECKPOINT_EVERY_SECONDS = 5.0
CHECKPOINT_MIN_INTERVAL_SECONDS = 1.0
# How long a checkpoint waits for the updates in flight when it took the state.
CHECKPOINT_BARRIER_SECONDS = 30.0


class UpdateCheckpoints:
    def __init__(
        self,
        client: TelegramClient,
        session: PostgresSession,
        jobs: ChatJobs,
        albums: PendingAlbums,
        *,
        account_key: str,
    ) -> None:
        self._client = client
        self._session = session
        self._jobs = jobs
        self._albums = albums
        self._account_key = account_key
        # The update state Telethon started from, until it is saved (see mark_start).
        self._start_state: tuple[dict[str, Any], dict[int, int]] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def mark_start(self) -> None:
        """Remember the update state Telethon starts from. Call right after ``connect()``
        (and after a bot's ``sign_in``) returns, with no await in between: Telethon loads
        the state (stored, or the server's for a new session) and only then creates its
        update loop task, which has not run yet, so no update is covered by this state."""
        box = self._client._message_box  # pinned telethon: see module
        if not box.is_empty():  # not logged in yet: sign_in loads it
            self._start_state = box.session_state()

    async def save_start(self) -> None:
        """Save the state marked at connect, before any job runs (they wait for
        ``identify``): from then on a restart catches up from no later than here."""
        if self._start_state is None:
            # Telethon reads pts 0 as no state at all, so none could be resumed from.
            log.warning(
                "account %s has no update state yet (pts 0): until the first checkpoint, "
                "a crash may skip the updates in between",
                self._account_key,
            )
            return
        await self._save_states(*self._start_state)
        self._start_state = None

    async def checkpoint(self) -> None:
        """Save the update state Telethon has reached, once every update it covers has
        been handed to the seam. Under a steady stream the listener is never idle, so the
        state is taken first and saved only after the dispatches and jobs in flight at
        that instant have finished (later ones may still run: they are after the state)."""
        states = self._client._message_box.session_state()  # pinned telethon: see module
        # No await since the line above: nothing can have been dispatched in between.
        dispatches = set(self._client._event_handler_tasks)
        if dispatches:
            await asyncio.wait(dispatches)
        # Album items the state covers were dispatched, and noted: wait for their album.
        albums = self._albums.waiters()
        if albums:
            await asyncio.wait(albums)
        # Every update the state covers now has its job, finished or among these.
        jobs = self._jobs.running()
        if jobs:
            await asyncio.wait(jobs)
        if any(job.cancelled() or job.exception() is not None for job in jobs):
            return  # a job was abandoned (shutdown): catch-up must replay it
        await self._save_states(*states)

    async def _save_states(self, common: dict[str, Any], channels: dict[int, int]) -> None:
        # Telethon's own save keeps its self-entity; its newer states are held back.
        await self._client._save_states_and_entities()  # pinned telethon: see module
        now = datetime.now(UTC)
        with self._session.allow_update_state():
            self._session.set_update_state(0, tl_types.updates.State(**common, unread_count=0))
            for channel_id, pts in channels.items():
                self._session.set_update_state(
                    channel_id, tl_types.updates.State(pts, 0, now, 0, unread_count=0)
                )
        await self._session.save()

    def dispatching(self) -> bool:
        return bool(self._client._event_handler_tasks)

    async def _loop(self) -> None:
        """Checkpoint soon after the listener goes idle (at most once a second), and every
        few seconds while it is busy."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._jobs.idle.wait(), CHECKPOINT_EVERY_SECONDS)
            self._jobs.idle.clear()
            try:
                # A job that keeps failing (Temporal down) holds the barrier: bounded here,
                # tried again next round.
                await asyncio.wait_for(self.checkpoint(), CHECKPOINT_BARRIER_SECONDS)
            except TimeoutError:
                log.debug("update state not saved: updates still in flight")
            except Exception:
                log.warning("could not save the update state; will retry", exc_info=True)
            await asyncio.sleep(CHECKPOINT_MIN_INTERVAL_SECONDS)
