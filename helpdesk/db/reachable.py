"""Can the database named by HELPDESK_DATABASE_URL be used? When not, one line says why.

Every command that opens the database goes through `ensure_database` (via `open_runtime`, `db upgrade`,
`health`), so a wrong URL reads as "HELPDESK_DATABASE_URL: no database 'x' on 127.0.0.1:5432" instead of a
driver traceback. `describe` is the one place that turns a driver's exception into that line; it never
repeats the URL, so the password in it cannot leak.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from helpdesk.db.engine import make_engine

VARIABLE = "HELPDESK_DATABASE_URL"
FIRST_STEP = "run `helpdesk db upgrade` or `helpdesk demo` first"


class DatabaseUnavailable(Exception):
    """The configured database cannot be used; the message is one line, fit to print as it is."""


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for PostgreSQL or an in-memory database)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def missing_database(path: Path) -> str:
    return f"no database at {path} ({FIRST_STEP}, or point {VARIABLE} at one)"


def describe(exc: BaseException, url: str) -> str:
    """One line naming HELPDESK_DATABASE_URL and what is wrong, for an exception raised while connecting."""
    parsed = make_url(url)
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    path = sqlite_path(url)
    for cause in _causes(exc):
        if isinstance(cause, asyncpg.InvalidCatalogNameError):
            return f"{VARIABLE}: no database {parsed.database!r} on {where}"
        if isinstance(cause, asyncpg.InvalidPasswordError):
            return f"{VARIABLE}: authentication failed for user {parsed.username!r} on {where}"
        if isinstance(cause, asyncpg.InvalidAuthorizationSpecificationError):
            # "role x does not exist", or pg_hba.conf turning this client away.
            return f"{VARIABLE}: {where} refused user {parsed.username!r}: {_first_line(cause)}"
        if isinstance(cause, ConnectionRefusedError):
            return f"{VARIABLE}: connection refused at {where} (is PostgreSQL running there?)"
        if isinstance(cause, socket.gaierror):
            return f"{VARIABLE}: unknown host {parsed.host!r}"
        if isinstance(cause, TimeoutError):
            return f"{VARIABLE}: no answer from {where}"
        if isinstance(cause, sqlite3.Error) and path is not None:
            return f"{VARIABLE}: SQLite file {path}: {_first_line(cause)}"
        if isinstance(cause, OSError):
            return f"{VARIABLE}: cannot reach {where}: {cause.strerror or _first_line(cause)}"
    line = f"{VARIABLE}: {type(exc).__name__}: {_first_line(exc)}"
    return line.replace(parsed.password, "***") if parsed.password else line


async def ensure_database(url: str, *, create: bool) -> None:
    """Raise DatabaseUnavailable unless `url` can be connected to.

    A SQLite file that does not exist yet is created only when `create` (run, demo, db upgrade): a command
    that only reads must not leave an empty helpdesk.db behind.
    """
    path = sqlite_path(url)
    if path is not None:
        problem = await asyncio.to_thread(_sqlite_file_problem, path, create)
        if problem is not None:
            raise DatabaseUnavailable(problem)
    engine = make_engine(url)
    try:
        async with engine.connect():
            pass
    except Exception as exc:
        raise DatabaseUnavailable(describe(exc, url)) from None
    finally:
        await engine.dispose()


def _sqlite_file_problem(path: Path, create: bool) -> str | None:
    if path.exists():
        return None
    if not create:
        return missing_database(path)
    folder = path.parent
    if not folder.is_dir():
        return f"{VARIABLE}: folder {folder} does not exist (for SQLite file {path.name})"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{VARIABLE}: folder {folder} is not writable (for SQLite file {path.name})"
    return None


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
