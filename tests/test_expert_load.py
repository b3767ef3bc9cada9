"""The expert load is a running figure (table expert_load, kept by triggers) that always equals the count.

Triage reads it for every new ticket; these tests move tickets every way the desk can and compare it with
the GROUP BY over the tickets, on SQLite and PostgreSQL, and check that two PostgreSQL transactions moving
tickets to the same expert at once both count.
"""

from __future__ import annotations

import asyncio
import importlib.util
import random
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import helpdesk.db
from helpdesk import lifecycle
from helpdesk.cli import main
from helpdesk.config import Settings
from helpdesk.db.engine import make_sessions
from helpdesk.db.migrate import alembic_config
from helpdesk.db.models import ExpertLoad, Requester, Ticket
from helpdesk.desk import Desk
from helpdesk.health import check_database
from helpdesk.messages import InboundMessage, Sender
from helpdesk.usecases.assign import assign
from helpdesk.usecases.errors import InvalidTransition
from helpdesk.usecases.load import counted_load, expert_load, load_drift, recount_load
from helpdesk.usecases.receive import receive
from helpdesk.usecases.status import set_status

STAFF = ("ana", "boris", "chen", None)
ALIYA = Sender(name="Aliya", email="aliya@eco.gov.kz")


def test_the_triggers_count_the_statuses_the_lifecycle_calls_active() -> None:
    path = Path(helpdesk.db.__file__).parent / "migrations" / "versions" / "0010_expert_load.py"
    spec = importlib.util.spec_from_file_location("migration_0010", path)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    # A change to lifecycle.ACTIVE needs a migration that redefines the triggers and recounts.
    assert migration.ACTIVE == "(" + ", ".join(f"'{status}'" for status in lifecycle.ACTIVE) + ")"


async def _request(desk: Desk, n: int) -> str:
    inbound = InboundMessage(
        channel="email",
        channel_message_id=f"<r{n}@eco.gov.kz>",
        sender=ALIYA,
        subject=f"Request {n}",
        text="PAME",
    )
    return (await receive(desk, inbound)).reference


async def _write_again(desk: Desk, n: int, step: int) -> None:
    """The requester answers ticket ``n``'s thread: a resolved or closed ticket opens again."""
    inbound = InboundMessage(
        channel="email",
        channel_message_id=f"<r{n}.{step}@eco.gov.kz>",
        sender=ALIYA,
        subject=f"Re: Request {n}",
        text="One more thing",
        replies_to=(f"<r{n}@eco.gov.kz>",),
    )
    assert not (await receive(desk, inbound)).created


async def _figures(desk: Desk) -> tuple[dict[str, int], dict[str, int]]:
    async with desk.sessions() as session:
        return await expert_load(session), await counted_load(session)


async def test_random_moves_keep_the_running_figure_equal_to_the_count(desk: Desk) -> None:
    rng = random.Random(12)
    references = [await _request(desk, n) for n in range(6)]
    moves = {"assign": 0, "status": 0, "inbound": 0, "refused": 0}
    for step in range(70):
        n = rng.randrange(len(references))
        kind = rng.choice(("assign", "assign", "status", "inbound"))
        try:
            if kind == "assign":
                await assign(desk, references[n], rng.choice(STAFF), actor="staff")
            elif kind == "status":
                await set_status(desk, references[n], rng.choice(lifecycle.SETTABLE), actor="staff")
            else:
                await _write_again(desk, n, step)
            moves[kind] += 1
        except InvalidTransition:  # same assignee, same status, a closed ticket: refused, nothing moves
            moves["refused"] += 1
        running, counted = await _figures(desk)
        assert running == counted, f"step {step}: {kind} on {references[n]}"
    assert all(moves.values()), moves  # every kind of move was made (and refused) at least once
    async with desk.sessions() as session:
        assert await load_drift(session) == {}
        statuses = set(await session.scalars(select(Ticket.status)))
    assert len(statuses) >= 3


async def test_a_bulk_statement_and_a_deleted_ticket_are_counted_too(desk: Desk) -> None:
    references = [await _request(desk, n) for n in range(3)]
    for reference in references:
        await assign(desk, reference, "ana", actor="staff")
    async with desk.sessions.begin() as session:
        # No use-case involved: the triggers count what the database writes.
        await session.execute(update(Ticket).where(Ticket.reference == references[0]).values(status="closed"))
        await session.execute(
            update(Ticket).where(Ticket.reference == references[1]).values(assignee="boris")
        )
    running, counted = await _figures(desk)
    assert running == counted == {"ana": 1, "boris": 1}


