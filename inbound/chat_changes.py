"""Changes to a chat other than new messages: edits, deletes and a human handoff. The seam
(``inbound/ingestor.py``) inherits them; each records first, then signals the chat's
conversation only if one is open (a handoff starts one, so the pause is kept)."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from db.queries import conversations as db_conversations
from db.queries import messages as db_messages
from inbound.addressing import ConversationAddress
from inbound.drain import signal_open_conversation
from inbound.incoming import Account
from inbound.input_rules import RejectedMessageError, check_ids, clean_text
from inbound.signal_batches import SignalBatches
from inbound.typing_signals import TypingSignals
from workflows.conversation import ConversationWorkflow
from workflows.payloads import (
    ConversationRef,
    MessageEdited,
    MessageReceived,
    MessagesDeleted,
    PauseInput,
)

log = logging.getLogger("lull.ingest")


class ChatChanges:
    # Set by Ingestor.__init__.
    _client: Client
    _sessionmaker: async_sessionmaker[AsyncSession]
    _account: Account
    _address: ConversationAddress
    _typing: TypingSignals
    _signals: SignalBatches[tuple[ConversationRef, MessageReceived], str | None]

    async def edit(
        self,
        *,
        chat_id: int,
        message_id: int,
        text: str,
        edited_at: datetime,
        topic_id: int | None = None,
    ) -> bool:
        """Record an edit; a still-buffered message's burst restarts its quiet period.
        An answered message's edit is recorded and not answered again. Returns whether the
        conversation was signalled."""
        what = f"edit of message {message_id} in chat {chat_id}"
        check_ids(what, chat_id=chat_id, message_id=message_id, topic_id=topic_id)
        text = clean_text(text, what)
        if not text:
            raise RejectedMessageError(f"{what} is empty; not applied")
        async with self._sessionmaker() as session, session.begin():
            recorded = await db_messages.record_edit(
                session,
                account_id=self._account.id,
                chat_id=chat_id,
                message_id=message_id,
                text=text,
                edited_at=edited_at,
            )
        if recorded is None or recorded.burst_id is not None:
            log.info("edit of message %s in chat %s recorded, not re-answered", message_id, chat_id)
            return False
        self._typing.touched((chat_id, topic_id))
        return await self._signal_open(
            chat_id,
            topic_id,
            "message_edited",
            MessageEdited(message_id, len(text)),
        )

    async def delete(
        self,
        *,
        chat_id: int,
        message_ids: list[int],
        deleted_at: datetime,
        topic_id: int | None = None,
    ) -> bool:
        """Record deletes; buffered messages leave their burst. Returns whether signalled."""
        for message_id in message_ids:
            check_ids(f"delete in chat {chat_id}", chat_id=chat_id, message_id=message_id)
        async with self._sessionmaker() as session, session.begin():
            unanswered = await db_messages.record_deletes(
                session,
                account_id=self._account.id,
                chat_id=chat_id,
                message_ids=message_ids,
                deleted_at=deleted_at,
            )
        if not unanswered:
            return False
        self._typing.touched((chat_id, topic_id))
        return await self._signal_open(
            chat_id,
            topic_id,
            "messages_deleted",
            MessagesDeleted(unanswered),
        )

    async def _signal_open(
        self, chat_id: int, topic_id: int | None, signal: str, arg: object
    ) -> bool:
        """Signal an open conversation, after its held messages: an edit or a delete that
        overtook its message would find nothing to change."""
        workflow_id = self._address.workflow_id(chat_id, topic_id)
        await self._signals.flush(workflow_id)
        return await signal_open_conversation(self._client, workflow_id, signal, arg)

    async def hand_off(
        self, *, chat_id: int, topic_id: int | None, owner_id: int, minutes: float | None
    ) -> None:
        """The account's human owner wrote in this chat: pause the bot there (human
        handoff), starting the conversation if none is open so the pause is kept."""
        async with self._sessionmaker() as session, session.begin():
            conversation_id = await db_conversations.ensure_conversation(
                session,
                account_id=self._account.id,
                chat_id=chat_id,
                topic_id=topic_id,
                owner_user_id=owner_id,
                chat_ref=self._address.chat_ref(chat_id, topic_id),
            )
        ref = self._address.ref(chat_id, topic_id, conversation_id)
        await self._signals.flush(self._address.workflow_id(chat_id, topic_id))
        start = WithStartWorkflowOperation(
            ConversationWorkflow.run,
            self._address.input(ref),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            **self._address.start_options(ref),
        )
        await self._client.execute_update_with_start_workflow(
            ConversationWorkflow.pause, PauseInput(minutes), start_workflow_operation=start
        )
