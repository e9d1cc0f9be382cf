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
    ping_every: float = PING_EVERY_SECONDS,
    ping_timeout: float = PING_TIMEOUT_SECONDS,
) -> AsyncIterator[HeldLock]:
    key = listener_lock_key(account_id)
    conn = await engine.connect()
    watcher: asyncio.Task[None] | None = None
    try:
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