async def _until_blocked(watcher: AsyncSession, pid: int, task: asyncio.Task[Any]) -> bool:
    """Wait (bounded: a loaded machine) until backend ``pid`` waits on a lock; False if it never did."""
    for _ in range(3000):
        blockers = await watcher.scalar(text("SELECT cardinality(pg_blocking_pids(:pid))"), {"pid": pid})
        await watcher.rollback()
        if blockers or task.done():
            return bool(blockers) and not task.done()
        await asyncio.sleep(0.01)
    return False


def _assign(session: AsyncSession, reference: str, assignee: str | None) -> Awaitable[Any]:
    return session.execute(update(Ticket).where(Ticket.reference == reference).values(assignee=assignee))


async def test_two_transactions_assigning_at_once_both_count(desk: Desk, engine: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: nothing runs at once")
    first, second = await _request(desk, 1), await _request(desk, 2)
    async with desk.sessions() as a, desk.sessions() as b, desk.sessions() as watcher:
        await _assign(a, first, "ana")
        b_pid = await b.scalar(text("SELECT pg_backend_pid()"))
        second_assigned = asyncio.create_task(_assign(b, second, "ana"))
        # b waits on the row lock a's count holds on "ana"; a read-modify-write would have read 0 already.
        assert await _until_blocked(watcher, b_pid, second_assigned)
        await a.commit()
        await second_assigned
        await b.commit()
    running, counted = await _figures(desk)
    assert running == counted == {"ana": 2}


async def test_two_reassignments_crossing_each_other_do_not_deadlock(desk: Desk, engine: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: nothing runs at once")
    first, second, third = await _request(desk, 1), await _request(desk, 2), await _request(desk, 3)
    await assign(desk, first, "ana", actor="staff")
    await assign(desk, second, "boris", actor="staff")
    async with desk.sessions() as a, desk.sessions() as b, desk.sessions() as watcher:
        await _assign(a, third, "ana")  # a holds "ana"
        b_pid = await b.scalar(text("SELECT pg_backend_pid()"))
        # boris → ana: rows are taken in name order, so b waits for "ana" holding nothing. Taking "boris"
        # first (its decrement) would make a's ana → boris below wait for b while b waits for a: deadlock.
        crossing = asyncio.create_task(_assign(b, second, "ana"))
        assert await _until_blocked(watcher, b_pid, crossing)
        await _assign(a, first, "boris")
        await a.commit()
        await crossing
        await b.commit()
    running, counted = await _figures(desk)
    assert running == counted == {"ana": 2, "boris": 1}


async def test_the_migration_counts_the_tickets_already_there(database_url: str, engine: AsyncEngine) -> None:
    config = alembic_config(database_url)
    await asyncio.to_thread(command.downgrade, config, "0009_intake_indexes")
    try:
        async with make_sessions(engine).begin() as session:
            requester = Requester(email="aliya@eco.gov.kz")
            session.add(requester)
            await session.flush()
            for n, (status, assignee) in enumerate(
                [("open", "ana"), ("waiting", "ana"), ("closed", "ana"), ("new", None), ("resolved", "boris")]
            ):
                session.add(
                    Ticket(
                        reference=f"TSCC-2026-{n:04d}",
                        subject="s",
                        channel="email",
                        status=status,
                        assignee=assignee,
                        requester_id=requester.id,
                        tags=[],
                    )
                )
    finally:
        await asyncio.to_thread(command.upgrade, config, "head")
    async with make_sessions(engine)() as session:
        assert await expert_load(session) == await counted_load(session) == {"ana": 2}


async def test_health_reports_drift_and_recount_load_repairs_it(
    desk: Desk, database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for reference in [await _request(desk, n) for n in range(2)]:
        await assign(desk, reference, "ana", actor="staff")
    settings = Settings(database_url=database_url)
    assert (await check_database(settings)).ok
    async with desk.sessions.begin() as session:  # a hand edit the triggers cannot see
        await session.execute(update(ExpertLoad).values(open_tickets=7))
        session.add(ExpertLoad(assignee="ghost", open_tickets=1))
    check = await check_database(settings)
    assert not check.ok
    assert (
        "expert load differs from the tickets (ana kept 7, counted 2, ghost kept 1, counted 0)"
        in check.detail
    )
    assert "helpdesk db recount-load" in check.detail

    for name in ("HELPDESK_SMTP_HOST", "HELPDESK_IMAP_HOST", "HELPDESK_TELEGRAM_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HELPDESK_DATABASE_URL", database_url)
    assert await asyncio.to_thread(main, ["db", "recount-load"]) == 0
    assert "expert load recounted: 2 assignee(s) corrected" in capsys.readouterr().out
    assert (await check_database(settings)).ok
    assert (await _figures(desk))[0] == {"ana": 2}
    assert await recount_load(desk) == {}
