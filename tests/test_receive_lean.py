"""`receive` lean (issue 12, item 2): reads first, one flush, no second UPDATE of a new ticket, and no
pre-ping round trip on PostgreSQL without losing the recovery from a database restart."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from helpdesk.db.models import AuditEvent, Message, OutboxItem, Ticket, TicketParticipant
from helpdesk.db.transient import retrying
from helpdesk.desk import Desk
from helpdesk.flood import FloodLimits
from helpdesk.messages import InboundMessage, Sender
from helpdesk.service import RECEIVE_RETRY_DELAYS
from helpdesk.usecases.receive import ReceiveResult, receive, receive_in_session
from helpdesk.usecases.take import take_message, take_together


def request(n: int, **kw: Any) -> InboundMessage:
    return InboundMessage(
        channel="email",
        channel_message_id=f"<lean.{n}@eco.gov.kz>",
        sender=Sender(name="Aliya", email=f"aliya.{n}@eco.gov.kz"),
        subject="Wetland inventory",
        text="Our ministry needs guidance on the inventory of wetlands under target 2.",
        cc=("deputy@eco.gov.kz",),
        **kw,
    )


async def test_a_new_ticket_is_written_by_one_flush_with_its_classification(
    desk: Desk, engine: AsyncEngine
) -> None:
    statements: list[str] = []

    def on_execute(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        statements.append(" ".join(statement.split()[:3]))

    flushes: list[int] = []
    event.listen(engine.sync_engine, "before_cursor_execute", on_execute)
    try:
        async with desk.sessions.begin() as session:
            event.listen(session.sync_session, "after_flush", lambda *_: flushes.append(1))
            result = await receive_in_session(desk, session, request(1))
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", on_execute)
    assert result.created and len(flushes) == 1
    assert not [s for s in statements if s.startswith("UPDATE")], statements
    async with desk.sessions() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.reference == result.reference))
        assert ticket is not None and ticket.classification and ticket.matches
        actions = list(
            await session.scalars(
                select(AuditEvent.action).where(AuditEvent.ticket_id == ticket.id).order_by(AuditEvent.id)
            )
        )
        assert actions == ["created", "classified", "received"]
        kinds = list(await session.scalars(select(Message.kind).where(Message.ticket_id == ticket.id)))
        assert sorted(kinds) == ["inbound", "outbound"]
        [item] = list(
            await session.scalars(
                select(OutboxItem).where(
                    OutboxItem.ticket_id == ticket.id, OutboxItem.message_id.is_not(None)
                )
            )
        )
        assert item.payload["recipient"] == "aliya.1@eco.gov.kz"
        # The Cc of the mail that opened the ticket is its participant, written in the same flush.
        participants = await session.scalars(
            select(TicketParticipant.email).where(TicketParticipant.ticket_id == ticket.id)
        )
        assert list(participants) == ["deputy@eco.gov.kz"]


async def test_a_dropped_connection_costs_one_retry_not_the_message(
    desk: Desk, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no server to drop the connection")
    await receive(desk, request(2))  # a pooled connection, now idle
    name = database_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        # What a database restart does to the pool: every idle connection is gone.
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
    finally:
        await admin.close()
    caplog.set_level(logging.WARNING)
    result = await retrying(
        lambda: receive(desk, request(3)), RECEIVE_RETRY_DELAYS, what="receiving after a restart"
    )
    assert result.created
    retries = [r for r in caplog.records if "receiving after a restart failed" in r.getMessage()]
    assert len(retries) <= 1, [r.getMessage() for r in retries]


async def test_a_batch_reads_the_triage_fingerprint_and_the_expert_load_once(
    desk: Desk, engine: AsyncEngine
) -> None:
    reads: list[str] = []

    def on_execute(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        if "expert_load" in statement and statement.lstrip().upper().startswith("SELECT"):
            reads.append("load")
        if "roster_experts" in statement and "labelled_examples" in statement:
            reads.append("fingerprint")

    event.listen(engine.sync_engine, "before_cursor_execute", on_execute)
    try:
        async with desk.sessions.begin() as session:
            for n in range(10, 15):
                async with session.begin_nested():
                    assert (await receive_in_session(desk, session, request(n))).created
        assert sorted(reads) == ["fingerprint", "load"]
        # The next transaction reads again: a correction or an assignment in between counts at once.
        async with desk.sessions.begin() as session:
            assert (await receive_in_session(desk, session, request(20))).created
        assert sorted(reads) == ["fingerprint", "fingerprint", "load", "load"]
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", on_execute)


async def test_a_telegram_follow_up_reads_its_chat_s_open_tickets_once(
    desk: Desk, engine: AsyncEngine
) -> None:
    sender = Sender(name="Aigerim", telegram_user_id=8601, telegram_chat_id=8601, language="en")

    def message(n: int) -> InboundMessage:
        return InboundMessage(
            channel="telegram", channel_message_id=f"8601:{n}", sender=sender, text=f"Wetlands, part {n}"
        )

    first = await take_message(desk, message(1))
    assert isinstance(first, ReceiveResult) and first.created
    reads: list[str] = []

    def on_execute(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        flat = " ".join(statement.split())
        if flat.startswith("SELECT") and "FROM tickets" in flat and "tickets.telegram_chat_id =" in flat:
            reads.append(flat)

    event.listen(engine.sync_engine, "before_cursor_execute", on_execute)
    try:
        # The question's check (one open ticket, fresh: no question) and the threading share one read.
        second = await take_message(desk, message(2))
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", on_execute)
    assert isinstance(second, ReceiveResult) and second.reference == first.reference and not second.created
    assert len(reads) == 1, reads


async def test_a_lone_telegram_follow_up_counts_its_receipts_with_its_chat_s_open_tickets(
    desk: Desk, engine: AsyncEngine
) -> None:
    """Issue #12: a lone follow-up reads once (stored, question or offer open and the chat's open tickets
    with their receipts of the last minute and their staff-card queues, in one statement) and writes its
    rows; the receipt limit still holds on the count read along, and the card item it queued is one."""
    # A Telegram-only desk (no mail, so no staff notification mails to address).
    desk = replace(
        desk, staff_telegram_chat_id=-1009, mail_from=None, limits=FloodLimits(receipts_per_minute=1)
    )
    sender = Sender(name="Aigerim", telegram_user_id=8701, telegram_chat_id=8701, language="en")

    def message(n: int) -> InboundMessage:
        return InboundMessage("telegram", f"8701:{n}", sender, f"Wetlands, part {n}")

    [first] = await take_together(desk, [message(1)])
    assert isinstance(first, ReceiveResult) and first.created
    selects: list[list[str]] = []

    def on_execute(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        flat = " ".join(statement.split())
        if flat.startswith("SELECT"):
            selects[-1].append(flat)

    event.listen(engine.sync_engine, "before_cursor_execute", on_execute)
    try:
        for n in (2, 3):
            selects.append([])
            [taken] = await take_together(desk, [message(n)])
            assert (
                isinstance(taken, ReceiveResult) and taken.ticket_id == first.ticket_id and not taken.created
            )
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", on_execute)
    for seen in selects:
        assert len(seen) == 1, seen
        assert "FROM pending_choices" in seen[0] and "FROM tickets JOIN requesters" in seen[0], seen
        assert "FROM outbox" in seen[0], seen  # the card queue came along
        assert not [s for s in seen if s.startswith("SELECT count(*)")], seen
    async with desk.sessions() as session:
        receipts = await session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.ticket_id == first.ticket_id, Message.kind == "outbound")
        )
        cards = await session.scalar(
            select(func.count())
            .select_from(OutboxItem)
            .where(OutboxItem.ticket_id == first.ticket_id, OutboxItem.message_id.is_(None))
        )
    # The registration receipt, one follow-up receipt (one a minute), then silence.
    assert receipts == 2
    assert cards == 1  # the card item waiting since the first message covers both follow-ups
