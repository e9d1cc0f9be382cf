"""Flow ownership in groups: the TTL cache, its Postgres fallback and its bounds."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.telegram.flows import FlowOwnership
from db.queries import conversations as db_conversations
from db.tables import burst, message

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
TTL = timedelta(hours=72)
CHAT = -77
ANN, BEN = 1, 2


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _conversation(sm: async_sessionmaker[AsyncSession], account_id: int) -> None:
    async with sm() as session, session.begin():
        await db_conversations.ensure_conversation(
            session, account_id=account_id, chat_id=CHAT, topic_id=None, owner_user_id=ANN
        )


async def test_a_thread_belongs_to_its_starter_until_idle_for_the_ttl(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    await _conversation(sessionmaker, account_id)
    flows = FlowOwnership(sessionmaker, account_id, ttl=TTL)
    assert await flows.admits(CHAT, None, ANN, T0, explicit=False)
    assert not await flows.admits(CHAT, None, BEN, T0 + timedelta(hours=1), explicit=False)
    # A mention or command is explicit: Ben starts his own flow.
    assert await flows.admits(CHAT, None, BEN, T0 + timedelta(hours=2), explicit=True)
    assert not await flows.admits(CHAT, None, ANN, T0 + timedelta(hours=3), explicit=False)
    # After the TTL without an answer, anyone may pick the thread up.
    assert await flows.admits(CHAT, None, ANN, T0 + timedelta(hours=2) + TTL, explicit=False)


async def test_a_cache_miss_reads_the_owner_from_postgres(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    await _conversation(sessionmaker, account_id)
    first = FlowOwnership(sessionmaker, account_id, ttl=TTL)
    assert await first.admits(CHAT, None, BEN, T0, explicit=True)  # Ben takes over
    await _answered_message(sessionmaker, account_id, at=T0)
    # A restarted listener (empty cache) finds Ben's flow, answered an hour ago.
    second = FlowOwnership(sessionmaker, account_id, ttl=TTL)
    assert not await second.admits(CHAT, None, ANN, T0 + timedelta(hours=1), explicit=False)
    assert second.database_reads == 1
    assert await second.admits(CHAT, None, BEN, T0 + timedelta(hours=1), explicit=False)


async def _answered_message(
    sm: async_sessionmaker[AsyncSession], account_id: int, *, at: datetime
) -> None:
    async with sm() as session, session.begin():
        conversation_id = await db_conversations.ensure_conversation(
            session, account_id=account_id, chat_id=CHAT, topic_id=None, owner_user_id=None
        )
        burst_id = (
            await session.execute(
                insert(burst)
                .values(
                    burst_key=f"k-{uuid.uuid4().hex}",
                    conversation_id=conversation_id,
                    message_ids=[1],
                    reason="quiet",
                    status="sent",
                    first_message_at=at,
                    last_message_at=at,
                    flushed_at=at,
                )
                .returning(burst.c.id)
            )
        ).scalar_one()
        await session.execute(
            insert(message).values(
                account_id=account_id,
                chat_id=CHAT,
                message_id=1,
                conversation_id=conversation_id,
                sender_id=BEN,
                text="hi",
                sent_at=at,
                burst_id=burst_id,
            )
        )


async def test_the_cache_is_bounded_and_expires_entries(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: int
) -> None:
    clock = Clock()
    flows = FlowOwnership(
        sessionmaker, account_id, ttl=TTL, max_entries=2, cache_seconds=60, clock=clock
    )
    for chat in (-1, -2, -3):
        await flows.admits(chat, None, ANN, T0, explicit=True)
    reads = flows.database_reads
    await flows.admits(-3, None, ANN, T0, explicit=False)  # cached
    assert flows.database_reads == reads
    await flows.admits(-1, None, ANN, T0, explicit=False)  # evicted: the oldest of three
    assert flows.database_reads == reads + 1
    clock.now = 61
    await flows.admits(-3, None, ANN, T0, explicit=False)  # expired
    assert flows.database_reads == reads + 2
