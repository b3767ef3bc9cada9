"""A lone Telegram follow-up's intake transaction beside the same statements through the bare driver.

Not a test. Run: .venv/bin/python bench/bench_lone_intake.py [--messages 200] [--databases sqlite postgresql]
    [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

The desk side: ``helpdesk.usecases.take.take_together`` with one message (the Telegram group commit's lone
case), a follow-up on the chat's open ticket after 20 earlier messages, on a fresh migrated database; no
delivery worker, no PTB. The bare side: on another fresh database of the same schema, one transaction of the
statements a follow-up cost before this path was cut (the first look-ups, the chat's open tickets, the
receipt count, the ticket's UPDATE, the audit, message and outbox INSERTs, the card queue read) through
asyncpg or aiosqlite directly (WAL, the same file settings as the desk). Wall and CPU medians per message;
one JSON line per database: {"bench": "lone_intake", "database", "messages", "desk_wall_ms",
"desk_cpu_ms", "desk_statements", "desk_trips", "bare_wall_ms", "bare_cpu_ms", "bare_statements",
"wall_ratio"}; ``desk_trips``, on SQLite, is the calls queued to aiosqlite's thread per message (statements,
commit, the pool's rollback on return), each a thread wake-up and a call back to the loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiosqlite
import asyncpg
from bench_telegram import TEXT, fresh_database
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from helpdesk.db.engine import make_engine, make_sessions
from helpdesk.desk import Desk
from helpdesk.flood import FloodLimits
from helpdesk.messages import InboundMessage, Sender
from helpdesk.service import standard_composers
from helpdesk.usecases.take import take_together

CHAT = 900_000
WARM_UP = 20

_FIRST = (
    "SELECT (SELECT ticket_id FROM messages"
    " WHERE channel = 'telegram' AND channel_message_id = {p1} LIMIT 1),"
    " (SELECT token FROM pending_choices WHERE telegram_user_id = {p2} AND telegram_chat_id = {p3} LIMIT 1),"
    " (SELECT id FROM referrals"
    " WHERE channel = 'telegram' AND recipient = {p4} AND state = 'offered' LIMIT 1)"
)
_TICKETS = (
    "SELECT t.*, r.* FROM tickets t JOIN requesters r ON r.id = t.requester_id"
    " WHERE r.telegram_chat_id = {p1} AND t.status IN ('new', 'open', 'waiting')"
)
_RECEIPTS = (
    "SELECT count(*) FROM messages WHERE ticket_id = {p1} AND kind = 'outbound' AND channel = 'telegram'"
    " AND automatic AND created_at >= {since}"
)
_TOUCH = "UPDATE tickets SET updated_at = {now} WHERE id = {p1}"
_AUDIT = (
    "INSERT INTO audit_events (ticket_id, actor, action, detail, created_at)"
    " VALUES ({p1}, 'telegram', 'received', '{{}}', {now}) RETURNING id"
)
_MESSAGE = (
    "INSERT INTO messages (ticket_id, kind, channel, author, body, channel_message_id, automatic, unverified,"
    " created_at) VALUES ({p1}, 'inbound', 'telegram', 'A', {p2}, {p3}, false, false, {now}) RETURNING id"
)
_OUTBOX = (
    "INSERT INTO outbox (ticket_id, message_id, channel, payload, status, attempts, next_attempt_at,"
    " created_at)"
    " VALUES ({p1}, {p2}, 'telegram', '{{}}', 'pending', 0, {now}, {now}) RETURNING id"
)
_CARD = (
    "SELECT (SELECT id FROM outbox WHERE ticket_id = {p1} AND message_id IS NULL AND channel = 'telegram'"
    " AND status = 'pending' ORDER BY id DESC LIMIT 1)"
)
BARE_STATEMENTS = 8


def inbound(n: int) -> InboundMessage:
    sender = Sender(name="A B", telegram_user_id=CHAT, telegram_chat_id=CHAT, language="en")
    return InboundMessage(
        channel="telegram",
        channel_message_id=f"{CHAT}:{n}",
        sender=sender,
        text=TEXT.format(n=n),
        received_at=datetime.now(UTC),
    )


async def timed(n: int, one: Callable[[int], Awaitable[Any]]) -> tuple[float, float]:
    walls, cpus = [], []
    for i in range(WARM_UP, WARM_UP + n):
        wall, cpu = time.perf_counter(), time.process_time()
        await one(i)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls) * 1000, statistics.median(cpus) * 1000


def count_trips(engine: AsyncEngine, trips: list[int]) -> None:
    """Count into ``trips`` the calls each new SQLite connection queues to aiosqlite's thread."""

    @event.listens_for(engine.sync_engine, "connect")
    def _counted(dbapi_connection: Any, _record: Any) -> None:
        driver = dbapi_connection.driver_connection
        queue = driver._execute

        async def counted(*args: Any, **kwargs: Any) -> Any:
            trips.append(1)
            return await queue(*args, **kwargs)

        driver._execute = counted


