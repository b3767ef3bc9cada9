"""Telegram messages while the database is away: PostgreSQL stopped for a few seconds, stopped for longer
than the grace period, connections cut mid-session, and a spool left behind by a killed `helpdesk run`.

The real PTB application talks to the Bot API stand-in over HTTP; the desk runs on a private PostgreSQL
that the test stops and starts (or, for cut connections, the shared one with this test's own database).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from telegram_harness import Harness, open_harness

from faults.helpers import HelpdeskProcess, PrivatePostgres, inbound_ids, record, run_env, scale, wait_until
from helpdesk.db.engine import make_engine, make_sessions
from helpdesk.db.migrate import upgrade
from helpdesk.db.models import Ticket
from helpdesk.desk import Desk
from helpdesk.service import standard_composers
from standins.telegram_api import TelegramApiStandIn

RESEND = "database was unavailable"  # bot/resend.en.txt.j2
FAILED = "because of a problem on our side"  # bot/failed.en.txt.j2


def _texts(api: TelegramApiStandIn, chat: int) -> list[str]:
    return [m["text"] for m in api.sent_messages(chat)]


def _acknowledged(api: TelegramApiStandIn, chats: list[int]) -> list[int]:
    return [c for c in chats if any("registered as TSCC-" in t for t in _texts(api, c))]


@contextlib.asynccontextmanager
async def private_postgres() -> AsyncIterator[PrivatePostgres]:
    postgres = PrivatePostgres()
    try:
        await postgres.setup()
        await upgrade(postgres.url)
        yield postgres
    finally:
        await postgres.cleanup()


@contextlib.asynccontextmanager
async def desk_on(url: str) -> AsyncIterator[Desk]:
    engine = make_engine(url)
    try:
        yield Desk(
            sessions=make_sessions(engine), mail_from="helpdesk@tscc.example", composers=standard_composers()
        )
    finally:
        await engine.dispose()


@pytest.mark.parametrize("down_for", [3.0, 8.0], ids=["3s-retried", "8s-spooled"])
async def test_postgresql_stopped_no_telegram_message_lost(
    down_for: float, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    chats = [610_000 + n for n in range(scale("tg_outage_chats", 10))]
    caplog.set_level(logging.WARNING)
    async with private_postgres() as postgres, desk_on(postgres.url) as desk:
        async with open_harness(desk, spool_dir=tmp_path / "spool") as harness:
            api = harness.api
            await postgres.stop()
            stopped = time.monotonic()
            for n, chat in enumerate(chats):
                await api.push_message(
                    chat, f"Request {n}: wetlands inventory, Target 2", user={"language_code": "en"}
                )
                await asyncio.sleep(down_for / (len(chats) + 1))  # spread over the outage, as people write
            await asyncio.sleep(max(0.0, down_for - (time.monotonic() - stopped)))
            await postgres.start()
            back = time.monotonic()

            async def all_acknowledged() -> bool:
                return len(_acknowledged(api, chats)) == len(chats)

            await harness.until(all_acknowledged, within=90)
            caught_up = time.monotonic() - back
            ids = await inbound_ids(desk.sessions, "telegram")
            told_failed = sum(1 for c in chats for t in _texts(api, c) if FAILED in t or RESEND in t)
            spooled = caplog.text.count("kept in the spool")
            assert len(harness.intake.spool) == 0
    figures = record(
        "telegram_postgresql_stopped",
        down_seconds=down_for,
        messages=len(chats),
        stored=len(set(ids)),
        duplicates=len(ids) - len(set(ids)),
        kept_in_spool=spooled,
        told_to_resend=told_failed,
        seconds_to_acknowledge_all_after_return=round(caught_up, 1),
    )
    assert figures["stored"] == len(chats) and figures["duplicates"] == 0, figures
    assert told_failed == 0, figures
    if down_for > 6:  # beyond the in-process retry: these went through the spool
        assert spooled > 0, figures


async def test_outage_longer_than_grace_each_requester_told_once_nothing_half_stored(tmp_path: Path) -> None:
    grace = 2.0
    async with private_postgres() as postgres, desk_on(postgres.url) as desk:
        async with open_harness(
            desk, spool_dir=tmp_path / "spool", grace_seconds=grace, retry_delays=(0.1, 0.2)
        ) as harness:
            api = harness.api
            await postgres.stop()
            talkative, quiet = 620_001, 620_002
            for n in range(3):
                await api.push_message(
                    talkative, f"Part {n} of my question on Target 3", user={"language_code": "en"}
                )
            await api.push_message(
                quiet, "Вопрос про мониторинг водно-болотных угодий", user={"language_code": "ru"}
            )

            async def both_told() -> bool:
                return all(
                    any(RESEND in t or "база данных" in t for t in _texts(api, c)) for c in (talkative, quiet)
                )

            await harness.until(both_told, within=60)
            await harness.until(lambda: _spool_empty(harness), within=30)
            await postgres.start()
            # Once the database is back, a new message is taken as usual, and nothing earlier resurfaces.
            await api.push_message(
                talkative, "Sending it again: METT guidance, Target 3", user={"language_code": "en"}
            )
            await harness.until(lambda: _has_ack(api, talkative), within=60)
            tickets = await harness.tickets()
            ids = await inbound_ids(desk.sessions, "telegram")
            told = Counter(
                c for c in (talkative, quiet) for t in _texts(api, c) if RESEND in t or "база данных" in t
            )
    figures = record(
        "telegram_outage_beyond_grace",
        grace_seconds=grace,
        told=dict(told),
        stored_after_return=len(ids),
        tickets=len(tickets),
    )
    assert told == Counter({talkative: 1, quiet: 1}), figures
    assert "your last 3 messages" in next(t for t in _texts(api, talkative) if RESEND in t)
    # Nothing of the dropped messages is in the database: only the message sent again.
    assert len(ids) == 1 and len(tickets) == 1 and tickets[0].subject.startswith("Sending it again"), figures


async def _spool_empty(harness: Harness) -> bool:
    return len(harness.intake.spool) == 0


async def _has_ack(api: TelegramApiStandIn, chat: int) -> bool:
    return any("registered as TSCC-" in t for t in _texts(api, chat))


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_connections_cut_while_requesters_write_nothing_lost(
    harness_on_engine: Harness, database_url: str
) -> None:
    """The issue's 1 in 40: the server terminates the desk's connections again and again meanwhile."""
    api = harness_on_engine.api
    chats = [630_000 + n for n in range(scale("tg_cut_chats", 40))]
    database = database_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    cuts = 0
    stop = asyncio.Event()

    async def cutter() -> None:
        nonlocal cuts
        while not stop.is_set():
            cuts += len(
                await admin.fetch(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = $1 AND pid <> pg_backend_pid()",
                    database,
                )
            )
            await asyncio.sleep(
                0.4
            )  # often enough to hit many transactions, rarely enough to let work finish

    cutting = asyncio.create_task(cutter())
    try:
        for n, chat in enumerate(chats):
            await api.push_message(
                chat, f"Request {n}: protected areas, Target 3", user={"language_code": "en"}
            )

        async def all_stored() -> bool:
            try:
                return len(await inbound_ids(harness_on_engine.desk.sessions, "telegram")) >= len(chats)
            except Exception:  # the check's own connection may be cut too
                return False

        await harness_on_engine.until(all_stored, within=120)
    finally:
        stop.set()
        await cutting
        await admin.close()
    await harness_on_engine.until(lambda: _all_acked(api, chats), within=60)
    ids = await inbound_ids(harness_on_engine.desk.sessions, "telegram")
    failed = sum(1 for c in chats for t in _texts(api, c) if FAILED in t)
    figures = record(
        "telegram_connections_cut",
        messages=len(chats),
        connections_cut=cuts,
        stored=len(set(ids)),
        told_failed=failed,
    )
    assert cuts > 0 and figures["stored"] == len(chats) and len(ids) == len(chats), figures
    assert failed == 0, figures


async def _all_acked(api: TelegramApiStandIn, chats: list[int]) -> bool:
    return len(_acknowledged(api, chats)) == len(chats)


@pytest.fixture
async def harness_on_engine(engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[Harness]:
    desk = Desk(
        sessions=make_sessions(engine), mail_from="helpdesk@tscc.example", composers=standard_composers()
    )
    async with open_harness(desk, spool_dir=tmp_path / "spool") as opened:
        yield opened


async def test_spool_left_by_a_killed_run_is_replayed_once(
    bot_api: TelegramApiStandIn, workdir: Path
) -> None:
    chat = 640_001
    async with private_postgres() as postgres:
        env = run_env(postgres.url, bot_api=bot_api, HELPDESK_SPOOL_DIR=str(workdir / "spool"))
        first = HelpdeskProcess(env, workdir, name="killed")
        await first.start()
        try:
            await first.wait_for_log("Telegram channel polling", timeout=60)
            await postgres.stop()
            await bot_api.push_message(
                chat, "Need the national report template, Target 21", user={"language_code": "en"}
            )
            await first.wait_for_log("kept in the spool", timeout=60)
        finally:
            await first.kill()  # SIGKILL: the message exists only in the spool now
        assert len(list((workdir / "spool").glob("*.json"))) == 1
        await postgres.start()
        second = HelpdeskProcess(env, workdir, name="replaying")
        await second.start()
        try:
            await second.wait_for_log("replayed spooled message", timeout=60)
            await wait_until(lambda: _has_ack(bot_api, chat), timeout=60)
        finally:
            await second.terminate()
        engine = make_engine(postgres.url)
        try:
            sessions = make_sessions(engine)
            ids = await inbound_ids(sessions, "telegram")
            async with sessions() as session:
                tickets = list(await session.scalars(select(Ticket)))
        finally:
            await engine.dispose()
    record("telegram_spool_replayed_after_kill", stored=len(ids), tickets=len(tickets))
    assert len(ids) == 1 and len(tickets) == 1
    assert sum(1 for t in _texts(bot_api, chat) if "registered as TSCC-" in t) == 1
    assert not list((workdir / "spool").glob("*.json"))
