"""Benchmark: the inbox (every view, the filters, search, a next page) at 100,000 tickets. JSON lines out.

Not a test. Run: .venv/bin/python bench/bench_inbox.py [--tickets 100000] [--runs 30]
    [--databases sqlite postgresql] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
    [--sqlite-url URL] [--postgresql-url URL] [--markdown bench/bench_inbox.md]

For each database a fresh one is seeded with bench/seed.py (or, with --sqlite-url / --postgresql-url, one
already seeded is used as it is). Each case calls ``helpdesk.usecases.inbox.inbox`` (the page and its count,
through SQLAlchemy, as the web page does) and, side by side in the same loop, the baseline: the very
statements that call sent, captured and replayed as raw SQL through the driver (aiosqlite, asyncpg). The
ratio is the desk's overhead over the bare query; the baseline's own figure says what the database costs.
One JSON line per case: {"bench": "inbox", "database", "tickets", "case", "rows", "total", "runs",
"p50_ms", "p95_ms", "raw_p50_ms", "raw_p95_ms", "ratio_p95"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

sys.path.insert(0, str(Path(__file__).resolve().parent))

from seed import seed

from helpdesk.db.engine import make_engine, make_sessions
from helpdesk.db.models import Ticket
from helpdesk.desk import Desk
from helpdesk.service import standard_composers
from helpdesk.usecases.inbox import InboxCriteria, inbox

HOURS = 48.0
WARM_UP = 3
CASES: dict[str, InboxCriteria] = {
    "view new": InboxCriteria(view="new"),
    "view unassigned": InboxCriteria(view="unassigned"),
    "view mine": InboxCriteria(view="mine", viewer="staff-a"),
    "view waiting": InboxCriteria(view="waiting"),
    "view overdue": InboxCriteria(view="overdue"),
    "view all": InboxCriteria(view="all"),
    "filter party": InboxCriteria(party="KZ"),
    "filter target": InboxCriteria(target=14),
    "filter core function": InboxCriteria(core_function=5),
    "filter channel": InboxCriteria(channel="telegram"),
    "filter status closed": InboxCriteria(status="closed"),
    "filter assignee": InboxCriteria(assignee="staff-b"),
    "filters combined": InboxCriteria(view="all", party="UZ", target=3, status="active"),
    # Words of the seeded history: one requester's name, one message number, a word in every body.
    "search rare (a requester)": InboxCriteria(q="Person 31415"),
    "search rare (a body)": InboxCriteria(q="message 271828"),
    "search common word": InboxCriteria(q="guidance"),
    "search two common words": InboxCriteria(q="focal ministry"),
    "search + view": InboxCriteria(view="unassigned", q="guidance"),
    "search no match": InboxCriteria(q="zzzyxq"),
}


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record, ensure_ascii=False), flush=True)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@asynccontextmanager
async def _database(kind: str, args: argparse.Namespace) -> AsyncIterator[str]:
    given = args.sqlite_url if kind == "sqlite" else args.postgresql_url
    if given:
        yield given
        return
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        return
    name = f"bench_inbox_{os.getpid()}_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(args.postgres)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        base = args.postgres.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(args.postgres)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


class Capture:
    """The statements one inbox call sends, as the driver receives them."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.on = False
        self.statements: list[tuple[str, Any]] = []
        event.listen(engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if self.on:
            self.statements.append((statement, parameters))


async def _raw(raw: Any, dialect: str, statements: list[tuple[str, Any]]) -> None:
    if dialect == "postgresql":
        async with raw.transaction():  # as the session runs them (its SET LOCAL holds for the rest)
            for statement, parameters in statements:
                await raw.fetch(statement, *(parameters or ()))
        return
    for statement, parameters in statements:
        cursor = await raw.execute(statement, parameters or ())
        await cursor.fetchall()
        await cursor.close()


async def bench(kind: str, url: str, tickets: int, runs: int) -> list[dict[str, Any]]:
    engine = make_engine(url)
    desk = Desk(sessions=make_sessions(engine), composers=standard_composers())
    capture = Capture(engine)
    results = []
    try:
        async with engine.connect() as connection:
            present = await connection.scalar(select(func.count()).select_from(Ticket))
        async with engine.connect() as connection:
            raw = (await connection.get_raw_connection()).driver_connection
            for case, criteria in {**CASES, "view all, next page": None}.items():
                if criteria is None:  # the page after the first of "view all"
                    first = await inbox(desk, CASES["view all"], response_target_hours=HOURS)
                    criteria = replace(CASES["view all"], after=first.next_after)
                capture.statements, capture.on = [], True
                page = await inbox(desk, criteria, response_target_hours=HOURS)
                capture.on = False
                statements = list(capture.statements)
                timed, bare = [], []
                for i in range(WARM_UP + runs):
                    began = time.perf_counter()
                    await inbox(desk, criteria, response_target_hours=HOURS)
                    middle = time.perf_counter()
                    await _raw(raw, kind, statements)
                    ended = time.perf_counter()
                    if i >= WARM_UP:
                        timed.append((middle - began) * 1000)
                        bare.append((ended - middle) * 1000)
                record = {
                    "bench": "inbox",
                    "database": kind,
                    "tickets": present,
                    "case": case,
                    "rows": len(page.rows),
                    "total": f"{page.total}{'+' if page.total_capped else ''}",
                    "runs": runs,
                    "p50_ms": round(statistics.median(timed), 2),
                    "p95_ms": round(_quantile(timed, 0.95), 2),
                    "raw_p50_ms": round(statistics.median(bare), 2),
                    "raw_p95_ms": round(_quantile(bare, 0.95), 2),
                }
                record["ratio_p95"] = round(record["p95_ms"] / max(record["raw_p95_ms"], 0.01), 2)
                emit(record)
                results.append(record)
    finally:
        await engine.dispose()
    return results


def markdown(results: list[dict[str, Any]]) -> str:
    lines = []
    for kind in dict.fromkeys(r["database"] for r in results):
        rows = [r for r in results if r["database"] == kind]
        lines += [
            f"### {kind}, {rows[0]['tickets']:,} tickets ({rows[0]['runs']} runs per case)",
            "",
            "| case | rows | total | inbox p50 | inbox p95 | bare SQL p50 | bare SQL p95 | p95 ratio |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['case']} | {r['rows']} | {r['total']} | {r['p50_ms']} | {r['p95_ms']} | {r['raw_p50_ms']} "
            f"| {r['raw_p95_ms']} | {r['ratio_p95']} |"
            for r in rows
        ]
        lines.append("")
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--sqlite-url", help="an already seeded SQLite database (not seeded again)")
    parser.add_argument("--postgresql-url", help="an already seeded PostgreSQL database (not seeded again)")
    parser.add_argument("--markdown", type=Path, help="also write the tables here")
    args = parser.parse_args()
    results = []
    for kind in args.databases:
        async with _database(kind, args) as url:
            if not (args.sqlite_url if kind == "sqlite" else args.postgresql_url):
                summary = await seed(url, args.tickets)
                emit({"bench": "seed", "database": kind, "tickets": args.tickets, "seconds": summary.seconds})
            results += await bench(kind, url, args.tickets, args.runs)
    if args.markdown:
        args.markdown.write_text(markdown(results), encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main())
