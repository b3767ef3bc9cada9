"""Telegram update → acknowledgement, the real path, beside a bare PTB echo bot on the same stand-in.

Not a test. Run: .venv/bin/python bench/bench_telegram.py [--chats 20] [--messages 10] [--rounds 3]
    [--databases sqlite postgresql] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
    [--timeline] [--statements] [--bare-store] [--burst]

``--chats`` chats write at the same time; each sends its next message as soon as its previous one is
acknowledged (``--messages`` each, a steady load of that many chats, not one burst). With ``--burst`` every
message is queued at once instead, chat by chat in turn: the load of the bench the issue's first figures
came from (50 chats, 500 messages: ``--chats 50 --messages 10 --burst``). A message's latency is
the time from the update being queued at the Bot API stand-in to the stand-in receiving the sendMessage
that answers it (``reply_parameters.message_id``), both read from the stand-in's clock.

- help desk: the unmodified PTB client (``bot.application``) → ``SafeIntake.take`` (retried, spooled) →
  the desk on a fresh database (tickets, audit, outbox, staff cards in the staff group) → the delivery
  worker → ``sendMessage`` through ``TelegramSender``. Every message gets a receipt (the per-minute receipt
  limit is lifted so that each one is answered; everything else is as ``helpdesk run`` wires it).
- echo: a bare PTB ``Application`` whose one handler answers with ``reply_text`` (updates taken concurrently;
  with ``--burst`` one at a time, PTB's default, which answers a burst faster).
- bare store (``--bare-store``, one chat): the echo bot committing, before it answers, a lone follow-up's
  statements through the bare driver on a fresh database (``bench_lone_intake.bare_store``): the floor of a
  bot that stores each message, which the echo bot is not; and core store, the echo bot committing the
  desk's own 5 statements of a lone follow-up through SQLAlchemy Core on the desk's engine
  (``bench_lone_intake.core_store``): the floor of such a bot on the library the design card names.

Rounds alternate which side runs first so warm-up and machine noise fall on both; each side of a round
gets a fresh database. One JSON line per
database at the end: {"bench": "telegram_ack", "database", "chats", "messages", "desk_median_ms",
"load", "desk_p95_ms", "echo_median_ms", "echo_p95_ms", "median_ratio", "p95_ratio", "commits_per_message",
"flushes_per_message", "statements_per_message", "desk_cpu_ms_per_message"} (``--statements`` adds the
statements by kind and table; ``--timeline`` the median of each step of a receipt, see ``Timeline``;
``--bare-store`` "store_median_ms", "store_echo_ratio", "desk_store_ratio", "core_store_median_ms",
"core_store_echo_ratio" and "desk_core_store_ratio").
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

import asyncpg
from sqlalchemy import event
from sqlalchemy.orm import Session
from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters

from bot.application import build_application, start_polling, stop_application
from bot.sender import TelegramSender
from helpdesk.db.engine import make_engine, make_sessions
from helpdesk.db.migrate import upgrade
from helpdesk.desk import Desk
from helpdesk.flood import FloodLimits
from helpdesk.safe_intake import SafeIntake
from helpdesk.service import connect, standard_composers
from helpdesk.spool import InboundSpool
from helpdesk.warm_start import warm_start
from helpdesk.worker import DeliveryWorker
from standins.telegram_api import TelegramApiStandIn

STAFF_CHAT = -100777
FIRST_CHAT = 900_000
TEXT = "Request {n}: we need guidance on protected area management effectiveness (METT) for Target 3"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def _load(
    api: TelegramApiStandIn,
    chats: int,
    messages: int,
    within: float,
    timeline: Timeline | None = None,
    *,
    burst: bool = False,
) -> list[float]:
    """Each chat sends ``messages`` messages, the next once the previous is answered; with ``burst``, all
    of them queued at once first (chat by chat in turn, as the issue's first measurement did). The
    latencies."""
    pushed: dict[tuple[int, int], float] = {}
    answered: dict[tuple[int, int], asyncio.Future[float]] = {}
    loop = asyncio.get_running_loop()

    async def push(chat_id: int, n: int) -> asyncio.Future[float]:
        update = await api.push_message(chat_id, TEXT.format(n=n), user={"language_code": "en"})
        key = (chat_id, update["message"]["message_id"])
        pushed[key] = loop.time()
        answered[key] = loop.create_future()
        return answered[key]

    async def chat(number: int) -> None:
        for n in range(messages):
            await (await push(FIRST_CHAT + number, n))

    async def all_at_once() -> None:
        waiting = [await push(FIRST_CHAT + number, n) for n in range(messages) for number in range(chats)]
        await asyncio.gather(*waiting)

    async def collect() -> None:
        seen = 0
        while True:
            for call in api.calls[seen:]:
                if call.method.lower() == "sendmessage" and call.ok:
                    reply = call.params.get("reply_parameters") or {}
                    waiter = answered.get((call.params.get("chat_id"), reply.get("message_id")))
                    if waiter is not None and not waiter.done():
                        waiter.set_result(call.at)
            seen = len(api.calls)
            await asyncio.sleep(0.002)  # the stand-in stamps each call itself: this only paces the senders

    collector = asyncio.create_task(collect())
    try:
        load = all_at_once() if burst else asyncio.gather(*(chat(n) for n in range(chats)))
        await asyncio.wait_for(load, within)
    finally:
        collector.cancel()
    if timeline is not None:
        for key, at in pushed.items():
            timeline.message(key, at, answered[key].result())
    return [answered[key].result() - at for key, at in pushed.items()]


async def echo_round(
    chats: int, messages: int, store: Callable[[int], Awaitable[None]] | None = None, *, burst: bool = False
) -> list[float]:
    """The bare echo bot; with ``store``, each update's ``store(n)`` awaited before the answer."""
    numbers = itertools.count()

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        if store is not None:
            await store(next(numbers))
        await update.effective_message.reply_text(update.effective_message.text or "", do_quote=True)

    async with TelegramApiStandIn() as api:
        # The faster bare bot for each load: under a burst PTB's default, one update at a time (the issue's
        # first bench), answers 500 messages in 0.27 s median where concurrent updates took 3 s, their
        # sendMessage calls all queued together; a steady load of chats is answered faster concurrently.
        builder = Application.builder().token(api.token).base_url(api.base_url)
        app = (builder if burst else builder.concurrent_updates(True)).build()
        app.add_handler(MessageHandler(filters.TEXT, echo))
        async with app:
            await app.start()
            assert app.updater is not None
            await app.updater.start_polling(timeout=1)
            try:
                return await _load(api, chats, messages, 300, burst=burst)
            finally:
                await app.updater.stop()
                await app.stop()


async def store_round(messages: int, url: str, *, core: bool = False) -> list[float]:
    """``--bare-store``: the echo bot committing a lone follow-up's statements before it answers, one chat:
    through the bare driver (``bench_lone_intake.bare_store``: BEGIN, 8 statements, COMMIT), or with
    ``core`` the desk's own 5 through SQLAlchemy Core on the desk's engine (``core_store``)."""
    from bench_lone_intake import bare_store, core_store  # (that module imports this one)

    async with (core_store if core else bare_store)(url) as store:
        return await echo_round(1, messages, store)


class Commits:
    """What the engine does for a round: commits (SQLAlchemy's commit event), statements by kind and table
    (``before_cursor_execute``, BEGIN/COMMIT of PostgreSQL not among them), ORM flushes, process CPU."""

    def __init__(self, engine: Any) -> None:
        self.count = 0
        self.flushes = 0
        self.statements: Counter[str] = Counter()
        self.cpu = 0.0
        event.listen(engine.sync_engine, "commit", self._on_commit)
        event.listen(engine.sync_engine, "before_cursor_execute", self._on_execute)
        event.listen(Session, "after_flush", self._on_flush)

    def reset(self) -> None:
        self.count = self.flushes = 0
        self.statements.clear()
        self.cpu = time.process_time()

    def close(self) -> None:
        self.cpu = time.process_time() - self.cpu
        event.remove(Session, "after_flush", self._on_flush)

    def _on_commit(self, _connection: Any) -> None:
        self.count += 1

    def _on_flush(self, *_: Any) -> None:
        self.flushes += 1

    def _on_execute(self, _conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        self.statements[_kind(statement)] += 1


def _kind(statement: str) -> str:
    """``INSERT messages``, ``SELECT outbox``…: the verb and the first table named."""
    words = statement.split()
    verb = words[0].upper() if words else "?"
    table = next((w for w in (m.group(1) for m in _TABLE.finditer(statement)) if w), "")
    return f"{verb} {table}".strip()


class Timeline:
    """``--timeline``: when each step of a receipt happened, on the stand-in's clock (``time.monotonic``).

    The worker's wake, claim, hand-over (a receipt handed by the intake, ready once its transaction
    committed) and mark and the sender's send are wrapped on their instances; a receipt is known by (chat,
    the message it answers). The wake taken is the last one before its claim started, which
    is the intake commit's only when one message is in flight (``--chats 1``). On SQLite a handed receipt's
    mark rides in the next intake's transaction (``helpdesk/mark_carrier.py``), which is not timed here."""

    STEPS = (
        ("update → handed (intake)", "pushed", "handed"),
        ("handed → send start", "handed", "send_start"),
        ("update → wake (intake)", "pushed", "wake"),
        ("wake → claim start", "wake", "claim_start"),
        ("claim", "claim_start", "claim_end"),
        ("claim end → send start", "claim_end", "send_start"),
        ("send start → Bot API has it", "send_start", "answered"),
        ("send", "send_start", "send_end"),
        ("send end → mark end", "send_end", "mark_end"),
        ("update → Bot API has it", "pushed", "answered"),
    )

    def __init__(self) -> None:
        self.wakes: list[float] = []
        self.steps: dict[tuple[Any, Any], dict[str, float]] = {}
        self.done: list[dict[str, float]] = []

    def attach(self, worker: DeliveryWorker, sender: TelegramSender) -> None:
        wake, claim, mark, send = worker.wake, worker._claim, worker._mark_sent, sender.send
        settle = worker._settle

        def timed_settle(entry: Any, committed: bool) -> None:
            settle(entry, committed)
            if committed:
                self.steps.setdefault(_receipt(entry.item.payload), {})["handed"] = time.monotonic()

        def timed_wake() -> None:
            self.wakes.append(time.monotonic())
            wake()

        async def timed_claim() -> Any:
            started = time.monotonic()
            woken = [at for at in self.wakes if at <= started]
            items = await claim()
            ended = time.monotonic()
            for item in items:
                step = self.steps.setdefault(_receipt(item.payload), {})
                step.update(claim_start=started, claim_end=ended)
                if woken:
                    step["wake"] = woken[-1]
            return items

        async def timed_send(message: Any) -> Any:
            step = self.steps.setdefault(_receipt(message.to_json()), {})
            step["send_start"] = time.monotonic()
            try:
                return await send(message)
            finally:
                step["send_end"] = time.monotonic()

        async def timed_mark(batch: Any) -> Any:
            result = await mark(batch)
            ended = time.monotonic()
            for sent in batch:
                self.steps.setdefault(_receipt(sent.item.payload), {})["mark_end"] = ended
            return result

        worker.wake = timed_wake  # type: ignore[method-assign]
        worker._settle = timed_settle  # type: ignore[method-assign]
        worker._claim = timed_claim  # type: ignore[method-assign]
        worker._mark_sent = timed_mark  # type: ignore[method-assign]
        sender.send = timed_send  # type: ignore[method-assign]

    def message(self, key: tuple[int, int], pushed: float, answered: float) -> None:
        step = self.steps.pop(key, {})
        self.done.append({**step, "pushed": pushed, "answered": answered})

    def medians(self) -> dict[str, float]:
        result = {}
        for name, start, end in self.STEPS:
            spans = [s[end] - s[start] for s in self.done if start in s and end in s]
            if spans:
                result[name] = round(statistics.median(spans) * 1000, 2)
        return result


def _receipt(payload: dict[str, Any]) -> tuple[Any, Any]:
    extra = payload.get("extra") or {}
    try:
        chat: Any = int(payload.get("recipient"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        chat = payload.get("recipient")
    return chat, extra.get("reply_to_message_id")


_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE|JOIN)\s+\"?([a-z_]+)", re.IGNORECASE)


async def desk_round(
    chats: int, messages: int, database_url: str, timeline: Timeline | None = None, *, burst: bool = False
) -> tuple[list[float], Commits]:
    engine = make_engine(database_url)
    commits = Commits(engine)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-spool-") as spool:
            async with TelegramApiStandIn() as api:
                sender = TelegramSender(api.token, api.base_url)
                worker = DeliveryWorker(make_sessions(engine), {"telegram": sender}, poll_interval=0.2)
                if timeline is not None:
                    # A round's chats and message ids are the last round's again: nothing of it may linger.
                    timeline.steps.clear()
                    timeline.attach(worker, sender)
                desk = Desk(
                    sessions=make_sessions(engine),
                    staff_telegram_chat_id=STAFF_CHAT,
                    limits=FloodLimits(receipts_per_minute=1000),
                    composers=standard_composers(),
                )
                # As `helpdesk run` wires them: the worker woken, and handed receipts by the intake; the
                # triage built and start-up's objects frozen before the first update.
                connect(desk, worker)
                await warm_start(desk)
                intake = SafeIntake(desk, InboundSpool(Path(spool)), sender=sender)
                app = build_application(
                    api.token, api.base_url, intake.take, desk=desk, staff_chat_id=STAFF_CHAT
                )
                stop = asyncio.Event()
                tasks = [asyncio.create_task(worker.run(stop)), asyncio.create_task(intake.run(stop))]
                await start_polling(app, poll_timeout=1)
                try:
                    commits.reset()
                    latencies = await _load(api, chats, messages, 600, timeline, burst=burst)
                    commits.close()
                    return latencies, commits
                finally:
                    await stop_application(app)
                    stop.set()
                    await asyncio.gather(*tasks)
                    await sender.close()
    finally:
        await engine.dispose()


@asynccontextmanager
async def fresh_database(kind: str, admin_dsn: str) -> AsyncIterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-telegram-") as directory:
            url = f"sqlite+aiosqlite:///{directory}/helpdesk.db"
            await upgrade(url)
            yield url
        return
    name = f"bench_telegram_{os.getpid()}_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        base = admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        await upgrade(f"{base}/{name}")
        yield f"{base}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def summary(name: str, values: list[float]) -> str:
    return (
        f"{name:<10} median {statistics.median(values) * 1000:8.1f} ms"
        f"   p95 {percentile(values, 0.95) * 1000:8.1f} ms"
        f"   max {max(values) * 1000:8.1f} ms   (n={len(values)})"
    )


async def bench(database: str, args: argparse.Namespace) -> None:
    desk_all: list[float] = []
    echo_all: list[float] = []
    commits = flushes = 0
    cpu = 0.0
    statements: Counter[str] = Counter()
    timeline = Timeline() if args.timeline else None
    store_all: list[float] = []
    core_all: list[float] = []
    for round_number in range(args.rounds):
        # Alternate which side runs first so warm-up and machine noise fall on both.
        sides = ("echo", "desk", "store", "core") if args.bare_store else ("echo", "desk")
        for side in sides if round_number % 2 == 0 else sides[::-1]:
            # The desk and the echo bot share a round's database (the echo bot writes none); the bare
            # store's rows would be the desk's history, so it gets one of its own.
            async with fresh_database(database, args.postgres) as url:
                if side == "desk":
                    values, made = await desk_round(
                        args.chats, args.messages, url, timeline, burst=args.burst
                    )
                    desk_all.extend(values)
                    commits += made.count
                    flushes += made.flushes
                    cpu += made.cpu
                    statements.update(made.statements)
                elif side == "echo":
                    values = await echo_round(args.chats, args.messages, burst=args.burst)
                    echo_all.extend(values)
                else:
                    values = await store_round(args.messages, url, core=side == "core")
                    (core_all if side == "core" else store_all).extend(values)
            label = {"desk": "help desk", "echo": "echo bot", "store": "bare store", "core": "core store"}
            print(f"  {database} round {round_number + 1}: " + summary(label[side], values), flush=True)
    print(f"{database}, all rounds ({args.chats} chats × {args.messages} messages):")
    print("  " + summary("help desk", desk_all))
    print("  " + summary("echo bot", echo_all))
    record = {
        "bench": "telegram_ack",
        "database": database,
        "chats": args.chats,
        "load": "burst" if args.burst else "steady",
        "messages": len(desk_all),
        "desk_median_ms": round(statistics.median(desk_all) * 1000, 2),
        "desk_p95_ms": round(percentile(desk_all, 0.95) * 1000, 2),
        "echo_median_ms": round(statistics.median(echo_all) * 1000, 2),
        "echo_p95_ms": round(percentile(echo_all, 0.95) * 1000, 2),
        "median_ratio": round(statistics.median(desk_all) / statistics.median(echo_all), 2),
        "p95_ratio": round(percentile(desk_all, 0.95) / percentile(echo_all, 0.95), 2),
        "commits_per_message": round(commits / len(desk_all), 2),
        "flushes_per_message": round(flushes / len(desk_all), 2),
        "statements_per_message": round(sum(statements.values()) / len(desk_all), 2),
        # The whole process: desk, delivery worker, PTB and the Bot API stand-in.
        "desk_cpu_ms_per_message": round(cpu * 1000 / len(desk_all), 2),
    }
    for name, values in (("store", store_all), ("core_store", core_all)):
        if values:
            median = statistics.median(values)
            record |= {
                f"{name}_median_ms": round(median * 1000, 2),
                f"{name}_echo_ratio": round(median / statistics.median(echo_all), 2),
                f"desk_{name}_ratio": round(statistics.median(desk_all) / median, 2),
            }
    if args.statements:
        record["statements"] = {
            kind: round(n / len(desk_all), 2) for kind, n in sorted(statements.items(), key=lambda kv: -kv[1])
        }
    if timeline is not None:
        record["timeline_ms"] = timeline.medians()
    print(json.dumps(record), flush=True)


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chats", type=int, default=20)
    parser.add_argument("--messages", type=int, default=10, help="messages per chat")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--statements", action="store_true", help="list statements per message by kind")
    parser.add_argument("--timeline", action="store_true", help="the median of each step of a receipt")
    parser.add_argument(
        "--burst", action="store_true", help="every chat's messages queued at once, not one after another"
    )
    parser.add_argument(
        "--bare-store",
        action="store_true",
        help="also the echo bot committing a lone follow-up's statements by the bare driver (--chats 1)",
    )
    parser.add_argument(
        "--databases", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"]
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("HELPDESK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="admin DSN: a fresh database is created (and dropped) there for each round",
    )
    args = parser.parse_args()
    if args.bare_store and (args.chats != 1 or args.burst):
        parser.error("--bare-store is a lone message's baseline: use it with --chats 1, without --burst")
    for database in args.databases:
        await bench(database, args)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
