"""The send activity, hosted by the process that owns the account's channel connection."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import missing, telegram_answered
from activities.heartbeat import heartbeating
from activities.host import ActivityHost
from channels.base import ChannelSender, SendTarget, reply_target
from channels.chunking import split_message
from db.queries import accounts as db_accounts
from db.queries import bursts as db_bursts
from db.queries import failures as db_failures
from db.queries import replies as db_replies
from workflows.error_types import ErrorType
from workflows.ids import delivery_random_id
from workflows.payloads import FailureNoticeInput, SendReplyInput, SendReplyResult

# The error notice's random_id is derived like a chunk's, from an index no chunk has.
NOTICE_CHUNK = -1


# How long after a send with no answer Telegram is trusted to still de-duplicate its
# random_id (it does, for a while it does not document); past it the chunk is in doubt.
RANDOM_ID_TRUST_SECONDS = 600.0


class SendActivities(ActivityHost):
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        sender: ChannelSender,
        *,
        random_id_trust_seconds: float = RANDOM_ID_TRUST_SECONDS,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._sender = sender
        self._trust = random_id_trust_seconds

    @activity.defn(name="send_reply")
    async def send_reply(self, input: SendReplyInput) -> SendReplyResult:
        """Send each chunk not yet delivered. Each chunk's ``random_id`` is fixed by the burst
        key, so a send that reached the channel before a crash is de-duplicated there."""
        async with self._sessionmaker() as session:
            burst = await db_replies.reply_to_send(session, input.burst_key)
        if burst is None:
            raise missing(f"burst {input.burst_key}")
        if burst.reply_id is None or burst.reply_text is None:  # an outer join: both or neither
            raise missing(f"reply of burst {input.burst_key}")
        if burst.status == "superseded":
            # Its author wrote before it went out: a stale reply is never sent.
            raise ApplicationError(
                f"burst {input.burst_key} was superseded; its reply is not sent",
                type=ErrorType.BURST_SUPERSEDED,
                non_retryable=True,
            )
        chunks = split_message(burst.reply_text, self._sender.max_chars)
        async with heartbeating():
            newly_sent = await self._send_missing(
                input, burst, burst.reply_id, chunks, set(burst.delivered)
            )
        async with self._sessionmaker() as session, session.begin():
            await db_bursts.set_burst_status(
                session, burst.id, "sent", only_from=("persisted", "replied"), sent_at=func.now()
            )
        return SendReplyResult(chunks=len(chunks), newly_sent=newly_sent)

    @activity.defn(name="send_failure_notice")
    async def send_failure_notice(self, input: FailureNoticeInput) -> bool:
        """Send the account's error message for a failed burst, once: Postgres remembers it
        was sent, and a fixed random_id de-duplicates a send that crashed before that.
        Returns False when it had been sent already."""
        async with self._sessionmaker() as session:
            burst = await db_bursts.load_burst(session, input.burst_key)
            if burst is None:
                raise missing(f"burst {input.burst_key}")
            if burst.notice_sent_at is not None:
                return False
            acct = await db_accounts.load_account(session, burst.account_id)
        target = SendTarget(burst.chat_id, burst.topic_id, reply_target(burst.message_ids))
        random_id = delivery_random_id(input.burst_key, NOTICE_CHUNK)
        async with heartbeating():
            await self._sender.send(target, acct.error_text, random_id=random_id)
        async with self._sessionmaker() as session, session.begin():
            await db_failures.mark_notice_sent(session, burst.id)
        return True

    async def _send_missing(
        self, input: SendReplyInput, burst: Any, reply_id: int, chunks: list[str], done: set[int]
    ) -> int:
        newly_sent = 0
        for index, chunk in enumerate(chunks):
            if index in done:
                continue
            random_id = delivery_random_id(input.burst_key, index)
            # An operator's message (an admin send) answers no message of the chat, nor
            # does a reply to button presses alone.
            reply_to = reply_target(burst.message_ids) if index == 0 else None
            target = SendTarget(burst.chat_id, burst.topic_id, reply_to)
            async with self._sessionmaker() as session, session.begin():
                unknown_for = await db_replies.begin_send_attempt(
                    session, reply_id=reply_id, chunk_index=index
                )
            if unknown_for > self._trust and not input.resend_in_doubt:
                raise ApplicationError(
                    f"chunk {index} of burst {input.burst_key} may have reached the chat "
                    f"{unknown_for:.0f} s ago (that send was never answered), longer than "
                    "Telegram is trusted to de-duplicate it: not sent again, so that no "
                    f"reply shows twice; `lull retry --resend-in-doubt {input.burst_key}` "
                    "sends it",
                    type=ErrorType.SEND_IN_DOUBT,
                    non_retryable=True,
                )
            try:
                channel_id = await self._sender.send(target, chunk, random_id=random_id)
            except ApplicationError as err:
                if telegram_answered(err):
                    async with self._sessionmaker() as session, session.begin():
                        await db_replies.send_attempt_answered(
                            session, reply_id=reply_id, chunk_index=index
                        )
                raise
            async with self._sessionmaker() as session, session.begin():
                await db_replies.insert_delivery(
                    session,
                    reply_id=reply_id,
                    chunk_index=index,
                    random_id=random_id,
                    channel_message_id=channel_id,
                )
            newly_sent += 1
        return newly_sent