async def desk_side(url: str, n: int) -> tuple[float, float, float, float | None]:
    engine = make_engine(url)
    statements: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    trips: list[int] = []
    if engine.dialect.name == "sqlite":
        count_trips(engine, trips)
    desk = Desk(
        sessions=make_sessions(engine),
        outbox_written=lambda: None,
        staff_telegram_chat_id=-100777,
        limits=FloodLimits(receipts_per_minute=100_000),
        composers=standard_composers(),
    )
    try:
        for i in range(WARM_UP):
            await take_together(desk, [inbound(i)])
        statements.clear()
        trips.clear()
        wall, cpu = await timed(n, lambda i: take_together(desk, [inbound(i)]))
        return wall, cpu, len(statements) / n, (len(trips) / n if engine.dialect.name == "sqlite" else None)
    finally:
        await engine.dispose()


@asynccontextmanager
async def bare_store(url: str) -> AsyncIterator[Callable[[int], Awaitable[None]]]:
    """``one(i)``: the ``i``-th lone follow-up's transaction through the bare driver (asyncpg or aiosqlite,
    by ``url``) on one connection, the chat's requester and open ticket written first. Also the store of
    ``bench_telegram.py --bare-store``'s bot."""
    if url.startswith("sqlite"):
        async with _bare_sqlite(url) as one:
            yield one
        return
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        ticket = await _bare_ticket(connection.fetchval, ("$1", "$2"), "now()")
        sql = {
            k: v.format(p1="$1", p2="$2", p3="$3", p4="$4", now="now()", since="now() - interval '1 hour'")
            for k, v in _SQL.items()
        }

        async def one(i: int) -> None:
            async with connection.transaction():
                await connection.fetchrow(sql["first"], f"{CHAT}:{i}", CHAT, CHAT, str(CHAT))
                await connection.fetch(sql["tickets"], CHAT)
                await connection.fetchval(sql["receipts"], ticket)
                await connection.execute(sql["touch"], ticket)
                await connection.fetchval(sql["audit"], ticket)
                message = await connection.fetchval(sql["message"], ticket, TEXT, f"{CHAT}:{i}")
                await connection.fetchval(sql["outbox"], ticket, message)
                await connection.fetchrow(sql["card"], ticket)

        yield one
    finally:
        await connection.close()


# What the desk sends for a lone follow-up now (``desk_statements``: the first read, the ticket's UPDATE, the
# message, audit and outbox INSERTs), as plain text statements.
CORE_STATEMENTS = ("first", "touch", "message", "audit", "outbox")


@asynccontextmanager
async def core_store(url: str) -> AsyncIterator[Callable[[int], Awaitable[None]]]:
    """``one(i)``: the desk's own statements of the ``i``-th lone follow-up (``CORE_STATEMENTS``), sent
    through SQLAlchemy Core on the desk's engine (``make_engine``: its pool, its SQLite driver and file
    settings), one transaction each: no ORM and none of the desk's rules, only the library the design card
    names. The floor of a bot storing each message with SQLAlchemy (``bench_telegram.py --bare-store``)."""
    engine = make_engine(url)
    now = "CURRENT_TIMESTAMP"
    sql = {
        k: text(_SQL[k].format(p1=":p1", p2=":p2", p3=":p3", p4=":p4", now=now, since=now))
        for k in CORE_STATEMENTS
    }
    try:
        async with engine.begin() as connection:

            async def value(statement: str, *params: Any) -> Any:
                bound = dict(zip(("a", "b"), params, strict=False))
                return (await connection.execute(text(statement), bound)).scalar()

            ticket = await _bare_ticket(value, (":a", ":b"), now)

        async def one(i: int) -> None:
            async with engine.begin() as connection:
                first = {"p1": f"{CHAT}:{i}", "p2": CHAT, "p3": CHAT, "p4": str(CHAT)}
                (await connection.execute(sql["first"], first)).one()
                await connection.execute(sql["touch"], {"p1": ticket})
                message_id = (
                    await connection.execute(sql["message"], {"p1": ticket, "p2": TEXT, "p3": f"{CHAT}:{i}"})
                ).scalar()
                (await connection.execute(sql["audit"], {"p1": ticket})).scalar()
                (await connection.execute(sql["outbox"], {"p1": ticket, "p2": message_id})).scalar()

        yield one
    finally:
        await engine.dispose()


