"""The periodic jobs of `helpdesk run` (helpdesk/jobs/) on SQLite and PostgreSQL: each does its work on
start, keeps going after a failing run, and ends when the service stops.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from personal_data_people import BOB, requester_ticket, set_ticket, traces
from sqlalchemy import func, select, update

from helpdesk.config import Secret, Settings, SmtpSettings, TelegramSettings
from helpdesk.db.models import OutboxItem, ReportDelivery, Ticket
from helpdesk.desk import Desk
from helpdesk.jobs.monthly_report import run_monthly_reports
from helpdesk.jobs.periodic import every
from helpdesk.jobs.retention import run_retention

# Generous: the machine is small and shared; a passing run ends as soon as its condition holds.
DEADLINE = 60.0


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    """Wait for an async check to turn true, for at most DEADLINE seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not await check():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_retention_task_of_helpdesk_run_anonymises_and_stops(desk: Desk) -> None:
    reference = await requester_ticket(desk, BOB, 9, "old request tapir-otter-9999")
    old = datetime.now(UTC) - timedelta(days=400)
    await set_ticket(desk, reference, status="closed", closed=old, created=old)
    stop = asyncio.Event()
    task = asyncio.create_task(run_retention(desk, 12, stop, interval=0.05))

    async def anonymised() -> bool:
        return not await traces(desk, ["tapir-otter-9999"])

    await until(anonymised)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert await traces(desk, ["tapir-otter-9999", BOB.email or ""]) == []


async def test_monthly_report_task_of_helpdesk_run_queues_last_month_and_stops(
    desk: Desk, database_url: str
) -> None:
    # A desk that existed last month, and a report due from the month's first hour: due whenever this runs.
    reference = await requester_ticket(desk, BOB, 10, "a request from long ago")
    async with desk.sessions.begin() as session:
        long_ago = datetime.now(UTC) - timedelta(days=70)
        await session.execute(update(Ticket).where(Ticket.reference == reference).values(created_at=long_ago))
    settings = Settings(
        database_url=database_url,
        smtp=SmtpSettings(host="127.0.0.1", port=2525, user=None, password=None, tls=False),
        mail_from="helpdesk@tscc.example.org",
        staff_emails=frozenset({"lead@tscc.example.org"}),
        telegram=TelegramSettings(token=Secret("1:x"), api_url="http://127.0.0.1/bot", staff_chat_id=-1001),
        report_day=1,
        report_hour=0,
    )
    written = asyncio.Event()
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_monthly_reports(
            dataclasses.replace(desk, outbox_written=written.set, staff_emails=settings.staff_emails),
            settings,
            stop,
            interval=0.05,
        )
    )
    await asyncio.wait_for(written.wait(), timeout=DEADLINE)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    async with desk.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(ReportDelivery)) == 1
        channels = sorted(
            await session.scalars(select(OutboxItem.channel).where(OutboxItem.ticket_id.is_(None)))
        )
    assert channels == ["email", "telegram"]


async def test_a_failing_run_is_logged_and_the_job_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    stop = asyncio.Event()
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database away")
        stop.set()

    with caplog.at_level(logging.ERROR):
        await asyncio.wait_for(
            every(0.01, stop, step, log=logging.getLogger("test.jobs"), failure="test job failed"),
            timeout=DEADLINE,
        )
    assert calls == 2
    assert [r.getMessage() for r in caplog.records if r.name == "test.jobs"] == ["test job failed"]


async def test_a_stopped_job_ends_without_waiting_out_its_interval() -> None:
    stop = asyncio.Event()
    ran = asyncio.Event()

    async def step() -> None:
        ran.set()

    task = asyncio.create_task(every(3600.0, stop, step, log=logging.getLogger("test.jobs"), failure="x"))
    await asyncio.wait_for(ran.wait(), timeout=DEADLINE)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
