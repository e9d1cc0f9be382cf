"""Flow ownership in groups: a thread the bot answers belongs to the user who started it.

Replies to the bot inside that thread from anyone else are recorded, not answered, until
the thread has gone unanswered for the flow TTL. Mentioning the account or sending a
command is explicit, so it always starts the sender's own flow.

An in-memory cache answers first (bounded, entries expire so a long-lived listener rereads
the database now and then); a miss reads Postgres and refills the cache.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.queries import flows as db_flows
from db.queries.flows import Flow

FlowKey = tuple[int, int | None]  # (chat, topic)


class FlowOwnership:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        account_id: int,
        *,
        ttl: timedelta,
        max_entries: int = 10_000,
        cache_seconds: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._account_id = account_id
        self._ttl = ttl
        self._max_entries = max_entries
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: OrderedDict[FlowKey, tuple[float, Flow]] = OrderedDict()
        self.database_reads = 0  # for tests and metrics: how often the cache missed

    async def admits(
        self, chat_id: int, topic_id: int | None, sender_id: int, at: datetime, *, explicit: bool
    ) -> bool:
        """Whether ``sender_id``'s message at ``at`` may be answered; if so, the flow is
        theirs from now on."""
        key = (chat_id, topic_id)
        flow = self._cached(key) or await self._load(key)
        idle = flow.last_answered_at is None or at - flow.last_answered_at >= self._ttl
        owned_by_other = flow.owner_user_id not in (None, sender_id)
        if owned_by_other and not idle and not explicit:
            return False
        if flow.owner_user_id != sender_id:
            async with self._sessionmaker() as session, session.begin():
                await db_flows.set_flow_owner(
                    session,
                    account_id=self._account_id,
                    chat_id=chat_id,
                    topic_id=topic_id,
                    owner_user_id=sender_id,
                )
        self._store(key, Flow(sender_id, at))
        return True

    def _cached(self, key: FlowKey) -> Flow | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        stored_at, flow = entry
        if self._clock() - stored_at > self._cache_seconds:
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        return flow

    async def _load(self, key: FlowKey) -> Flow:
        self.database_reads += 1
        async with self._sessionmaker() as session:
            flow = await db_flows.load_flow(
                session, account_id=self._account_id, chat_id=key[0], topic_id=key[1]
            )
        self._store(key, flow)
        return flow

    def _store(self, key: FlowKey, flow: Flow) -> None:
        self._cache[key] = (self._clock(), flow)
        self._cache.move_to_end(key)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)
