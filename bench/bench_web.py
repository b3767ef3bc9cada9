"""Benchmark: the staff web workspace's pages over a large history, and `helpdesk run`'s memory with it on.

Not a test. Run: .venv/bin/python bench/bench_web.py [--tickets 20000] [--requests 200] [--database-url URL]

Seeds a temporary SQLite database with bench/seed.py (or, with --database-url, uses one already seeded, SQLite
or PostgreSQL, as it is) and a staff account, then, side by side:
  baseline   a bare Starlette app on uvicorn (no desk, no middleware) whose one route runs the inbox's
             query (100 newest tickets with their requesters) with SQLAlchemy Core and joins the rows
             into HTML: the floor the libraries set for the same data;
  workspace  `helpdesk run` with HELPDESK_WEB_PORT set, signed in: the inbox (helpdesk/usecases/inbox.py:
             views, filters, searches common and rare, the next page by its cursor), ticket pages of
             random tickets, the knowledge-base pages and a month's report.
Each is timed over HTTP from this process (p50 / p95, ms), and the ratio to the baseline printed.
RSS: `helpdesk run` without the workspace and with it, after start and after the requests (VmRSS).
One JSON line per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from seed import seed
from sqlalchemy import func, select

from helpdesk.db.engine import make_engine, make_sessions
from helpdesk.db.models import StaffAccount, Ticket, TicketCounter
from helpdesk.desk import Desk
from helpdesk.service import standard_composers
from helpdesk.usecases.staff_accounts import add_account

EMAIL, PASSWORD = "bench@tscc.example", "bench password, long enough"

BASELINE = r"""
import sys, uvicorn
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route
from html import escape
from helpdesk.db.engine import make_engine
from helpdesk.db.models import Requester, Ticket

engine = make_engine(sys.argv[1])
query = (select(Ticket.reference, Ticket.subject, Ticket.status, Requester.name)
         .join(Requester, Requester.id == Ticket.requester_id).order_by(Ticket.id.desc()).limit(100))

async def inbox(request):
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    items = (f"<li>{escape(r[0])} {escape(r[1])} {escape(r[2])} {escape(r[3] or '')}</li>" for r in rows)
    return HTMLResponse("<ul>" + "".join(items) + "</ul>")

