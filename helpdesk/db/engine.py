"""Engine and session factory for SQLite (embedded default) and PostgreSQL (production)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession

from helpdesk.db.sqlite_driver import one_hop_dbapi


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if url.startswith("sqlite"):
        # The service, the CLI and the worker share the file: wait on a lock rather than fail at once.
        # The driver module runs each statement in one trip to aiosqlite's thread (sqlite_driver).
        engine = create_async_engine(url, connect_args={"timeout": 30}, module=one_hop_dbapi(), **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    # No pre-ping: it costs a round trip per transaction. A connection the server dropped (a restart, a
    # failover) fails its first statement instead; SQLAlchemy then discards the whole pool, and the callers
    # that must not lose work retry on that error (helpdesk.db.transient: intake, the spool, the worker).
    return create_async_engine(url, **kwargs)


def make_sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