@asynccontextmanager
async def _bare_sqlite(url: str) -> AsyncIterator[Callable[[int], Awaitable[None]]]:
    connection = await aiosqlite.connect(url.split(":///", 1)[1], isolation_level=None)
    try:
        await connection.execute("PRAGMA journal_mode=WAL")
        await connection.execute("PRAGMA foreign_keys=ON")

        async def value(sql: str, *params: Any) -> Any:
            row = await (await connection.execute(sql, params)).fetchone()
            return row[0] if row else None

        ticket = await _bare_ticket(value, ("?", "?"), "datetime('now')")
        sql = {
            k: v.format(
                p1="?", p2="?", p3="?", p4="?", now="datetime('now')", since="datetime('now', '-1 hour')"
            )
            for k, v in _SQL.items()
        }

        async def one(i: int) -> None:
            await connection.execute("BEGIN")
            await value(sql["first"], f"{CHAT}:{i}", CHAT, CHAT, str(CHAT))
            await (await connection.execute(sql["tickets"], (CHAT,))).fetchall()
            await value(sql["receipts"], ticket)
            await connection.execute(sql["touch"], (ticket,))
            await value(sql["audit"], ticket)
            message = await value(sql["message"], ticket, TEXT, f"{CHAT}:{i}")
            await value(sql["outbox"], ticket, message)
            await value(sql["card"], ticket)
            await connection.execute("COMMIT")

        yield one
    finally:
        await connection.close()


_SQL = {
    "first": _FIRST,
    "tickets": _TICKETS,
    "receipts": _RECEIPTS,
    "touch": _TOUCH,
    "audit": _AUDIT,
    "message": _MESSAGE,
    "outbox": _OUTBOX,
    "card": _CARD,
}


async def _bare_ticket(value: Callable[..., Awaitable[Any]], marks: tuple[str, str], now: str) -> int:
    """The chat's requester and open ticket, written once before the timed follow-ups."""
    first, second = marks
    requester = await value(
        "INSERT INTO requesters (name, telegram_user_id, telegram_chat_id, language, language_chosen,"
        " created_at)"
        f" VALUES ('A B', {first}, {second}, 'en', false, {now}) RETURNING id",
        CHAT,
        CHAT,
    )
    return await value(
        "INSERT INTO tickets (reference, subject, channel, requester_id, status, priority, tags, created_at,"
        " updated_at) VALUES ('TSCC-1', 'Request', 'telegram',"
        f" {first}, 'open', 'normal', '[]', {now}, {now})"
        " RETURNING id",
        requester,
    )


async def bench(database: str, args: argparse.Namespace) -> None:
    async with fresh_database(database, args.postgres) as url:
        desk_wall, desk_cpu, desk_statements, desk_trips = await desk_side(url, args.messages)
    async with fresh_database(database, args.postgres) as url:
        async with bare_store(url) as one:
            bare_wall, bare_cpu = await timed(args.messages, one)
    record = {
        "bench": "lone_intake",
        "database": database,
        "messages": args.messages,
        "desk_wall_ms": round(desk_wall, 2),
        "desk_cpu_ms": round(desk_cpu, 2),
        "desk_statements": round(desk_statements, 2),
        "desk_trips": None if desk_trips is None else round(desk_trips, 2),
        "bare_wall_ms": round(bare_wall, 2),
        "bare_cpu_ms": round(bare_cpu, 2),
        "bare_statements": BARE_STATEMENTS,
        "wall_ratio": round(desk_wall / bare_wall, 2),
    }
    print(json.dumps(record), flush=True)


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument(
        "--databases", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"]
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("HELPDESK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    args = parser.parse_args()
    for database in args.databases:
        await bench(database, args)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
