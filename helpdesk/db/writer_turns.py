"""SQLite's one writer, shared fairly inside this process: writers take turns in arrival order.

SQLite lets one connection write at a time; the others wait in its busy handler, which sleeps and polls
(up to 100 ms between tries). A writer that starts again the moment it commits, as group commit does while
messages keep arriving, then wins every time and the delivery worker waits for seconds. Writers that take
a turn here queue first-come first-served instead. PostgreSQL locks rows, not the database: no turns.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

_turns: weakref.WeakKeyDictionary[AsyncEngine, asyncio.Lock] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def writer_turn(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[None]:
    """Hold this process's turn to write to ``sessions``' SQLite database (nothing on PostgreSQL)."""
    engine = sessions.kw.get("bind")
    if not isinstance(engine, AsyncEngine) or engine.dialect.name != "sqlite":
        yield
        return
    turn = _turns.setdefault(engine, asyncio.Lock())
    async with turn:
        yield
