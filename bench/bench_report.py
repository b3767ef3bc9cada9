"""Benchmark: `helpdesk report` over 100,000 tickets, on SQLite and PostgreSQL.

Not a test. Run: .venv/bin/python bench/bench_report.py [--tickets 100000] [--postgres postgresql://...]
Generates the tickets straight into a freshly migrated database (executemany on SQLite, COPY on
PostgreSQL), then for a month and for the whole two-year period reports, per format, the wall time of
building + rendering and the peak Python memory (tracemalloc). Baseline: the very SQL statements the report
ran, captured and replayed on the bare driver (sqlite3 / asyncpg) without SQLAlchemy or rendering; the
ratio says what the report adds on top of the database's own work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import sqlite3
import tempfile
import time
import tracemalloc
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import event, insert

from helpdesk.db.engine import make_engine, make_sessions
from helpdesk.db.migrate import upgrade
from helpdesk.db.models import AuditEvent, Message, Requester, Ticket
from helpdesk.reports import Period, build_report
from helpdesk.reports.render import FORMATS, render_report
from knowledge import load_knowledge_base

START = datetime(2025, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=730)
CHANNELS = ("telegram", "email")
PARTIES = ("AM", "AZ", "BY", "KZ", "KG", "RU", "TJ", "TM", "UZ", None)
STATUSES = ("new", "open", "waiting", "resolved", "closed")
PRIORITY_TARGETS = (1, 2, 3, 4, 11, 14, 20, 21, 23)


def generate(
    n: int, seed: int = 11
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    rng = random.Random(seed)
    tickets, messages, audits = [], [], []
    for i in range(1, n + 1):
        created = START + timedelta(seconds=rng.randrange(int(SPAN.total_seconds())))
        status = rng.choices(STATUSES, weights=(5, 15, 10, 40, 30))[0]
        unclassified = rng.random() < 0.12
        target = rng.choice(PRIORITY_TARGETS) if rng.random() < 0.8 else rng.randint(1, 23)
        first = created + timedelta(hours=rng.expovariate(1 / 20)) if rng.random() < 0.85 else None
        done = (
            created + timedelta(hours=rng.expovariate(1 / 120)) if status in ("resolved", "closed") else None
        )
        experts = [f"expert-{rng.randint(1, 60)}" for _ in range(3)]
        tickets.append(
            {
                "id": i,
                "reference": f"TSCC-B-{i:07d}",
                "subject": f"Request {i} about target {target}",
                "channel": rng.choice(CHANNELS),
                "status": status,
                "priority": "normal",
                "requester_id": 1 + i % 1000,
                "assignee": rng.choice([None, experts[0], "staff-a", "staff-b"]),
                "tags": [],
                "party": rng.choice(PARTIES),
                "language": "ru",
                "classification": {
                    "language": "ru",
                    "targets": [] if unclassified else [{"target": target, "score": 0.8, "evidence": []}],
                    "core_functions": [{"core_function": rng.randint(1, 11), "score": 0.5, "evidence": []}],
                    "party": None,
                    "unclassified": unclassified,
                    "source": "classifier",
                },
                "matches": {
                    "experts": [{"expert": e, "name": e, "score": 0.5, "reasons": []} for e in experts],
                    "resources": [],
                },
                "created_at": created,
                "updated_at": created,
                "first_response_at": first,
                "resolved_at": done,
                "closed_at": done if status == "closed" else None,
            }
        )
        messages.append(
            {
                "id": i,
                "ticket_id": i,
                "kind": "inbound",
                "channel": tickets[-1]["channel"],
                "author": f"person{i}@example.org",
                "body": f"Dear colleagues, my name is Person {i}. We need guidance on target {target}. "
                f"Phone +998 90 {i:07d}.",
                "automatic": False,
                "created_at": created,
            }
        )
        if not unclassified and rng.random() < 0.6:
            audits.append(
                {
                    "id": len(audits) + 1,
                    "ticket_id": i,
                    "actor": "helpdesk",
                    "action": "resources_sent",
                    "detail": {
                        "resources": [{"title": "r", "url": f"https://kb.example/{rng.randint(1, 40)}"}]
                    },
                    "created_at": created,
                }
            )
    return tickets, messages, audits


async def fill(url: str, n: int) -> float:
    await upgrade(url)
    tickets, messages, audits = generate(n)
    requesters = [{"id": k, "name": f"Person {k}", "language": "ru", "language_chosen": False,
                   "created_at": START} for k in range(1, 1001)]  # fmt: skip
    began = time.perf_counter()
    engine = make_engine(url)
    if url.startswith("postgresql"):
        async with engine.begin() as connection:
            raw = (await connection.get_raw_connection()).driver_connection
            for table, rows in (("requesters", requesters), ("tickets", tickets), ("messages", messages),
                                ("audit_events", audits)):  # fmt: skip
                columns = list(rows[0])
                records = [
                    tuple(json.dumps(v) if isinstance(v, dict | list) else v for v in row.values())
                    for row in rows
                ]
                await raw.copy_records_to_table(table, records=records, columns=columns)
            for table in ("requesters", "tickets", "messages", "audit_events"):
                await raw.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                )
            await raw.execute("ANALYZE")
    else:
        async with engine.begin() as connection:
            for model, rows in ((Requester, requesters), (Ticket, tickets), (Message, messages),
                                (AuditEvent, audits)):  # fmt: skip
                for k in range(0, len(rows), 20_000):
                    await connection.execute(insert(model), rows[k : k + 20_000])
    await engine.dispose()
    return time.perf_counter() - began


async def run_report(url: str, period: Period, fmt: str, kb: Any) -> tuple[float, list[tuple[str, Any]]]:
    engine = make_engine(url)
    statements: list[tuple[str, Any]] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        statements.append((statement, parameters))

    began = time.perf_counter()
    report = await build_report(make_sessions(engine), period, language="en", kb=kb)
    await asyncio.to_thread(render_report, report, fmt)
    elapsed = time.perf_counter() - began
    await engine.dispose()
    return elapsed, statements


async def bare(url: str, statements: list[tuple[str, Any]]) -> float:
    """The same SQL on the bare driver: what the database itself needs."""
    if url.startswith("postgresql"):
        dsn = url.replace("postgresql+asyncpg://", "postgresql://")
        connection = await asyncpg.connect(dsn)
        began = time.perf_counter()
        for statement, parameters in statements:
            await connection.fetch(statement, *(parameters or ()))
        elapsed = time.perf_counter() - began
        await connection.close()
        return elapsed

    def replay() -> float:
        connection = sqlite3.connect(url.split("///", 1)[1])
        began = time.perf_counter()
        for statement, parameters in statements:
            connection.execute(statement, parameters or ()).fetchall()
        elapsed = time.perf_counter() - began
        connection.close()
        return elapsed

    return await asyncio.to_thread(replay)


async def bench(url: str, n: int) -> None:
    print(f"\n== {url.split('://')[0]}: {n:,} tickets")
    print(f"generate + insert: {await fill(url, n):.1f} s")
    kb = load_knowledge_base()
    periods = {
        "month 2026-10": Period.month("2026-10"),
        "2025-01-01..2026-12-31": Period(date(2025, 1, 1), date(2026, 12, 31)),
    }
    print(f"{'period':<24}{'format':<7}{'time s':>9}{'peak MiB':>10}{'bare SQL s':>12}{'ratio':>8}")
    for name, period in periods.items():
        await run_report(url, period, "json", kb)  # warm the caches once
        for fmt in FORMATS:
            times = []
            for _ in range(3):
                elapsed, statements = await run_report(url, period, fmt, kb)
                times.append(elapsed)
            tracemalloc.start()
            await run_report(url, period, fmt, kb)
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            baseline = min([await bare(url, statements) for _ in range(3)])
            best = min(times)
            print(f"{name:<24}{fmt:<7}{best:>9.3f}{peak:>10.1f}{baseline:>12.3f}{best / baseline:>8.2f}")


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tickets", type=int, default=100_000)
    default_dsn = os.environ.get("HELPDESK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--postgres", default=default_dsn)
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    args = parser.parse_args()
    if args.only != "postgresql":
        with tempfile.TemporaryDirectory() as directory:
            await bench(f"sqlite+aiosqlite:///{directory}/bench.db", args.tickets)
    if args.only != "sqlite":
        name = f"helpdesk_bench_{secrets.token_hex(3)}"
        admin = await asyncpg.connect(args.postgres)
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            base = args.postgres.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
            await bench(f"{base}/{name}", args.tickets)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
