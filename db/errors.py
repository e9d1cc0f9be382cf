"""What a database error means, and how to name it without leaking what it carried.

A driver's message can quote the values of a statement (asyncpg: "invalid input for query
argument $2: 'the user's text'"), and SQLAlchemy's adds the statement's parameters, so
an error is described by its type and SQLSTATE only. The engine also hides parameters
(db/engine.py); this covers what the driver writes itself.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator

import asyncpg
from sqlalchemy import exc as sa_exc

# Postgres is down, restarting, refusing connections or dropped ours: waiting helps.
_UNAVAILABLE = (
    OSError,  # refused, reset, or the Unix socket gone while the server restarts
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.exceptions.OperatorInterventionError,  # 57P01-03: shutdown, crash, starting
    asyncpg.exceptions.InsufficientResourcesError,  # 53: too many connections, disk full
    asyncpg.InterfaceError,  # "connection is closed" after the server went away
    TimeoutError,
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, the driver errors SQLAlchemy wraps (``.orig``) and their causes."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for nxt in (getattr(current, "orig", None), current.__cause__, current.__context__):
            if isinstance(nxt, BaseException):
                todo.append(nxt)


def is_database_error(exc: BaseException) -> bool:
    return any(isinstance(e, sa_exc.SQLAlchemyError | asyncpg.PostgresError) for e in _chain(exc))


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says Postgres could not be reached (rather than refusing a statement)."""
    for e in _chain(exc):
        if isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated:
            return True
        if isinstance(e, _UNAVAILABLE):
            return True
    return False


def describe_database_error(exc: BaseException) -> str:
    """A one-line name for a database error that quotes nothing it carried: the driver's
    error type and SQLSTATE (``NumericValueOutOfRangeError (SQLSTATE 22003)``)."""
    driver = next((e for e in _chain(exc) if isinstance(e, asyncpg.PostgresError)), None)
    if driver is not None:
        return f"{type(driver).__name__} (SQLSTATE {driver.sqlstate})"
    innermost = list(_chain(exc))[-1]
    if database_unavailable(exc):
        return f"Postgres unreachable ({type(innermost).__name__})"
    return type(innermost).__name__


def from_the_database(exc: BaseException) -> bool:
    """Whether ``exc`` came from talking to Postgres: a database error, or an OS error the
    driver raised connecting (a missing socket is a bare FileNotFoundError)."""
    if is_database_error(exc):
        return True
    frames = traceback.extract_tb(exc.__traceback__)
    return isinstance(exc, OSError) and any("/asyncpg/" in f.filename for f in frames)
