"""Where `helpdesk demo` keeps its tickets, and the rule that keeps it off every other database.

The demo's database is the SQLite file `helpdesk.db` in the working folder (or `--dir`), the file the
staff commands read by default, so `helpdesk tickets list` after the demo shows the demo's tickets.
The demo writes only into a file it made itself, which it marks in the SQLite header (application_id).
Any other file at that place, even an empty database (a deployment's fresh `helpdesk db upgrade`), is
left alone. A file the demo made is replaced on the next run: the stand-ins start afresh each time
(their Telegram message numbers would collide with the stored ones), and a demo should show the same
four tickets every time.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

from helpdesk.db.reachable import DatabaseUnavailable

DEMO_FILE = "helpdesk.db"
# "TSCd": written into the SQLite header of a database `helpdesk demo` created.
DEMO_APPLICATION_ID = 0x54534364


async def claim_demo_database(directory: Path) -> tuple[Path, bool]:
    """Make DIRECTORY/helpdesk.db an empty demo database: its absolute path, and whether it replaced an
    earlier demo's. Raises DatabaseUnavailable, leaving the file untouched, when something else is there.
    """
    return await asyncio.to_thread(_claim, directory)


def _claim(directory: Path) -> tuple[Path, bool]:
    path = directory.absolute() / DEMO_FILE
    directory.mkdir(parents=True, exist_ok=True)
    replaced = False
    if path.exists():
        if _application_id(path) != DEMO_APPLICATION_ID:
            raise DatabaseUnavailable(
                f"{path} was not made by `helpdesk demo`, so the demo leaves it alone: "
                "run the demo in another folder, or with --dir DIR"
            )
        for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            stale.unlink(missing_ok=True)
        replaced = True
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute(f"PRAGMA application_id = {DEMO_APPLICATION_ID}")
        connection.commit()
    return path, replaced


def _application_id(path: Path) -> int | None:
    # Read from the file header rather than through SQLite: opening someone else's WAL database, even
    # read-only, would leave -wal and -shm files beside it.
    with path.open("rb") as file:
        header = file.read(100)
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        return None  # not a SQLite database at all: certainly not the demo's
    return int.from_bytes(header[68:72], "big")
