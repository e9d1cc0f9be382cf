"""Activities that record bursts in Postgres."""

from __future__ import annotations

import logging

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import missing
from activities.host import ActivityHost
from activities.spend import count_discarded
from db.queries import accounts as db_accounts
from db.queries import bursts as db_bursts
from db.queries import conversations as db_conversations
from db.queries import failures as db_failures
from db.queries import messages as db_messages
from workflows.error_types import ErrorType
from workflows.payloads import (
    MarkBurstFailedInput,
    MidReplyInput,
    PersistBurstInput,
    PersistBurstResult,
)

log = logging.getLogger("lull.alerts")

MESSAGES_MISSING = "MessagesMissing"


class BurstActivities(ActivityHost):
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    @activity.defn(name="persist_burst")
    async def persist_burst(self, input: PersistBurstInput) -> PersistBurstResult:
        """Store the burst under its key and point its messages at it; safe to repeat."""
        async with self._sessionmaker() as session, session.begin():
            epoch = await db_conversations.context_epoch(session, input.conversation_id)
            burst_id, created = await db_bursts.insert_burst(
                session,
                burst_key=input.burst_key,
                conversation_id=input.conversation_id,
                message_ids=input.message_ids,
                reason=input.reason,
                context_epoch=epoch,
                first_message_at=input.first_message_at,
                last_message_at=input.last_message_at,
                flushed_at=input.flushed_at,
                command=input.command,
            )
            if input.takes_over is not None:
                await db_bursts.record_successor(session, input.takes_over, burst_id)
            count = await db_bursts.assign_messages(
                session,
                burst_id=burst_id,
                conversation_id=input.conversation_id,
                message_ids=input.message_ids,
            )
            # Every message deleted after the flush, or the burst was cleared or came in
            # while paused: recorded, never answered. A stale local activity that ran after
            # its workflow task timed out finds its messages in the burst the retried task
            # flushed instead: superseded, not deleted.
            drop_as = input.drop_as
            missing = await db_messages.missing_message_ids(
                session, conversation_id=input.conversation_id, message_ids=input.message_ids
            )
            if missing:
                await self._report_missing(session, input, missing)
            if count == 0 and len(missing) == len(input.message_ids):
                drop_as = "missing"
            elif count == 0:
                taken = await db_messages.held_by_another_burst(
                    session,
                    burst_id=burst_id,
                    conversation_id=input.conversation_id,
                    message_ids=input.message_ids,
                )
                drop_as = "superseded" if taken else "deleted"
            if drop_as is not None:
                await db_bursts.set_burst_status(
                    session, burst_id, "dropped", only_from=("persisted",), error_type=drop_as
                )
            elif count and not created and await db_bursts.reopen_if_found(session, burst_id):
                log.warning(
                    "burst %s had lost its messages (reported LOST) and has them again; "
                    "answering it",
                    input.burst_key,
                )
        return PersistBurstResult(burst_id=burst_id, message_count=count)

    @activity.defn(name="record_mid_reply")
    async def record_mid_reply(self, input: MidReplyInput) -> bool:
        """A message from the burst's author came before its reply went out: supersede the
        burst (its messages go to the next burst; a reply generated is never sent), or
        note the rule that kept it. Returns whether the burst is superseded (False: it had
        already moved on). Safe to repeat."""
        async with self._sessionmaker() as session, session.begin():
            if not input.superseded:
                await db_bursts.note_mid_reply(session, input.burst_key, rule=input.rule)
                return False
            burst_id = await db_bursts.supersede(session, input.burst_key, rule=input.rule)
            discarded = await db_bursts.discarded_reply(session, burst_id) if burst_id else None
        if burst_id is None:
            log.warning("burst %s had moved on and was not superseded", input.burst_key)
        if discarded is not None and activity.info().attempt == 1:
            count_discarded(*discarded, how="discarded")
        return burst_id is not None

    async def _report_missing(
        self, session: AsyncSession, input: PersistBurstInput, missing: list[int]
    ) -> None:
        """Messages the workflow was signalled but Postgres has no row of: their text is
        gone, so they cannot be answered. Said every time, never silently dropped (ids only,
        no user text); counted in the alert table as ``MessagesMissing``."""
        account_id = await db_accounts.account_of_conversation(session, input.conversation_id)
        await db_failures.record_alert(
            session,
            account_id=account_id,
            kind=MESSAGES_MISSING,
            burst_key=input.burst_key,
            error=f"message ids {missing} not in Postgres",
        )
        log.error(
            "LOST MESSAGES: burst %s was signalled %d message(s) that Postgres has no row of "
            "(ids %s; a database that lost its last commits?); they cannot be answered",
            input.burst_key,
            len(missing),
            missing,
        )

    @activity.defn(name="mark_burst_failed")
    async def mark_burst_failed(self, input: MarkBurstFailedInput) -> None:
        """Record the failure on the burst and count it toward an ops alert: the first
        failure of a kind in an account's hour logs an ERROR line; the rest only count."""
        error = input.error[:2000]
        async with self._sessionmaker() as session, session.begin():
            row = await db_bursts.load_burst(session, input.burst_key)
            if row is None:
                raise missing(f"burst {input.burst_key}")
            await db_bursts.set_burst_status(
                session,
                row.id,
                "failed",
                only_from=("persisted", "replied"),
                error_type=input.error_type,
                error=error,
                failed_at=func.now(),
            )
            acct = await db_accounts.load_account(session, row.account_id)
            first = await db_failures.record_alert(
                session,
                account_id=row.account_id,
                kind=input.error_type,
                burst_key=input.burst_key,
                error=error,
            )
        if first:
            # Error type and the provider's or Telegram's error text: never user content.
            # Named as ops know them: the account key and the workflow to open in the UI.
            workflow_id = activity.info().workflow_id if activity.in_activity() else "-"
            log.error(
                "ALERT account %s: a burst failed with %s (first this hour; more are counted "
                "in the alert table): %s [burst %s, workflow %s]",
                acct.key,
                input.error_type,
                error[:300],
                input.burst_key,
                workflow_id,
            )

    @activity.defn(name="reopen_failed_burst")
    async def reopen_failed_burst(self, burst_key: str) -> str:
        """`lull retry`: move a failed burst back to where its remaining steps start."""
        async with self._sessionmaker() as session, session.begin():
            status = await db_failures.reopen_failed_burst(session, burst_key)
            current = None if status else await db_bursts.load_burst(session, burst_key)
        if status is None:
            if current is None:
                raise missing(f"burst {burst_key}")
            raise ApplicationError(
                f"burst {burst_key} is {current.status}, not failed: nothing to retry",
                type=ErrorType.NOT_FAILED,
                non_retryable=True,
            )
        return status
