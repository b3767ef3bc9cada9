"""Benchmark: does intake stay as fast on top of 100,000 tickets as on top of 1,000? JSON lines out.

Not a test. Run: .venv/bin/python bench/bench_scale.py [--quick] [--sizes 1000 100000] [--messages 200]
    [--databases sqlite postgresql] [--postgres postgresql://postgres@127.0.0.1:5432/postgres] [--plans]

For each database kind, one fresh database per size (a temporary SQLite file, a new PostgreSQL database),
each seeded with bench/seed.py; then times `receive` in-process, one message at a time, each message on
every size in turn (side by side: the sizes share the machine's noise alike), for:
  email_new        a new request from a new address
  email_followup   a reply threaded by In-Reply-To to one of our receipts (no reference in the subject)
  telegram_new     a first message from a new Telegram user
  telegram_followup a message in a chat whose requester has an open ticket
then one delivery-worker round over the outbox those left, and at the largest size `helpdesk report`
(build + render as Markdown) for a month and for the two years. One JSON line per figure:
{"bench": "intake", "database", "tickets", "case", "messages", "median_ms", "p90_ms",
"statements_per_message"} (pool pre-pings counted as statements: each is a round trip). Before the
intake, {"bench": "expert_load", ...} times triage's read of the
expert load (the running figure, migration 0010) against the GROUP BY it replaced, in turn on the same data.
With --plans, every distinct statement the intake and delivery paths issued is explained at that size
({"bench": "plan", ..., "unserved": the lines that read a table without an index search, bench/plans.py}).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

sys.path.insert(0, str(Path(__file__).resolve().parent))

from plans import unserved
from seed import seed

from helpdesk.db.engine import make_engine, make_sessions
from helpdesk.db.models import Message, Requester, Ticket
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage, OutboundMessage, Sender
from helpdesk.reports import Period, build_report
from helpdesk.reports.render import render_report
from helpdesk.service import standard_composers
from helpdesk.usecases.load import expert_load
from helpdesk.usecases.receive import receive
from helpdesk.worker import DeliveryWorker
from knowledge import load_knowledge_base

NOW = datetime.now(UTC)
WARM_UP = 5
TEXT = (
    "Good afternoon. Our ministry is preparing the national report and needs guidance on the "
    "implementation of target {n}; who at the Centre can help with the inventory of stockpiles?"
)


def emit(**record: Any) -> None:
    print(json.dumps(record), flush=True)


class Recorder:
    """Every statement the engine sends (SQLAlchemy's before_cursor_execute), for counting and EXPLAIN."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.count = 0
        self.seen: dict[str, Any] = {}
        self.recording = False
        event.listen(engine.sync_engine, "before_cursor_execute", self._on_execute)
        # A pool pre-ping is a round trip too, but not a cursor statement: counted where the dialect pings.
        dialect = engine.sync_engine.dialect
        ping = dialect.do_ping

        def counted_ping(dbapi_connection: Any) -> bool:
            self.count += 1
            return ping(dbapi_connection)

        dialect.do_ping = counted_ping  # type: ignore[method-assign]

    def _on_execute(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        self.count += 1
        if self.recording and not many:
            self.seen.setdefault(statement, parameters)


class CountingSender:
    """Accepts every delivery at once: the bench measures the desk's bookkeeping, not a network."""

    def __init__(self) -> None:
        self.sent = 0

    async def send(self, message: OutboundMessage) -> str | None:
        self.sent += 1
        return f"bench-{self.sent}"


@asynccontextmanager
async def fresh_database(kind: str, admin_dsn: str) -> AsyncIterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as directory:
            yield f"sqlite+aiosqlite:///{directory}/helpdesk.db"
        return
    name = f"bench_scale_{os.getpid()}_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        base = admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        yield f"{base}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _targets(desk: Desk, count: int) -> tuple[list[tuple[str, str]], list[tuple[int, int]]]:
    """Follow-up targets spread over the history: (requester email, our Message-ID they answer) and
    (Telegram user, chat) of requesters with an open ticket in their chat."""
    async with desk.sessions() as session:
        mails = list(
            await session.execute(
                select(Requester.email, Message.channel_message_id)
                .join(Ticket, Ticket.requester_id == Requester.id)
                .join(Message, Message.ticket_id == Ticket.id)
                .where(Message.channel == "email", Message.kind == "outbound", Message.automatic.is_(True))
                .order_by(Message.id)
            )
        )
        chats = list(
            await session.execute(
                select(Requester.telegram_user_id, Requester.telegram_chat_id)
                .join(Ticket, Ticket.requester_id == Requester.id)
                .where(Ticket.channel == "telegram", Ticket.status.in_(("new", "open", "waiting")))
                .distinct()
                .order_by(Requester.telegram_user_id)
            )
        )
    step_m, step_c = max(1, len(mails) // count), max(1, len(chats) // count)
    return [tuple(r) for r in mails[::step_m]][:count], [tuple(r) for r in chats[::step_c]][:count]  # type: ignore[misc]


def _cases(
    run: str, mails: list[tuple[str, str]], chats: list[tuple[int, int]]
) -> dict[str, Callable[[int], InboundMessage]]:
    salt = int(run, 16)  # Telegram ids are numbers; this run's own range

    def email_new(k: int) -> InboundMessage:
        return InboundMessage(
            channel="email",
            channel_message_id=f"<new.{run}.{k}@ministry.example.net>",
            sender=Sender(name=f"New Person {k}", email=f"new.{run}.{k}@ministry.example.net"),
            subject=f"Question on target {k % 23 + 1}",
            text=TEXT.format(n=k % 23 + 1),
        )

    def email_followup(k: int) -> InboundMessage:
        address, answered = mails[k % len(mails)]
        return InboundMessage(
            channel="email",
            channel_message_id=f"<re.{run}.{k}@ministry.example.net>",
            sender=Sender(email=address),
            subject="Re: your answer",
            text="Thank you, one more question about the inventory.",
            replies_to=(answered,),
        )

    def telegram_new(k: int) -> InboundMessage:
        user = 900_000_000 + salt % 1000 * 10_000 + k
        return InboundMessage(
            channel="telegram",
            channel_message_id=f"{user}:1",
            sender=Sender(name=f"Tg {k}", telegram_user_id=user, telegram_chat_id=user),
            text=TEXT.format(n=k % 23 + 1),
        )

    def telegram_followup(k: int) -> InboundMessage:
        user, chat = chats[k % len(chats)]
        return InboundMessage(
            channel="telegram",
            channel_message_id=f"{chat}:{salt * 100_000_000 + k}",
            sender=Sender(telegram_user_id=user, telegram_chat_id=chat),
            text="And one more detail: the deadline is next month.",
        )

    return {
        "email_new": email_new,
        "email_followup": email_followup,
        "telegram_new": telegram_new,
        "telegram_followup": telegram_followup,
    }


@dataclass
class Size:
    """One size's database, with the desk, the statement recorder and this run's messages for it."""

    tickets: int
    url: str
    engine: AsyncEngine
    desk: Desk
    recorder: Recorder
    cases: dict[str, Callable[[int], InboundMessage]]


async def _time_side_by_side(case: str, sizes: list[Size], messages: int) -> dict[int, dict[str, Any]]:
    """Each message of ``case`` goes to every size in turn, so the sizes share the machine's noise alike
    (other engineers' tests on 2 cores moved single figures by 2× between minutes)."""
    for k in range(WARM_UP):  # the first receive loads the classifier: not intake cost
        for size in sizes:
            await receive(size.desk, size.cases[case](10_000_000 + k))
    timings: dict[int, list[float]] = {size.tickets: [] for size in sizes}
    before = {size.tickets: size.recorder.count for size in sizes}
    for k in range(messages):
        for size in sizes:
            inbound = size.cases[case](k)
            began = time.perf_counter()
            await receive(size.desk, inbound)
            timings[size.tickets].append((time.perf_counter() - began) * 1000)
    figures = {}
    for size in sizes:
        ms = sorted(timings[size.tickets])
        figures[size.tickets] = {
            "messages": messages,
            "median_ms": round(statistics.median(ms), 2),
            "p90_ms": round(ms[int(len(ms) * 0.9) - 1], 2),
            "statements_per_message": round((size.recorder.count - before[size.tickets]) / messages, 1),
        }
    return figures


# What triage read before migration 0010: every active ticket counted per assignee (the baseline).
COUNTED_LOAD = (
    select(Ticket.assignee, func.count(Ticket.id))
    .where(Ticket.assignee.is_not(None), Ticket.status.in_(("new", "open", "waiting")))
    .group_by(Ticket.assignee)
)


async def _load(desk: Desk, rounds: int = 200) -> dict[str, Any]:
    """Triage's read of the expert load (``expert_load``) against the GROUP BY it replaced, call for call
    in turn so both see the same machine."""

    async def group_by(session: AsyncSession) -> object:
        return (await session.execute(COUNTED_LOAD)).all()

    reads = {"running_figure": expert_load, "group_by": group_by}
    timings: dict[str, list[float]] = {name: [] for name in reads}
    async with desk.sessions() as session:
        for read in reads.values():  # one transaction, begun and both statements prepared before timing
            await read(session)
        for _ in range(rounds):
            for name, read in reads.items():
                began = time.perf_counter()
                await read(session)
                timings[name].append((time.perf_counter() - began) * 1000)
    medians = {f"{name}_median_ms": round(statistics.median(t), 3) for name, t in timings.items()}
    ratio = medians["group_by_median_ms"] / medians["running_figure_median_ms"]
    return {**medians, "group_by_over_running": round(ratio, 1)}


async def explain(url: str, statement: str, parameters: Any) -> list[str]:
    if url.startswith("postgresql"):
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            rows = await connection.fetch("EXPLAIN " + statement, *(parameters or ()))
            return [row[0] for row in rows]
        finally:
            await connection.close()

    def plan() -> list[str]:
        connection = sqlite3.connect(url.split("///", 1)[1])
        try:
            return [row[3] for row in connection.execute("EXPLAIN QUERY PLAN " + statement, parameters or ())]
        finally:
            connection.close()

    return await asyncio.to_thread(plan)


async def _report(url: str, tickets: int, database: str) -> None:
    kb = load_knowledge_base()
    last_month = NOW.date().replace(day=1) - timedelta(days=1)
    periods = {
        "month": Period.month(last_month.strftime("%Y-%m")),
        "biennium": Period(NOW.date() - timedelta(days=730), NOW.date()),
    }
    engine = make_engine(url)
    try:
        for name, period in periods.items():
            began = time.perf_counter()
            report = await build_report(make_sessions(engine), period, language="en", kb=kb, now=NOW)
            await asyncio.to_thread(render_report, report, "md")
            emit(
                bench="report",
                database=database,
                tickets=tickets,
                period=name,
                seconds=round(time.perf_counter() - began, 3),
            )
    finally:
        await engine.dispose()


async def bench(
    database: str, sizes: list[int], messages: int, admin_dsn: str, plans: bool, report: bool
) -> None:
    async with AsyncExitStack() as stack:
        prepared: list[Size] = []
        for tickets in sizes:
            url = await stack.enter_async_context(fresh_database(database, admin_dsn))
            summary = await seed(url, tickets, now=NOW)
            emit(
                bench="seed",
                database=database,
                tickets=tickets,
                seconds=round(summary.seconds, 1),
                rows=summary.rows,
            )
            engine = make_engine(url)
            stack.push_async_callback(engine.dispose)
            desk = Desk(
                sessions=make_sessions(engine),
                mail_from="helpdesk@tscc.example.org",
                composers=standard_composers(),
            )
            emit(bench="expert_load", database=database, tickets=tickets, **await _load(desk))
            mails, chats = await _targets(desk, messages + WARM_UP)
            size = Size(
                tickets, url, engine, desk, Recorder(engine), _cases(secrets.token_hex(3), mails, chats)
            )
            prepared.append(size)
        for size in prepared:
            size.recorder.recording = True
        for case in prepared[0].cases:
            for tickets, figures in (await _time_side_by_side(case, prepared, messages)).items():
                emit(bench="intake", database=database, tickets=tickets, case=case, **figures)
        for size in prepared:
            worker = DeliveryWorker(
                size.desk.sessions, {"email": CountingSender(), "telegram": CountingSender()}, batch_size=50
            )
            began, before, delivered = time.perf_counter(), size.recorder.count, 0
            while claimed := await worker.deliver_due():
                delivered += claimed
            if delivered:
                emit(
                    bench="delivery",
                    database=database,
                    tickets=size.tickets,
                    delivered=delivered,
                    per_item_ms=round((time.perf_counter() - began) * 1000 / delivered, 2),
                    statements_per_item=round((size.recorder.count - before) / delivered, 1),
                )
            size.recorder.recording = False
        if plans:
            for size in prepared:
                for statement, parameters in size.recorder.seen.items():
                    if statement.lstrip().upper().startswith(("INSERT", "SAVEPOINT", "RELEASE", "BEGIN")):
                        continue
                    plan = await explain(size.url, statement, parameters)
                    emit(
                        bench="plan",
                        database=database,
                        tickets=size.tickets,
                        unserved=unserved(plan),
                        statement=" ".join(statement.split()),
                        plan=plan,
                    )
        if report:
            await _report(prepared[-1].url, prepared[-1].tickets, database)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 300 and 3,000 tickets, 20 messages")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument(
        "--databases", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"]
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("HELPDESK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--plans", action="store_true", help="EXPLAIN every intake and delivery statement")
    args = parser.parse_args()
    sizes, messages = ([300, 3_000], 20) if args.quick else (args.sizes, args.messages)
    for database in args.databases:
        # The sizes' databases side by side, each message timed on one after the other (_time_side_by_side).
        await bench(database, sorted(sizes), messages, args.postgres, args.plans, report=True)


if __name__ == "__main__":
    asyncio.run(main())
