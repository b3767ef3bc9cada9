"""SQLite through aiosqlite with one hop to its thread per statement.

SQLAlchemy's aiosqlite adapter drives aiosqlite's cursor the way a DBAPI cursor is driven: create it,
execute, fetch the rows, close it, each one a trip to aiosqlite's thread (a queue put, a thread wake-up, a
``call_soon_threadsafe`` back to the loop and a greenlet switch). On SQLite a statement itself takes tens of
microseconds, so the trips cost as much: a lone Telegram follow-up's 7 statements made 26 of them (9 now,
with its commit and the pool's rollback on return; ``bench/bench_lone_intake.py``). Here the whole
statement is one function run in that thread; the adapted cursor then holds its description, rows,
rowcount and lastrowid as SQLAlchemy's own buffered cursor would after its fetch. Everything else
(connecting, commit, rollback, close, terminate, server-side cursors, how errors reach SQLAlchemy) is the
stock adapter's.

It is handed to ``create_async_engine`` as the engine's DBAPI ``module`` (:func:`one_hop_dbapi`), so the
dialect, the URL (``sqlite+aiosqlite:///…``) and everything keyed on them stay as they are.
"""

from __future__ import annotations

import collections
import sqlite3
from typing import Any, NamedTuple

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_


class _Done(NamedTuple):
    description: Any
    rows: list[Any]
    rowcount: int
    lastrowid: int | None


def _statement(connection: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Done:
    """One statement from cursor to close, in aiosqlite's thread (the only thread its connection allows)."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        # After the fetch, as the stock adapter reads them: a RETURNING statement counts its rows as read.
        return _Done(description, rows, cursor.rowcount, cursor.lastrowid)
    finally:
        cursor.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose statement is run whole in one trip; no aiosqlite cursor behind it.

    No mutex either: the stock one keeps another coroutine's statement out from between this one's execute
    and fetch, and here nothing comes between them.
    """

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        """Nothing to close: the statement's cursor was closed in the thread."""

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> None:
        self._run(operation, parameters, False)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> None:
        self._run(operation, seq_of_parameters, True)

    def _run(self, operation: Any, parameters: Any, many: bool) -> None:
        driver: aiosqlite.Connection = self._connection
        try:
            done: _Done = await_(driver._execute(_statement, driver._conn, operation, parameters, many))
        except Exception as error:
            # As the stock cursor: sqlite3's errors go to SQLAlchemy as they are, a closed connection
            # becomes OperationalError.
            self._adapt_connection._handle_exception(error)
        self._description = done.description
        self._rows = collections.deque(done.rows)
        self._rowcount = done.rowcount
        self._lastrowid = done.lastrowid


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneHopCursor


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        creator_fn = kw.pop("async_creator_fn", None)
        if creator_fn:
            connection = creator_fn(*arg, **kw)
        else:
            connection = self.aiosqlite.connect(*arg, **kw)
            # As the stock adapter does: a connection never closed must not keep the process alive.
            connection._thread.daemon = True
        return OneHopConnection(self, await_(connection))


def one_hop_dbapi() -> OneHopDBAPI:
    return OneHopDBAPI(aiosqlite, sqlite3)
