"""The ingest seam: every channel's incoming events become workflow signals here, and the
process that owns a channel hosts that account's `send_reply` activity.

Order per message: record it in Postgres (the durable "accepted" point), then
signal-with-start its conversation. A message already answered is not signalled again,
so channel retries and catch-up replays cannot produce a second reply.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from db.queries import accounts as db_accounts
from db.queries import messages as db_messages
from inbound.addressing import ConversationAddress
from inbound.chat_changes import ChatChanges
from inbound.incoming import CHAT_ACTIONS, Account, IncomingMessage, IngestResult
from inbound.input_rules import RejectedMessageError, check_ids, clean_text
from inbound.signal_batches import SignalBatches
from inbound.signal_linger import SignalLinger
from inbound.sweep_check import unseen_by_run
from inbound.typing_gate import ChatKey, TypingGate
from inbound.typing_signals import TypingSignals
from workflows.commands import BUILTIN_COMMANDS
from workflows.conversation import ConversationWorkflow
from workflows.payloads import (
    ConversationConfig,
    ConversationRef,
    MessageReceived,
    MessagesReceived,
    TypingObserved,
)

# A held chat action is signalled this long before the deadline it could extend: room for
# the signal to reach the workflow (see inbound/typing_gate.py).
TYPING_SIGNAL_LEAD_SECONDS = 1.0

# The most messages one signal carries (a sweep or a backlog is sent in several).
MAX_MESSAGES_PER_SIGNAL = 50
# Conversations whose settings version the ingest remembers (about 100 bytes each).
MAX_CONVERSATIONS_TOLD = 100_000

log = logging.getLogger("lull.ingest")


class Ingestor(ChatChanges):
    """Turns one account's incoming events into conversation signals."""

    def __init__(
        self,
        client: Client,
        sessionmaker: async_sessionmaker[AsyncSession],
        account: Account,
        *,
        config: ConversationConfig,
        task_queue: str,
        chat_hash_key: bytes,
        commands: frozenset[str] = frozenset(BUILTIN_COMMANDS),
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        schedule: Callable[[float, Callable[[], None]], Any] | None = None,
        batch_signals: bool = True,
        signal_linger: float | None = None,
    ) -> None:
        self._client = client
        self._sessionmaker = sessionmaker
        self._account = account
        self._config = config
        self._task_queue = task_queue
        self._address = ConversationAddress(account, config, task_queue, chat_hash_key)
        self._commands = commands
        self._clock = clock
        # Stamps when a message was accepted; its quiet period runs from then.
        self._wall_clock = wall_clock
        # Which conversations were sent the current settings (version) on a message: each
        # conversation's first message from this process, and its first after a change,
        # carries them, so a run started under older settings takes the new ones.
        self._config_version = 0
        self._told: OrderedDict[str, int] = OrderedDict()
        self._gate = TypingGate(config, lead=TYPING_SIGNAL_LEAD_SECONDS)
        self._typing = TypingSignals(
            self._gate,
            self._signal_typing,
            clock=clock,
            schedule=schedule,
        )
        # Per conversation, one message signal in flight; later arrivals ride the next.
        self._batch_signals = batch_signals
        self._signals: SignalBatches[tuple[ConversationRef, MessageReceived], str | None] = (
            SignalBatches(self._signal_messages)
        )
        # How long a message's signal may wait for its burst's next message (batching only).
        self._linger = SignalLinger(config, linger=signal_linger if batch_signals else 0.0)

    @property
    def account(self) -> Account:
        return self._account

    @property
    def address(self) -> ConversationAddress:
        return self._address

    @property
    def commands(self) -> frozenset[str]:
        return self._commands

    @property
    def config(self) -> ConversationConfig:
        return self._config

    def reconfigure(self, config: ConversationConfig, commands: frozenset[str]) -> None:
        """The account's settings changed (the admin API): new runs start with them, and
        each open one is sent them on its next message."""
        self._commands = commands
        if config == self._config:
            return
        self._config = config
        for part in (self._address, self._linger, self._gate):
            part.use_config(config)
        self._config_version += 1

    def workflow_id_for(self, chat_id: int, topic_id: int | None = None) -> str:
        """The workflow id of this account's conversation in a chat (and topic)."""
        return self._address.workflow_id(chat_id, topic_id)

    async def typing(
        self, *, chat_id: int, sender_id: int, action: str, topic_id: int | None = None
    ) -> bool:
        """A user's chat action; returns whether the conversation was signalled now (most
        are held back, see inbound/typing_signals.py)."""
        if action not in CHAT_ACTIONS:
            expected = ", ".join(sorted(CHAT_ACTIONS))
            raise ValueError(f"unknown chat action {action!r}; expected one of {expected}")
        check_ids(f"{action} in chat {chat_id}", chat_id=chat_id, sender_id=sender_id)
        return await self._typing.action((chat_id, topic_id), sender_id, action)

    async def release_held_typing(self) -> int:
        """Signal the held chat actions whose time came; returns how many were signalled."""
        return await self._typing.release_due()

    async def _signal_typing(self, chat: ChatKey, sender_id: int, action: str, age: float) -> bool:
        chat_id, topic_id = chat
        return await self._signal_open(
            chat_id,
            topic_id,
            "typing_observed",
            TypingObserved(self._address.sender(sender_id), action, age_seconds=age),
        )

    @property
    def signal_batches(self) -> SignalBatches[tuple[ConversationRef, MessageReceived], str | None]:
        return self._signals

    async def message(
        self,
        msg: IncomingMessage,
        *,
        unanswered_reason: str | None = None,
        on_recorded: Callable[[], None] | None = None,
    ) -> IngestResult:
        """Record a message, then signal its conversation; returns once the signal landed.
        With ``unanswered_reason`` the message is only recorded (kept in the transcript,
        never answered).

        ``on_recorded`` is called once the message is in Postgres, before its signal is
        sent: a caller keeping a chat's messages in order may hand over the next one then,
        and the two can ride one signal. Only such a caller's messages may be held for the
        next one (see inbound/signal_linger.py)."""
        accepted_at = self._wall_clock()
        what = f"message {msg.message_id} in chat {msg.chat_id}"
        check_ids(
            what,
            chat_id=msg.chat_id,
            sender_id=msg.sender_id,
            message_id=msg.message_id,
            topic_id=msg.topic_id,
        )
        text = clean_text(msg.text, what)
        if not text:
            raise RejectedMessageError(f"{what} is empty; not buffered")
        command = msg.command
        async with self._sessionmaker() as session:
            # One statement, atomic on its own: no begin and commit round trips around it.
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            conversation_id, recorded = await db_messages.record_incoming(
                session,
                account_id=self._account.id,
                chat_id=msg.chat_id,
                topic_id=msg.topic_id,
                message_id=msg.message_id,
                sender_id=msg.sender_id,
                text=text,
                kind="command" if command else msg.kind,
                command=command,
                sent_at=msg.sent_at,
                unanswered_reason=unanswered_reason,
                chat_ref=self._address.chat_ref(msg.chat_id, msg.topic_id),
            )
        workflow_id = self._address.workflow_id(msg.chat_id, msg.topic_id)
        if on_recorded is not None:
            # The chat's next job runs at our next await, the deliver below: by then the
            # typing gate has heard of this message.
            on_recorded()
        if unanswered_reason is not None:
            return IngestResult(workflow_id, signalled=False)
        if recorded.burst_id is not None:
            log.info(
                "message %s of %s already answered; not re-signalled", msg.message_id, workflow_id
            )
            return IngestResult(workflow_id, signalled=False)
        ref = self._address.ref(msg.chat_id, msg.topic_id, conversation_id)
        chat = (msg.chat_id, msg.topic_id)
        self._typing.message(chat, msg.sender_id)
        received = MessageReceived(
            msg.message_id,
            self._address.sender(msg.sender_id),
            len(text),
            command,
            accepted_at=accepted_at,
        )
        if self._batch_signals:
            now = self._clock()
            send_by = self._linger.send_by(chat, now, chars=len(text), command=command is not None)
            # Only a caller that hands over the chat's next message once this one is
            # recorded can have it join: one that waits for this call would only be slowed,
            # and its next message accepted later.
            hold = send_by - now if on_recorded is not None else 0.0
            run_id = await self._signals.deliver(workflow_id, (ref, received), hold=hold)
        else:
            run_id = await self._signal_messages([(ref, received)])
        return IngestResult(workflow_id, signalled=True, run_id=run_id)

    async def _signal_messages(
        self, items: list[tuple[ConversationRef, MessageReceived]]
    ) -> str | None:
        """Signal-with-start one conversation with its messages, in order; one alone goes
        as ``message_received``, as it always did."""
        ref = items[-1][0]
        received = [m for _, m in items]
        run_id = None
        # In signals of at most MAX_MESSAGES_PER_SIGNAL: a workflow task decodes every
        # signal it takes, and one that outlasts the SDK's deadlock timeout fails, and
        # fails again on every retry.
        options = self._address.start_options(ref)
        workflow_id, version = options["id"], self._config_version
        if self._told.get(workflow_id) != version:
            received[0] = replace(received[0], config=self._config)
        for start in range(0, len(received), MAX_MESSAGES_PER_SIGNAL):
            part = received[start : start + MAX_MESSAGES_PER_SIGNAL]
            signal, arg = (
                ("message_received", part[0])
                if len(part) == 1
                else ("messages_received", MessagesReceived(part))
            )
            handle = await self._client.start_workflow(
                ConversationWorkflow.run,
                self._address.input(ref),
                start_signal=signal,
                start_signal_args=[arg],
                **options,
            )
            run_id = handle.result_run_id
        self._told[workflow_id] = version
        self._told.move_to_end(workflow_id)
        if len(self._told) > MAX_CONVERSATIONS_TOLD:
            # The oldest is told again on its next message: one extra field, no harm.
            self._told.popitem(last=False)
        return run_id

    async def resend_unflushed(
        self,
        *,
        older_than: timedelta,
        stranded_after: timedelta | None = None,
        limit: int = 500,
    ) -> int:
        """Signal again the messages recorded over ``older_than`` ago that no burst took:
        their signal was lost (a Temporal that lost its last commits, a run closed from
        outside); with ``stranded_after``, also those of a burst left unfinished that long
        (its run was lost mid-burst). Only the ids the chat's open run has not taken are
        sent (inbound/sweep_check.py): a backlog held behind a slow burst is never sent
        again. Signal-with-start serves a chat whose run is gone, and a new run flushing
        the same messages gets the same burst key, so the stranded row (and a reply already
        paid for) is taken up, not made again. Returns how many were sent."""
        async with self._sessionmaker() as session:
            rows = await db_messages.unflushed_messages(
                session,
                account_id=self._account.id,
                older_than=older_than,
                limit=limit,
                stranded_after=stranded_after,
            )
        by_chat: dict[tuple[int, int | None], list[tuple[ConversationRef, MessageReceived]]] = {}
        for row in rows:
            received = MessageReceived(
                row.message_id,
                self._address.sender(row.sender_id),
                len(row.text),
                row.command,
                accepted_at=row.received_at,
                resent=True,
            )
            ref = self._address.ref(row.chat_id, row.topic_id, row.conversation_id)
            by_chat.setdefault((row.chat_id, row.topic_id), []).append((ref, received))
        sent = 0
        for (chat_id, topic_id), items in by_chat.items():
            workflow_id = self._address.workflow_id(chat_id, topic_id)
            unseen = await unseen_by_run(
                self._client, workflow_id, [m.message_id for _, m in items]
            )
            if unseen is None:
                continue  # the run cannot say now; the next round asks again
            missing = [(ref, m) for ref, m in items if m.message_id in unseen]
            if missing:
                await self._signal_messages(missing)
                sent += len(missing)
        return sent

    async def close_conversations(self, reason: str) -> int:
        """Terminate the account's open conversations (a throwaway replay account's, once
        its run is over); returns how many were open."""
        async with self._sessionmaker() as session:
            chats = await db_accounts.account_chats(session, self._account.id)
        closed = 0
        for chat_id, topic_id in chats:
            handle = self._client.get_workflow_handle(self._address.workflow_id(chat_id, topic_id))
            try:
                await handle.terminate(reason)
                closed += 1
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:  # already closed
                    raise
        return closed
