"""A listener fleet: every enabled Telegram account served by one of the `lull ingest`
replicas running, with no supervisor but Postgres.

Each replica holds a replica slot (an advisory lock), so each can count the live ones,
and serves an account only while it holds that account's listener lock. Every round
(``poll_seconds``) a replica reads the accounts to serve and the locks held
(``pg_locks``), and claims an account no one serves:

- at once while it serves fewer than its fair share (accounts / replicas, rounded up),
  so replicas started together split the accounts;
- after ``claim_after_seconds`` unserved in any case, so an account left by a replica
  that died is taken within seconds even when the fair shares are uneven.

A replica that serves two or more accounts more than the least loaded replica (the first
one up took them all) hands one over per round: it drains that account and stops serving
it, and the other, under its share, takes it at its next round. Each replica names its
connections in ``pg_stat_activity``, which is how each sees the others' load.

An account stops being served when it is disabled or deleted (drained like a SIGTERM),
when its lock is lost, or when its listener fails: the error is recorded on the account
(``last_error``, shown by the API) and it is tried again after ``retry_seconds``,
doubling; a revoked session waits for the account to change (a new token, a login).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db.locks import (
    REPLICA_NAME,
    AccountLockedError,
    HeldLock,
    account_listener_lock,
    lock_census,
    replica_slot,
)
from db.queries import bots as db_bots

log = logging.getLogger("lull.fleet")

# serve(account row, its held lock, a stop event for it) -> an exit status (ingest.py's).
ServeAccount = Callable[[Any, HeldLock, asyncio.Event], Awaitable[int]]
# Exit statuses with a meaning here (ingest.py's).
EXIT_SESSION_DEAD = 3
EXIT_LOCK_LOST = 4


@dataclass
class _Served:
    task: asyncio.Task[int]
    stop: asyncio.Event
    updated_at: datetime
    since: float
    # Set once the account's lock is held: until then another replica may hold it.
    locked: bool = False


@dataclass
class _Backoff:
    until: float
    seconds: float
    # A revoked session is not retried until the account changes.
    updated_at: datetime | None = None


@dataclass
class ListenerFleet:
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    serve_account: ServeAccount
    poll_seconds: float = 2.0
    claim_after_seconds: float = 6.0
    retry_seconds: float = 10.0
    max_retry_seconds: float = 300.0
    served: dict[int, _Served] = field(default_factory=dict)
    _backoff: dict[int, _Backoff] = field(default_factory=dict)
    _unserved_since: dict[int, float] = field(default_factory=dict)
    slot: int | None = None

    @property
    def serving(self) -> set[int]:
        """The accounts this replica serves now: their lock held, their listener running."""
        return {
            account_id for account_id, s in self.served.items() if s.locked and not s.task.done()
        }

    def _claimed(self) -> int:
        """Accounts taken or being taken (a claim may still lose the lock's race)."""
        return sum(1 for s in self.served.values() if not s.task.done())

    async def run(self, stop: asyncio.Event) -> None:
        async with replica_slot(self.engine) as slot:
            self.slot = slot
            log.info("listener replica %s up", slot)
            try:
                while not stop.is_set():
                    try:
                        await self._round()
                    except Exception as exc:  # Postgres down: the next round tries again
                        log.warning("fleet round skipped: %s", type(exc).__name__)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.poll_seconds)
            finally:
                await self._stop_all()

    async def _round(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        await self._reap(now)
        async with self.sessionmaker() as session:
            accounts = await db_bots.listenable_accounts(session)
        async with self.engine.connect() as conn:
            census = await lock_census(conn)
            await conn.commit()
        share = math.ceil(len(accounts) / max(census.replicas, 1))
        self._hand_over_one(census.load, now)
        wanted = {row.id for row in accounts}
        for account_id in list(self._unserved_since):
            if account_id not in wanted or account_id in census.served_accounts:
                del self._unserved_since[account_id]
        for row in accounts:
            if row.id in self.served or row.id in census.served_accounts:
                continue
            since = self._unserved_since.setdefault(row.id, now)
            backoff = self._backoff.get(row.id)
            if backoff is not None:
                if backoff.updated_at is not None and backoff.updated_at == row.updated_at:
                    continue  # revoked session: wait for a change of the account
                if backoff.updated_at is None and now < backoff.until:
                    continue
            if self._claimed() >= share and now - since < self.claim_after_seconds:
                continue  # another replica's share, unless it stays unserved
            self._start(row)

    def _hand_over_one(self, load: dict[str, int], now: float) -> None:
        """Stop serving one account if another replica serves two or more fewer, so the
        replicas even out; one at a time, never one just taken, never while one drains."""
        mine = self.serving
        others = [n for name, n in load.items() if name != self._name]
        if not others or len(mine) - min(others) < 2:
            return
        if any(s.stop.is_set() for s in self.served.values() if not s.task.done()):
            return  # a hand-over is draining
        settled = [
            (s.since, account_id)
            for account_id, s in self.served.items()
            if account_id in mine and now - s.since >= self.claim_after_seconds
        ]
        if settled:
            _, account_id = max(settled)
            log.info("replica %s hands account %s over to a less loaded one", self.slot, account_id)
            self.served[account_id].stop.set()

    @property
    def _name(self) -> str:
        return REPLICA_NAME.format(slot=self.slot)

    def _start(self, row: Any) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(self._serve_locked(row, stop), name=f"listener {row.key}")
        now = asyncio.get_running_loop().time()
        self.served[row.id] = _Served(task, stop, row.updated_at, now)

    async def _serve_locked(self, row: Any, stop: asyncio.Event) -> int:
        async with account_listener_lock(self.engine, row.id, owner=self._name) as lock:
            self.served[row.id].locked = True
            log.info("replica %s serves account %s", self.slot, row.key)
            return await self.serve_account(row, lock, stop)

    async def _reap(self, now: float) -> None:
        """Forget finished listeners, recording why each stopped."""
        for account_id, served in list(self.served.items()):
            if not served.task.done():
                continue
            del self.served[account_id]
            error = self._outcome(account_id, served, now)
            with contextlib.suppress(Exception):
                async with self.sessionmaker() as session, session.begin():
                    await db_bots.set_last_error(session, account_id, error)

    def _outcome(self, account_id: int, served: _Served, now: float) -> str | None:
        task = served.task
        previous = self._backoff.get(account_id)
        seconds = min(previous.seconds * 2, self.max_retry_seconds) if previous else None
        seconds = seconds or self.retry_seconds
        if task.cancelled():
            return None
        exc = task.exception()
        if isinstance(exc, AccountLockedError):
            return None  # another replica took it between the census and the lock
        if exc is not None:
            log.error("account %s: listener failed: %s", account_id, exc)
            self._backoff[account_id] = _Backoff(now + seconds, seconds)
            return f"{type(exc).__name__}: {exc}"[:2000]
        code = task.result()
        if code == 0 or code == EXIT_LOCK_LOST:
            self._backoff.pop(account_id, None)
            return None
        if code == EXIT_SESSION_DEAD:
            self._backoff[account_id] = _Backoff(now, seconds, updated_at=served.updated_at)
            return "Telegram revoked the session: set a new bot token, or `lull login` again"
        self._backoff[account_id] = _Backoff(now + seconds, seconds)
        return "the Telegram connection ended; retrying"

    async def _stop_all(self) -> None:
        """Drain every account's listener, as a SIGTERM drains one."""
        for served in self.served.values():
            served.stop.set()
        tasks = [s.task for s in self.served.values()]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
