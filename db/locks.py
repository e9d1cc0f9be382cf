"""One listener per account: a Postgres advisory lock held for the listener's lifetime.

An auth key used by two MTProto sessions at once gets the session revoked by Telegram
(AUTH_KEY_DUPLICATED), so a second listener for the same account must refuse to start.
The lock lives on its own connection: if the process dies, Postgres drops the connection
and the lock with it, so a crashed listener never blocks its replacement.

The same holds the other way: when Postgres restarts or fails over, the connection and
the lock are gone, and another process may take the account. So the holder watches its
connection (the driver reports it closed at once; a ping every few seconds catches a
half-open one) and sets ``HeldLock.lost``; the listener then disconnects from Telegram.
The server is told to drop a silent session only after the holder has noticed its own
loss (TCP keepalives at about 11 s against a ping that gives up at about 5 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

# High bits name Lull's listener locks ("LUL"), so they never collide with other users
# of advisory locks in a shared database.
_LISTENER_LOCK_BASE = 0x4C554C << 40


log = logging.getLogger("lull.locks")

PING_EVERY_SECONDS = 2.0
PING_TIMEOUT_SECONDS = 3.0
# The server drops the session of a silent holder after idle + interval × count seconds,
# which must be later than the holder's own ping gives up (PING_EVERY + PING_TIMEOUT).
_KEEPALIVES = ("tcp_keepalives_idle = 5", "tcp_keepalives_interval = 2", "tcp_keepalives_count = 3")


@dataclass
class HeldLock:
    """A held listener lock; ``lost`` is set once it can no longer be trusted."""

    account_id: int
    lost: asyncio.Event = field(default_factory=asyncio.Event)


class AccountLockedError(RuntimeError):
    """Another process already serves this account."""


def listener_lock_key(account_id: int) -> int:
    return _LISTENER_LOCK_BASE | account_id


@contextlib.asynccontextmanager
async def account_listener_lock(
    engine: AsyncEngine,
    account_id: int,
    *,
    owner: str | None = None,
    ping_every: float = PING_EVERY_SECONDS,
    ping_timeout: float = PING_TIMEOUT_SECONDS,
) -> AsyncIterator[HeldLock]:
    """``owner`` names the holder in pg_stat_activity (a fleet replica), so every replica
    can see how many accounts each serves (``lock_census``)."""
    key = listener_lock_key(account_id)
    conn = await engine.connect()
    watcher: asyncio.Task[None] | None = None
    try:
        if owner is not None:
            await _name_session(conn, owner)
        got = (await conn.execute(text("select pg_try_advisory_lock(:key)"), {"key": key})).scalar()
        if not got:
            await conn.commit()
            raise AccountLockedError(
                f"account {account_id} is already served by another listener; refusing to "
                "start a second one (one Telegram session must not be used twice at once)"
            )
        for setting in _KEEPALIVES:  # no effect on a Unix socket, which cannot half-open
            await conn.execute(text(f"set {setting}"))
        await conn.commit()
        held = HeldLock(account_id)
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        raw.add_termination_listener(lambda _conn: _mark_lost(held, "its connection closed"))
        watcher = asyncio.create_task(_watch(conn, held, ping_every, ping_timeout))
        yield held
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        # The lock belongs to the database session, and a pooled connection outlives this
        # block: end the session itself so the lock goes whatever happened (an error or a
        # cancellation mid-way must not leave the account locked until the pool recycles).
        await conn.invalidate()
        await conn.close()


async def _name_session(conn: AsyncConnection, name: str) -> None:
    await conn.execute(text("select set_config('application_name', :n, false)"), {"n": name})
    await conn.commit()


def _mark_lost(held: HeldLock, why: str) -> None:
    if not held.lost.is_set():
        log.critical("the listener lock of account %s is lost: %s", held.account_id, why)
        held.lost.set()


async def _watch(conn: AsyncConnection, held: HeldLock, every: float, patience: float) -> None:
    """Ping the lock's connection until it fails: a half-open connection never closes.
    A ping that hangs is left behind, not cancelled: the driver may wait on a cancelled
    query (it asks the server to cancel it), and the point is to stop waiting."""
    while not held.lost.is_set():
        await asyncio.sleep(every)
        ping = asyncio.ensure_future(_ping(conn))
        done, _ = await asyncio.wait({ping}, timeout=patience)
        if not done:
            ping.add_done_callback(_retrieve)
            _mark_lost(held, f"its connection did not answer within {patience:g} s")
            return
        if ping.exception() is not None:
            _mark_lost(held, f"its connection failed ({type(ping.exception()).__name__})")
            return


async def _ping(conn: AsyncConnection) -> None:
    await conn.execute(text("select 1"))
    await conn.commit()


def _retrieve(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()


# A listener replica holds one of these while it runs, so every replica can count the
# live ones (the accounts' fair share) from pg_locks ("LUR").
_REPLICA_SLOT_BASE = 0x4C5552 << 40
MAX_REPLICAS = 1024
REPLICA_NAME = "lull listener replica {slot}"


@contextlib.asynccontextmanager
async def replica_slot(engine: AsyncEngine) -> AsyncIterator[int]:
    """Hold the lowest free replica slot for the block; yields its number. Like an
    account's lock it dies with the process's connection."""
    conn = await engine.connect()
    try:
        for slot in range(MAX_REPLICAS):
            key = _REPLICA_SLOT_BASE | slot
            got = (await conn.execute(text("select pg_try_advisory_lock(:k)"), {"k": key})).scalar()
            await conn.commit()
            if got:
                await _name_session(conn, REPLICA_NAME.format(slot=slot))
                yield slot
                return
        raise RuntimeError(f"more than {MAX_REPLICAS} listener replicas")
    finally:
        await conn.invalidate()
        await conn.close()


@dataclass(frozen=True)
class LockCensus:
    """Who holds what right now, from pg_locks: the accounts some listener serves, and
    how many accounts each live fleet replica serves (by its name)."""

    served_accounts: frozenset[int]
    load: dict[str, int]

    @property
    def replicas(self) -> int:
        return len(self.load)


def _split(key: int) -> tuple[int, int]:
    """A bigint advisory key as pg_locks shows it: (classid, objid)."""
    return key >> 32, key & 0xFFFFFFFF


async def lock_census(conn: AsyncConnection) -> LockCensus:
    account_class, _ = _split(_LISTENER_LOCK_BASE)
    replica_class, _ = _split(_REPLICA_SLOT_BASE)
    rows = await conn.execute(
        text(
            "select l.classid::bigint as classid, l.objid::bigint as objid, "
            "a.application_name as holder from pg_locks l "
            "left join pg_stat_activity a on a.pid = l.pid "
            "where l.locktype = 'advisory' and l.granted and l.objsubid = 1 "
            "and l.database = (select oid from pg_database where datname = current_database()) "
            "and l.classid::bigint in (:accounts, :replicas)"
        ),
        {"accounts": account_class, "replicas": replica_class},
    )
    served: set[int] = set()
    load: dict[str, int] = {}
    accounts_by_holder: dict[str, int] = {}
    for row in rows:
        if row.classid == replica_class:
            load.setdefault(row.holder or f"replica {row.objid}", 0)
        else:
            # Account ids above 2**32 carry their high bits in classid; none here do.
            served.add(row.objid)
            holder = row.holder or ""
            accounts_by_holder[holder] = accounts_by_holder.get(holder, 0) + 1
    for holder in load:
        load[holder] = accounts_by_holder.get(holder, 0)
    return LockCensus(frozenset(served), load)
