"""What a reconnect cures, classified from real failures: a database that is not there, a connection cut by
the server mid-session (PostgreSQL terminates the backend), and what must NOT be retried (a unique-key
clash, a bad statement)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from helpdesk.db.engine import make_engine
from helpdesk.db.transient import is_transient, retrying
from standins.ports import free_port


async def _raised(engine: AsyncEngine, sql: str) -> BaseException:
    try:
        async with engine.begin() as connection:
            await connection.execute(text(sql))
    except Exception as exc:
        return exc
    raise AssertionError(f"{sql!r} did not fail")


async def test_postgresql_not_listening_is_transient() -> None:
    engine = make_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nowhere")
    try:
        error = await _raised(engine, "SELECT 1")
    finally:
        await engine.dispose()
    assert is_transient(error), repr(error)


async def test_sqlite_file_unreachable_is_transient(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'helpdesk.db'}")
    try:
        error = await _raised(engine, "SELECT 1")
    finally:
        await engine.dispose()
        # aiosqlite stops the worker thread of a failed connect without awaiting it: the thread answers that
        # stop on this loop later, and raises in its thread once pytest has closed the loop. Wait for it here.
        for thread in set(threading.enumerate()) - before:
            await asyncio.to_thread(thread.join, 10)
    assert is_transient(error), repr(error)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_connection_cut_by_the_server_is_transient(engine: AsyncEngine, database_url: str) -> None:
    database = database_url.rsplit("/", 1)[1]
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
        admin = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://", 1))
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                database,
            )
        finally:
            await admin.close()
        with pytest.raises(Exception) as cut:
            await connection.execute(text("SELECT 1"))
    assert is_transient(cut.value), repr(cut.value)


async def test_bare_asyncpg_connection_errors_are_transient() -> None:
    # asyncpg raises these itself, not always wrapped by SQLAlchemy (the lost message was one).
    stuck = asyncpg.exceptions.InternalClientError(
        "cannot switch to state 15; another operation (1) is in progress"
    )
    assert is_transient(stuck)
    assert is_transient(
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation")
    )
    assert is_transient(asyncpg.exceptions.CannotConnectNowError("the database system is starting up"))
    assert is_transient(ConnectionRefusedError(111, "Connection refused"))
    # Wrapped the way a driver shim re-raises it.
    try:
        try:
            raise stuck
        except Exception as inner:
            raise RuntimeError("shim") from inner
    except RuntimeError as outer:
        assert is_transient(outer)


async def test_unique_clash_and_bad_sql_are_not_transient(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE IF NOT EXISTS transient_probe (id INTEGER PRIMARY KEY)"))
        await connection.execute(text("DELETE FROM transient_probe"))
        await connection.execute(text("INSERT INTO transient_probe (id) VALUES (1)"))
    try:
        clash = await _raised(engine, "INSERT INTO transient_probe (id) VALUES (1)")
        assert isinstance(clash, IntegrityError) and not is_transient(clash)
        bad = await _raised(engine, "SELECT no_such_column FROM transient_probe")
        assert not is_transient(bad), repr(bad)
        assert not is_transient(ValueError("a bug of ours"))
    finally:
        async with engine.begin() as connection:
            await connection.execute(text("DROP TABLE transient_probe"))


async def test_retrying_rides_out_transient_errors_and_gives_up_on_others() -> None:
    attempts: list[int] = []

    async def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise asyncpg.exceptions.ConnectionDoesNotExistError("cut")
        return "stored"

    assert await retrying(flaky, (0.01, 0.01, 0.01), what="probe") == "stored"
    assert len(attempts) == 3

    async def broken() -> str:
        attempts.append(1)
        raise ValueError("not a database hiccup")

    attempts.clear()
    with pytest.raises(ValueError):
        await retrying(broken, (0.01, 0.01), what="probe")
    assert len(attempts) == 1

    async def down() -> str:
        attempts.append(1)
        raise OSError("unreachable")

    attempts.clear()
    with pytest.raises(OSError):
        await asyncio.wait_for(retrying(down, (0.01, 0.01), what="probe"), 5)
    assert len(attempts) == 3
