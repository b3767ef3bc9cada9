"""The SQLite driver module (helpdesk.db.sqlite_driver) on a real file: a statement costs one trip to
aiosqlite's thread, results come back as SQLAlchemy expects them, and sqlite3's errors still become
SQLAlchemy's IntegrityError and OperationalError (what helpdesk.db.transient reads)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from helpdesk.db.engine import make_engine
from helpdesk.db.transient import is_transient

metadata = MetaData()
notes = Table(
    "driver_notes", metadata, Column("id", Integer, primary_key=True), Column("body", String, unique=True)
)


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


@contextmanager
def trips(driver: Any) -> Iterator[list[Callable[..., Any]]]:
    """The functions queued to aiosqlite's thread for ``driver`` (one aiosqlite connection) meanwhile."""
    queued: list[Callable[..., Any]] = []
    original = driver._execute

    async def counted(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        queued.append(function)
        return await original(function, *args, **kwargs)

    driver._execute = counted
    try:
        yield queued
    finally:
        del driver._execute


async def _driver(connection: AsyncConnection) -> Any:
    return (await connection.get_raw_connection()).driver_connection


async def test_a_statement_is_one_trip_to_the_drivers_thread(sqlite_engine: AsyncEngine) -> None:
    async with sqlite_engine.connect() as connection:
        driver = await _driver(connection)
        with trips(driver) as queued:
            await connection.exec_driver_sql("BEGIN IMMEDIATE")
        assert len(queued) == 1
        with trips(driver) as queued:
            inserted = await connection.execute(insert(notes).values(body="first").returning(notes.c.id))
            first = inserted.scalar_one()
        assert len(queued) == 1
        with trips(driver) as queued:
            plain = await connection.execute(insert(notes).values(body="second"))
        assert len(queued) == 1
        assert plain.rowcount == 1 and plain.inserted_primary_key == (first + 1,)
        with trips(driver) as queued:
            # Several rows with RETURNING: SQLAlchemy's "insertmanyvalues", one batched statement.
            returned = await connection.execute(
                insert(notes).returning(notes.c.body), [{"body": "third"}, {"body": "fourth"}]
            )
            assert sorted(returned.scalars().all()) == ["fourth", "third"]
        assert len(queued) == 1
        with trips(driver) as queued:
            many = await connection.execute(insert(notes), [{"body": "fifth"}, {"body": "sixth"}])
        assert len(queued) == 1 and many.rowcount == 2
        with trips(driver) as queued:
            rows = (await connection.execute(select(notes.c.body).order_by(notes.c.id))).scalars().all()
        assert len(queued) == 1
        assert rows == ["first", "second", "third", "fourth", "fifth", "sixth"]
        with trips(driver) as queued:
            await connection.commit()
        assert len(queued) == 1


async def test_sqlite_errors_reach_sqlalchemy_as_before(sqlite_engine: AsyncEngine) -> None:
    async with sqlite_engine.begin() as connection:
        await connection.execute(insert(notes).values(body="taken"))
    with pytest.raises(IntegrityError) as clash:
        async with sqlite_engine.begin() as connection:
            await connection.execute(insert(notes).values(body="taken"))
    assert isinstance(clash.value.orig, sqlite3.IntegrityError) and not is_transient(clash.value)

    async with sqlite_engine.connect() as holder, sqlite_engine.connect() as waiter:
        await holder.exec_driver_sql("BEGIN IMMEDIATE")
        # Not the desk's 30 s: the lock is certain to be held, so fail at once.
        await waiter.exec_driver_sql("PRAGMA busy_timeout=0")
        with pytest.raises(OperationalError, match="database is locked") as locked:
            await waiter.exec_driver_sql("BEGIN IMMEDIATE")
        assert isinstance(locked.value.orig, sqlite3.OperationalError) and is_transient(locked.value)
        await waiter.rollback()
        await holder.rollback()
        # The refused connection is still good for work once the lock is gone.
        await waiter.exec_driver_sql("PRAGMA busy_timeout=30000")
        await waiter.execute(text("INSERT INTO driver_notes (body) VALUES ('after')"))
        await waiter.commit()
    async with sqlite_engine.connect() as connection:
        assert (await connection.execute(select(notes.c.body).order_by(notes.c.id))).scalars().all() == [
            "taken",
            "after",
        ]