app = Starlette(routes=[Route("/", inbox)])
print("ready", flush=True)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
"""


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


@asynccontextmanager
async def _process(argv: list[str], env: dict[str, str], ready: str, *, stream: str) -> AsyncIterator[int]:
    process = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    reader = process.stdout if stream == "stdout" else process.stderr
    assert reader is not None
    while ready not in (line := (await reader.readline()).decode()):
        if not line:
            raise RuntimeError(f"{argv} ended before {ready!r}")
    try:
        yield process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        await process.communicate()


async def _timed(client: httpx.AsyncClient, paths: list[str]) -> list[float]:
    times = []
    for path in paths:
        began = time.perf_counter()
        answer = await client.get(path)
        times.append((time.perf_counter() - began) * 1000)
        assert answer.status_code == 200, (path, answer.status_code)
    return times


def _figures(name: str, times: list[float]) -> dict[str, object]:
    ordered = sorted(times)
    return {
        "bench": "web",
        "case": name,
        "requests": len(times),
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1], 2),
    }


async def _prepared(url: str | None, tickets: int, scratch: str) -> tuple[str, dict[int, int]]:
    """The database to measure and its reference counters (year → last number)."""
    if url is None:
        url = f"sqlite+aiosqlite:///{Path(scratch) / 'web.db'}"
        seeded = await seed(url, tickets)
        print(
            json.dumps({"bench": "web", "seeded_tickets": tickets, "seed_seconds": round(seeded.seconds, 1)})
        )
    engine = make_engine(url)
    try:
        desk = Desk(sessions=make_sessions(engine), composers=standard_composers())
        async with desk.sessions() as session:
            counters = {c.year: c.last for c in await session.scalars(select(TicketCounter))}
            known = await session.scalar(select(StaffAccount.id).where(StaffAccount.email == EMAIL))
            count = await session.scalar(select(func.count(Ticket.id)))
        if known is None:
            await add_account(desk, EMAIL, name="Bench", role="agent", password=PASSWORD)
    finally:
        await engine.dispose()
    print(json.dumps({"bench": "web", "database": url.split(":")[0], "tickets": count}))
    return url, counters


async def _next_page(client: httpx.AsyncClient, path: str) -> str:
    page = (await client.get(path)).text
    return page.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")


async def main(tickets: int, requests: int, database_url: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-web-") as scratch:
        url, counters = await _prepared(database_url, tickets, scratch)
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
        base_env |= {"HELPDESK_DATABASE_URL": url, "HELPDESK_REPORT_DAY": "0"}
        year = max(counters)
        rng = random.Random(7)
        refs = [f"TSCC-{year}-{rng.randint(1, counters[year]):04d}" for _ in range(requests)]

        port = _port()
        async with _process(
            [sys.executable, "-c", BASELINE, url, str(port)], base_env, "ready", stream="stdout"
        ):
            await asyncio.sleep(0.5)  # uvicorn binds right after "ready"; a bench, not a test
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                await _timed(client, ["/"] * 5)
                baseline = _figures("baseline_inbox", await _timed(client, ["/"] * requests))
        print(json.dumps(baseline))

        run = [sys.executable, "-m", "helpdesk.cli", "run"]
        async with _process(run, base_env, "help desk running", stream="stderr") as pid:
            await asyncio.sleep(1)
            off = _rss_mb(pid)
        port = _port()
        async with _process(
            run, {**base_env, "HELPDESK_WEB_PORT": str(port)}, "web workspace on", stream="stderr"
        ) as pid:
            await asyncio.sleep(1)
            on_start = _rss_mb(pid)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                token = (await client.get("/login")).text.split('name="csrf_token" value="')[1].split('"')[0]
                await client.post("/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token})
                await _timed(client, ["/?view=all"] * 5)
                next_page = await _next_page(client, "/?view=all")
                for name, paths in (
                    ("inbox_all", ["/?view=all"] * requests),
                    ("inbox_new", ["/"] * requests),
                    ("inbox_overdue", ["/?view=overdue"] * requests),
                    ("inbox_filters", ["/?view=all&party=KZ&status=closed&channel=email"] * requests),
                    ("inbox_target", ["/?view=all&target=3"] * requests),
                    ("inbox_next_page", [next_page] * requests),
                    ("inbox_search_common", ["/?view=all&q=guidance"] * requests),
                    ("inbox_search_rare", ["/?view=all&q=message+271828"] * requests),
                    ("inbox_search_view", ["/?view=unassigned&q=guidance"] * requests),
                    ("ticket_page", [f"/tickets/{r}" for r in refs]),
                    # The knowledge-base pages (the roster with each expert's open tickets) and a month's
                    # report as the reports page frames it (built and rendered per request).
                    ("kb_experts", ["/kb/experts"] * requests),
                    ("kb_resources", ["/kb/resources"] * requests),
                    ("report_month", [f"/reports/view?month={year}-06"] * max(5, requests // 10)),
                ):
                    figures = _figures(name, await _timed(client, paths))
                    figures["ratio_p95_to_baseline"] = round(figures["p95_ms"] / baseline["p95_ms"], 1)  # type: ignore[operator]
                    print(json.dumps(figures))
            after = _rss_mb(pid)
        print(
            json.dumps(
                {
                    "bench": "web",
                    "case": "rss_mb",
                    "run_without_web": off,
                    "run_with_web_at_start": on_start,
                    "run_with_web_after_requests": after,
                }
            )
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--database-url", help="an already seeded database (bench/seed.py), used as it is")
    args = parser.parse_args()
    asyncio.run(main(args.tickets, args.requests, args.database_url))
