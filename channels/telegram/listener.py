"""The Telethon listener: one account's updates → the ingest seam, never losing one.

- Handlers stay tiny: each turns its event into a job and returns (channels/telegram/chat_jobs.py:
  our own tasks, in each chat's order, retried while Temporal or Postgres is down);
  meanwhile the listener reports unready.
- Telethon would save the update state (pts) every minute and on disconnect, whether or not
  our jobs finished. The session only takes a state at our checkpoints: a state read from
  Telethon's message box, saved once every dispatch and job in flight at that instant has
  finished (busy or idle), so a crash can only make catch-up replay updates, never skip
  one; message-id de-duplication in the seam absorbs the replays. Catch-up is also what
  signals a message recorded just before a crash but not yet signalled.
- The first state is saved before any update is handed over: the one Telethon started
  from (see ``mark_start``). Without a stored state Telethon asks the server for its state
  of now, so a listener killed before its first checkpoint would skip everything between.
- Albums count as in flight from their first item until their album event started a job
  (channels/telegram/albums.py): Telethon delivers it 0.5 s later, from a task of its own.
- Telethon is pinned (1.45.0): the message box and handler-task set are private.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telethon import TelegramClient, events

from channels.telegram.albums import PendingAlbums
from channels.telegram.chat_jobs import ChatJobs, HandOver, InLineJob
from channels.telegram.checkpoints import UpdateCheckpoints
from channels.telegram.events import (
    to_chat_action,
)
from channels.telegram.flows import FlowOwnership
from channels.telegram.own_messages import OwnMessages
from channels.telegram.session import PostgresSession
from channels.telegram.update_jobs import DEFAULT_OPTIONS, ListenerOptions, UpdateJobs
from inbound.ingestor import Ingestor

log = logging.getLogger("lull.telegram")

# An update still not handed over after this long makes the listener report unready.
STUCK_AFTER_SECONDS = 5.0


class TelegramListener(UpdateJobs):
    def __init__(
        self,
        client: TelegramClient,
        ingestor: Ingestor,
        session: PostgresSession,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        options: ListenerOptions = DEFAULT_OPTIONS,
    ) -> None:
        self._client = client
        self._ingestor = ingestor
        self._session = session
        self._sessionmaker = sessionmaker
        # Known once connected (see identify); jobs wait for it.
        self._self_id = 0
        self._username: str | None = None
        self._user_account = False
        self._identified = asyncio.Event()
        self._options = options
        self._account_id = ingestor.account.id
        self._flows = FlowOwnership(sessionmaker, self._account_id, ttl=options.flow_ttl)
        # One job per update, run in each chat's order once identified (see chat_jobs).
        self._jobs = ChatJobs(
            self._identified,
            retry_initial=options.retry_initial_seconds,
            retry_max=options.retry_max_seconds,
        )
        # Albums whose items Telethon dispatched, until their album event started a job.
        self._albums = PendingAlbums(self._hand_over_album_items)
        self._checkpoints = UpdateCheckpoints(
            client, session, self._jobs, self._albums, account_key=ingestor.account.key
        )
        # Each album in flight's place in its chat's line, kept from its first item.
        self._album_places: dict[int, Callable[[InLineJob], None]] = {}
        self._own = OwnMessages(sessionmaker, self._account_id)
        session.hold_update_state()

    # -- lifecycle -------------------------------------------------------------------------
    def mark_start(self) -> None:
        """See UpdateCheckpoints.mark_start: call right after ``connect()`` returns."""
        self._checkpoints.mark_start()

    async def save_start(self) -> None:
        await self._checkpoints.save_start()

    async def checkpoint(self) -> None:
        await self._checkpoints.checkpoint()

    def identify(self, self_id: int, *, user_account: bool, username: str | None = None) -> None:
        """Who the account is, from ``get_me()`` once connected."""
        self._self_id = self_id
        self._username = username
        self._user_account = user_account
        self._identified.set()

    def note_sent(self, chat_id: int, message_id: int) -> None:
        """The sender delivered a chunk as ``message_id`` (see OwnMessages.note_sent)."""
        self._own.note_sent(chat_id, message_id)

    def start(self) -> None:
        """Register the handlers. Call before connecting: catch-up updates are fetched
        and dispatched while the client connects, and must not find no handler."""
        add = self._client.add_event_handler
        add(self._on_message, events.NewMessage())
        add(self._on_album, events.Album())
        add(self._on_edit, events.MessageEdited())
        add(self._on_callback, events.CallbackQuery())
        add(self._on_delete, events.MessageDeleted())
        add(self._on_user_update, events.UserUpdate())
        self._checkpoints.start()

    @property
    def healthy_backlog(self) -> bool:
        """False while some accepted update cannot be handed to Temporal / Postgres: one
        has failed and is retrying, or one has been in flight for too long (the SDK
        retries an unreachable server itself for a while before it reports a failure)."""
        if self._jobs.failing:
            return False
        now = asyncio.get_running_loop().time()
        started = [*self._jobs.started_at(), *self._albums.first_seen()]
        return all(now - at < STUCK_AFTER_SECONDS for at in started)

    @property
    def ingestor(self) -> Ingestor:
        return self._ingestor

    @property
    def in_flight(self) -> int:
        return len(self._jobs)

    async def drain(self, *, within: float) -> int:
        """Wait for in-flight jobs (and Telethon's pending dispatches); returns how many
        were still running when ``within`` ran out. Then checkpoint the update state."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        # Telethon's dispatch tasks offer no event to wait on, so poll briefly.
        while (  # noqa: ASYNC110
            self._jobs or self._albums or self._checkpoints.dispatching()
        ) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        left = len(self._jobs) + len(self._albums)
        self._checkpoints.stop()
        if left == 0:
            await self.checkpoint()
        return left

    def close(self) -> None:
        """Stop background work; jobs still running are abandoned (catch-up replays)."""
        self._checkpoints.stop()
        self._jobs.cancel()
        self._albums.cancel()

    # -- handlers: tiny, they only start jobs -----------------------------------------------
    async def _on_message(self, event: events.NewMessage.Event) -> None:
        if event.message.grouped_id is not None:
            # An album item: _on_album takes the whole album as one message, once Telethon
            # delivers it; until then the album is in flight, and holds the chat's place
            # in line (a message sent after it must not be recorded before it).
            grouped_id = event.message.grouped_id
            if grouped_id not in self._album_places:
                self._album_places[grouped_id] = self._jobs.reserve_in_line(
                    event.chat_id, f"album {grouped_id} in {event.chat_id}"
                )
            self._albums.item(grouped_id, event)
            return
        label = f"message {event.id} in {event.chat_id}"
        self._jobs.submit_in_line(
            event.chat_id, label, lambda recorded: self._message(event, event.message, recorded)
        )

    async def _on_album(self, event: events.Album.Event) -> None:
        first = min(event.messages, key=lambda m: m.id)

        async def job(recorded: HandOver) -> None:
            await self._message(event, first, recorded)

        place = self._album_places.pop(event.grouped_id, None)
        if place is not None:
            place(job)
        else:  # its items came before this listener started (catch-up hands the album over)
            self._jobs.submit_in_line(event.chat_id, f"album {first.id} in {event.chat_id}", job)
        # Its job exists now: a checkpoint waits for that instead.
        self._albums.delivered(event.grouped_id)

    def _hand_over_album_items(self, grouped_id: int, items: list[Any]) -> None:
        """Items Telethon will never deliver as an album (see channels/telegram/albums.py)
        go to the seam folded into the one message their album event would have made."""
        log.warning(
            "album %s: no album event for %d item(s); handing them over as one message",
            grouped_id,
            len(items),
        )
        first = min(items, key=lambda item: item.message.id)
        messages = [item.message for item in items]

        async def folded(recorded: HandOver) -> None:
            # Idempotent if retried: the seam de-duplicates by the first item's id.
            await self._message(first, first.message, recorded, album=messages)

        place = self._album_places.pop(grouped_id, None)
        if place is not None:
            place(folded)
        else:
            self._jobs.submit_in_line(first.chat_id, f"album {grouped_id} items", folded)

    async def _on_callback(self, event: events.CallbackQuery.Event) -> None:
        # In line with the chat's messages: a press after a message joins its burst after it.
        label = f"button press {event.query.query_id} in {event.chat_id}"
        self._jobs.submit_in_line(
            event.chat_id, label, lambda recorded: self._callback(event, recorded)
        )

    async def _on_edit(self, event: events.MessageEdited.Event) -> None:
        label = f"edit of {event.id} in {event.chat_id}"
        self._jobs.submit(event.chat_id, label, lambda: self._edit(event))

    async def _on_delete(self, event: events.MessageDeleted.Event) -> None:
        # Without a chat (private chats, basic groups) the delete is resolved from our
        # records, so it waits for every job before it, in whichever chat.
        label = f"delete of {event.deleted_ids}"
        self._jobs.submit(event.chat_id, label, lambda: self._delete(event))

    async def _on_user_update(self, event: events.UserUpdate.Event) -> None:
        action = to_chat_action(event)
        if action is None:
            return
        # In line with the chat's messages: a chat action only updates the typing gate.
        self._jobs.submit_in_line(
            action.chat_id,
            f"{action.action} in {action.chat_id}",
            lambda _recorded: self._typing(action),
        )
