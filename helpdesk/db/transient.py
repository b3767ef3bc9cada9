"""Which database errors a reconnect cures, decided once for every channel, and retrying on them.

A restart, a failover or a cut connection surfaces in many shapes: SQLAlchemy's OperationalError or
InterfaceError, a DBAPIError whose connection was invalidated, asyncpg's own connection errors (some of them,
like ``InternalClientError: cannot switch to state 15`` after a connection died mid-protocol, not wrapped at
all), or a bare OSError from the socket. Telegram and email intake must agree on what is worth another
attempt, so both ask :func:`is_transient`.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TypeVar

import asyncpg
from sqlalchemy import exc as sa_exc

log = logging.getLogger(__name__)

T = TypeVar("T")

_SQLITE_TRANSIENT = ("locked", "busy", "unable to open", "disk i/o error")
_SQLALCHEMY = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,  # the pool had no connection to give: the database is slow or away
)
_ASYNCPG = (
    asyncpg.exceptions.PostgresConnectionError,  # ConnectionDoesNotExistError, ConnectionFailureError…
    asyncpg.exceptions.CannotConnectNowError,  # "the database system is starting up / shutting down"
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InterfaceError,  # "connection is closed", "another operation is in progress"
    asyncpg.exceptions.InternalClientError,  # "cannot switch to state N": the protocol died mid-way
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps (SQLAlchemy's ``.orig``, ``__cause__``, ``__context__``), each once."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for inner in (getattr(current, "orig", None), current.__cause__, current.__context__):
            if isinstance(inner, BaseException):
                todo.append(inner)


def is_transient(exc: BaseException) -> bool:
    """True when the error says the database was unreachable, not that the work itself is wrong.

    A unique-key clash, a constraint, a bad value or a bug in our SQL is not transient: retrying it
    would fail the same way.
    """
    chain = list(_chain(exc))
    for error in chain:
        if isinstance(error, sa_exc.IntegrityError):
            return False
        if isinstance(error, sqlite3.Error):
            # SQLite says OperationalError for a busy file and for "no such column" alike: read the message.
            return isinstance(error, sqlite3.OperationalError) and any(
                sign in str(error).lower() for sign in _SQLITE_TRANSIENT
            )
    for error in chain:
        if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
            return True
        if isinstance(error, (*_SQLALCHEMY, *_ASYNCPG, OSError, TimeoutError)):
            return True
        if "cannot switch to state" in str(error):  # asyncpg's protocol, re-wrapped by a driver shim
            return True
    return False


async def retrying(
    operation: Callable[[], Awaitable[T]],
    delays: Sequence[float],
    *,
    what: str,
    once_more_on: tuple[type[BaseException], ...] = (),
) -> T:
    """``await operation()``, again after each of ``delays`` while it fails transiently.

    ``once_more_on`` errors get one more attempt only (e.g. a unique-key clash with another process
    taking the same message: the retry then finds it stored). The last error is raised.
    """
    for attempt, delay in enumerate((*delays, None)):
        try:
            return await operation()
        except Exception as exc:
            again = is_transient(exc) or (attempt == 0 and isinstance(exc, once_more_on))
            if delay is None or not again:
                raise
            log.warning("%s failed (%s); retrying in %.1f s", what, type(exc).__name__, delay)
        await asyncio.sleep(delay)
    raise AssertionError("unreachable")
