"""Every look-up intake and delivery issue is served by an index, on SQLite and PostgreSQL.

The statements are not restated here: they are captured while real messages go through `receive` and the
delivery worker (SMTP and Bot API stand-ins), then each is explained. A plan that reads a table in full, or
searches messages or tickets by their channel alone (two values: half the table), fails; it grows with the
history (bench/bench_scale.md has the figures at 100,000 tickets). The staff group is on, so the statements
of queueing and drawing staff cards are among them.
"""

from __future__ import annotations

from typing import Any

import bench_modules
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.sender import TelegramSender
from helpdesk.desk import Desk
from helpdesk.email.smtp_sender import SmtpSender
from helpdesk.messages import InboundMessage, Sender
from helpdesk.usecases.receive import receive
from helpdesk.worker import DeliveryWorker
from standins.smtp_server import SmtpStandIn
from standins.telegram_api import TelegramApiStandIn

ALIYA = Sender(name="Aliya", email="Aliya@Eco.gov.kz")
FARRUKH = Sender(name="Farrukh", telegram_user_id=5001, telegram_chat_id=5001, language="en")


async def _traffic(desk: Desk, smtp: SmtpStandIn, bot_api: TelegramApiStandIn) -> None:
    """New and follow-up messages on both channels, then their delivery."""
    first = await receive(
        desk,
        InboundMessage(
            channel="email",
            channel_message_id="<q1@eco.gov.kz>",
            sender=ALIYA,
            subject="PAME tools",
            text="We need PAME tools",
        ),
    )
    followup = await receive(
        desk,
        InboundMessage(
            channel="email",
            channel_message_id="<q2@eco.gov.kz>",
            sender=Sender(email="aliya@eco.gov.kz"),
            subject="Re: tools",
            text="One more question",
            replies_to=("<q1@eco.gov.kz>",),
        ),
    )
    assert followup.ticket_id == first.ticket_id and not followup.created  # threaded by In-Reply-To
    await receive(
        desk,
        InboundMessage(
            channel="telegram",
            channel_message_id="5001:1",
            sender=FARRUKH,
            text="How do we report on the inventory?",
        ),
    )
    await receive(
        desk,
        InboundMessage(
            channel="telegram", channel_message_id="5001:2", sender=FARRUKH, text="And the deadline?"
        ),
    )
    duplicate = await receive(
        desk,
        InboundMessage(
            channel="telegram", channel_message_id="5001:2", sender=FARRUKH, text="And the deadline?"
        ),
    )
    assert duplicate.duplicate
    smtp_sender = SmtpSender(
        smtp.host, smtp.port, tls=False, mail_from="helpdesk@tscc.example.org", timeout=5
    )
    async with TelegramSender(bot_api.token, bot_api.base_url) as telegram:
        worker = DeliveryWorker(desk.sessions, {"email": smtp_sender, "telegram": telegram})
        delivered = 0
        while claimed := await worker.deliver_due():
            delivered += claimed
    assert delivered >= 3  # the receipts went out, through the claim and mark-sent statements


async def _plans(engine: AsyncEngine, statements: dict[str, Any]) -> dict[str, list[str]]:
    plans = {}
    async with engine.connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        for statement, parameters in statements.items():
            if engine.dialect.name == "postgresql":
                async with raw.transaction():
                    # The tables are tiny here: forbid sequential scans so the plan shows whether an index
                    # *can* serve the look-up, as it must once there are 100,000 tickets.
                    await raw.execute("SET LOCAL enable_seqscan = off")
                    rows = await raw.fetch("EXPLAIN " + statement, *(parameters or ()))
                plans[statement] = [row[0] for row in rows]
            else:
                cursor = await raw.execute("EXPLAIN QUERY PLAN " + statement, parameters or ())
                plans[statement] = [row[3] for row in await cursor.fetchall()]
    return plans


async def test_intake_and_delivery_lookups_are_served_by_indexes(
    desk: Desk, engine: AsyncEngine, smtp: SmtpStandIn, bot_api: TelegramApiStandIn
) -> None:
    statements: dict[str, Any] = {}
    desk.staff_telegram_chat_id = -1001200  # the staff cards are queued, coalesced and drawn too

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if not many and statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "WITH")):
            statements.setdefault(statement, parameters)

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        await _traffic(desk, smtp, bot_api)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)

    assert any("lower(requesters.email)" in s for s in statements)  # the look-ups under test were issued
    assert any("channel_message_id IN" in s for s in statements)
    assert any("outbox.status" in s for s in statements)
    assert any("FROM expert_load" in s for s in statements)  # triage's load: a few rows, not a count
    assert any("count(messages.id)" in s for s in statements)  # the card counts with SQL
    assert any("outbox.locked_until IS NULL" in s for s in statements)  # is a card item still waiting?
    if engine.dialect.name == "postgresql":
        assert any("FOR UPDATE OF messages" in s for s in statements)  # the worker's one-statement mark
    unserved = {
        s: bad
        for s, plan in (await _plans(engine, statements)).items()
        if (bad := bench_modules.load("plans").unserved(plan))
    }
    assert unserved == {}
