"""What the listener does with each update, as a job in its chat's line: decide whether a
message is answered (private, mention, reply, flow owner, access lists), hand it to the
seam, hand a chat over when a user account's owner writes or types, and apply edits and
deletes. TelegramListener (channels/telegram/listener.py) inherits these jobs."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telethon import events

from channels.base import callback_message_id
from channels.telegram.chat_jobs import HandOver
from channels.telegram.events import (
    ChatAction,
    Placeholders,
    album_items_to_incoming,
    album_to_incoming,
    facts_of,
    to_deletion,
    to_edit,
    to_incoming,
)
from channels.telegram.filters import AccessLists, Verdict, verdict
from channels.telegram.flows import FlowOwnership
from channels.telegram.own_messages import OwnMessages
from db.queries import deliveries as db_deliveries
from inbound.incoming import IncomingMessage
from inbound.ingestor import Ingestor
from inbound.input_rules import valid_message_ids
from workflows.commands import parse_command

log = logging.getLogger("lull.telegram")


@dataclass(frozen=True)
class CallbackButton:
    """What pressing an inline button whose data is configured does (app/bot_settings):
    ``text`` joins the chat's burst as that text; ``answer`` is shown to the user at once
    (a toast, or an ``alert``). Either way the press is recorded and answered once."""

    answer: str | None = None
    alert: bool = False
    text: str | None = None


@dataclass(frozen=True)
class ListenerOptions:
    access: AccessLists = AccessLists()
    placeholders: Placeholders = Placeholders()
    # A user account's owner writing (or starting to type) in a chat pauses the bot there.
    handoff: bool = True
    # How long a handoff lasts; None: until `lull resume`.
    handoff_minutes: float | None = 60.0
    flow_ttl: timedelta = timedelta(hours=72)
    # Inline buttons by their callback data.
    buttons: Mapping[str, CallbackButton] = field(default_factory=dict)
    retry_initial_seconds: float = 0.2
    retry_max_seconds: float = 30.0


DEFAULT_OPTIONS = ListenerOptions()


class UpdateJobs:
    # Set by TelegramListener.__init__ and identify().
    _ingestor: Ingestor
    _sessionmaker: async_sessionmaker[AsyncSession]
    _options: ListenerOptions
    _account_id: int
    _self_id: int
    _username: str | None
    _user_account: bool
    _flows: FlowOwnership
    _own: OwnMessages

    def use_bot_options(self, access: AccessLists, buttons: Mapping[str, CallbackButton]) -> None:
        """The account's lists or buttons changed (the admin API): from the next update."""
        self._options = replace(self._options, access=access, buttons=buttons)

    async def _callback(self, event: Any, recorded: HandOver) -> None:
        """A button press: recorded as a message of its chat (joining the burst when its
        button says so), then answered, so the user's spinner stops. Telegram takes one
        answer per query: a retried job's second answer is refused and ignored."""
        data = event.data.decode("utf-8", errors="replace")
        button = self._options.buttons.get(data)
        if not self._options.access.permits(event.chat_id, event.sender_id):
            await self._answer(event, None)
            recorded()
            return
        joins = button is not None and button.text is not None
        incoming = IncomingMessage(
            chat_id=event.chat_id,
            sender_id=event.sender_id,
            message_id=callback_message_id(event.query.query_id),
            text=button.text if button is not None and button.text else f"[button {data}]",
            sent_at=datetime.now(UTC),
            kind="callback",
        )
        reason = None if joins else ("button_answered" if button else "unknown_button")
        await self._ingestor.message(incoming, unanswered_reason=reason, on_recorded=recorded)
        await self._answer(event, button)

    async def _answer(self, event: Any, button: CallbackButton | None) -> None:
        from telethon import errors

        try:
            if button is not None and button.answer:
                await event.answer(button.answer, alert=button.alert)
            else:
                await event.answer()
        except errors.QueryIdInvalidError:
            log.info("callback query %s was answered already (or expired)", event.query.query_id)

    async def _typing(self, action: ChatAction) -> None:
        if action.sender_id == self._self_id:
            # The owner typing from another session of a user account: hand over before
            # their message lands, unless it is our own "typing…" shown while generating.
            if action.action != "cancel" and self._hands_off():
                async with self._sessionmaker() as session:
                    ours = await db_deliveries.generating_in(
                        session, account_id=self._account_id, chat_id=action.chat_id
                    )
                if not ours:
                    await self._hand_over(action.chat_id, action.topic_id, "started typing")
            return
        await self._ingestor.typing(
            chat_id=action.chat_id,
            sender_id=action.sender_id,
            action=action.action,
            topic_id=action.topic_id,
        )

    async def _message(
        self, event: Any, message: Any, recorded: HandOver, album: list[Any] | None = None
    ) -> None:
        """A new message, or an album; ``message`` is the message or the album's first.
        ``album`` holds the items of an album the listener folds itself (its event never
        came). ``recorded`` is called once it is in Postgres (the chat's next job may start)."""
        if album is not None:
            incoming = album_items_to_incoming(
                album, event.chat_id, event.sender_id, self._options.placeholders
            )
        elif isinstance(event, events.Album.Event):
            incoming = album_to_incoming(event, self._options.placeholders)
        else:
            incoming = to_incoming(event, self._options.placeholders)
        if incoming is None:
            return  # service messages
        if message.out:
            if self._hands_off() and not await self._own.is_ours(
                incoming.chat_id, message.id, incoming.text
            ):
                # A user account's own message that is none of our replies: its human
                # owner wrote, and the chat is handed over to them.
                await self._hand_over(incoming.chat_id, incoming.topic_id, "wrote")
            return
        # The one place a Telegram message's command is parsed: its name travels on.
        incoming = replace(incoming, command=parse_command(incoming.text, self._ingestor.commands))
        is_command = incoming.command is not None
        reply_to = getattr(message.reply_to, "reply_to_msg_id", None)
        replies_to_us = reply_to is not None and await self._own.is_sent_by_us(
            incoming.chat_id, reply_to
        )
        facts = facts_of(
            event,
            replies_to_us=replies_to_us,
            is_command=is_command,
            us=(self._self_id, self._username),
            message=message,
        )
        decision = verdict(facts, self._options.access)
        if decision is Verdict.IGNORE:
            return
        reason: str | None = None
        if decision is Verdict.RECORD_ONLY:
            reason = "bot_sender" if facts.sender_is_bot else "group_chatter"
        elif not facts.is_private:
            explicit = facts.mentions_us or facts.is_command
            admitted = await self._flows.admits(
                incoming.chat_id,
                incoming.topic_id,
                incoming.sender_id,
                incoming.sent_at,
                explicit=explicit,
            )
            reason = None if admitted else "flow_owned"
        await self._ingestor.message(incoming, unanswered_reason=reason, on_recorded=recorded)

    def _hands_off(self) -> bool:
        return self._user_account and self._options.handoff

    async def _hand_over(self, chat_id: int, topic_id: int | None, what: str) -> None:
        log.info("owner %s in chat %s; pausing the bot there", what, chat_id)
        await self._ingestor.hand_off(
            chat_id=chat_id,
            topic_id=topic_id,
            owner_id=self._self_id,
            minutes=self._options.handoff_minutes,
        )

    async def _edit(self, event: events.MessageEdited.Event) -> None:
        if event.message.out:
            return
        edit = to_edit(event, self._options.placeholders)
        if edit is None:
            return
        await self._ingestor.edit(
            chat_id=edit.chat_id,
            message_id=edit.message_id,
            text=edit.text,
            edited_at=event.message.edit_date or event.message.date,
            topic_id=edit.topic_id,
        )

    async def _delete(self, event: events.MessageDeleted.Event) -> None:
        deletion = to_deletion(event)
        now = datetime.now(UTC)
        ids = valid_message_ids(deletion.message_ids, f"delete in chat {deletion.chat_id}")
        if not ids:
            return
        if deletion.chat_id is not None:
            by_chat = {deletion.chat_id: ids}
        else:
            async with self._sessionmaker() as session:
                by_chat = await db_deliveries.chats_of_messages(
                    session, account_id=self._account_id, message_ids=ids
                )
        for chat_id, ids in by_chat.items():
            await self._ingestor.delete(chat_id=chat_id, message_ids=ids, deleted_at=now)
