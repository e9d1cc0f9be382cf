"""The ingest's one statement per message (db_messages.record_incoming): each message stored
once with its conversation, whoever else is storing it at the same moment."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.queries import bursts as db_bursts
from db.queries import messages as db_messages
from db.tables import conversation, message

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


async def record(
    sm: async_sessionmaker[AsyncSession], account_id: int, message_id: int, **changes: Any
) -> tuple[int, db_messages.RecordedMessage]:
    """As the ingest runs it: alone, in autocommit."""
    fields: dict[str, Any] = {
        "account_id": account_id,
        "chat_id": 7,
        "topic_id": None,
        "message_id": message_id,
        "sender_id": 9,
        "text": f"m{message_id}",
        "kind": "text",
        "sent_at": NOW,
        **changes,
    }
    async with sm() as session:
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        return await db_messages.record_incoming(session, **fields)


async def test_a_message_is_stored_once_and_its_burst_reported(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    conv, first = await record(sessionmaker, account_id, 1)
    assert first.created and first.burst_id is None
    again_conv, again = await record(sessionmaker, account_id, 1, text="a retry")
    assert (again_conv, again.id, again.created) == (conv, first.id, False)
    async with sessionmaker() as session, session.begin():
        rows = await session.execute(
            select(func.count(), func.max(message.c.text)).where(message.c.account_id == account_id)
        )
        assert tuple(rows.one()) == (1, "m1")  # the first text stands
        burst_id, _ = await db_bursts.insert_burst(
            session,
            burst_key=f"b-{account_id}",
            conversation_id=conv,
            message_ids=[1],
            reason="quiet",
            context_epoch=0,
            first_message_at=NOW,
            last_message_at=NOW,
            flushed_at=NOW,
        )
        await session.execute(update(message).values(burst_id=burst_id))
    # A message answered already is reported so, and the ingest does not signal it again.
    _, answered = await record(sessionmaker, account_id, 1)
    assert (answered.created, answered.burst_id) == (False, burst_id)


async def test_one_conversation_per_chat_and_topic_whose_last_message_never_moves_back(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    conv, _ = await record(sessionmaker, account_id, 1, sent_at=NOW)
    later, _ = await record(sessionmaker, account_id, 2, sent_at=NOW + timedelta(minutes=5))
    # A late retry of an older message.
    late, _ = await record(sessionmaker, account_id, 3, sent_at=NOW - timedelta(minutes=5))
    topic, _ = await record(sessionmaker, account_id, 4, topic_id=11)
    assert conv == later == late != topic
    async with sessionmaker() as session:
        row = (
            await session.execute(
                select(conversation.c.owner_user_id, conversation.c.last_message_at).where(
                    conversation.c.id == conv
                )
            )
        ).one()
        owners = await session.scalars(
            select(message.c.conversation_id).where(message.c.account_id == account_id)
        )
        assert sorted(owners) == sorted([conv, conv, conv, topic])
    assert tuple(row) == (9, NOW + timedelta(minutes=5))


async def test_a_message_stored_at_the_same_moment_by_another_call_is_not_stored_twice(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    """The other call's transaction is still open when this one runs: its insert waits,
    then does nothing, and the row it waited for is newer than the statement's snapshot.
    The call still answers with that row, not a failure or a second copy."""
    async with sessionmaker() as first, first.begin():
        conv, stored = await db_messages.record_incoming(
            first,
            account_id=account_id,
            chat_id=7,
            topic_id=None,
            message_id=1,
            sender_id=9,
            text="m1",
            kind="text",
            sent_at=NOW,
        )
        first_pid = (await first.execute(text("select pg_backend_pid()"))).scalar_one()
        second = asyncio.create_task(record(sessionmaker, account_id, 1))
        await blocked_by(sessionmaker, first_pid)
        assert not second.done()
    # The first call committed on leaving the block: the second one goes on.
    second_conv, seen = await asyncio.wait_for(second, 10)
    assert (second_conv, seen.id, seen.created) == (conv, stored.id, False)


async def blocked_by(sm: async_sessionmaker[AsyncSession], pid: int) -> None:
    """Until some session waits on a lock that backend ``pid`` holds (polling the server's
    view: nothing else announces it)."""
    query = text("select count(*) from pg_stat_activity where :pid = any(pg_blocking_pids(pid))")
    for _ in range(200):
        async with sm() as session:
            if (await session.execute(query, {"pid": pid})).scalar_one():
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing ever waited on backend {pid}")
