"""Mail fetched from pymap becomes tickets in the database, is marked seen only after commit, and the
sender's acknowledgement goes out over SMTP — SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import func, select

from helpdesk.config import ImapSettings, Secret, Settings, SmtpSettings
from helpdesk.db.models import Ticket
from helpdesk.service import Runtime, open_runtime
from helpdesk.usecases.dead_letters import list_dead_letters
from standins.imap_server import ImapStandIn
from standins.smtp_server import SmtpStandIn

DATA = Path(__file__).parent / "data" / "mail"


def mail(
    n: int, *, sender: str = "aliya@eco.gov.kz", subject: str | None = None, text: str = "Need PAME tools"
) -> bytes:
    message = EmailMessage()
    message["From"] = f"Aliya <{sender}>"
    message["To"] = "helpdesk@tscc.example.org"
    message["Subject"] = subject or f"Request {n}"
    message["Message-ID"] = f"<m{n}@eco.gov.kz>"
    message.set_content(text)
    return message.as_bytes()


@pytest.fixture
async def runtime(engine, database_url: str) -> AsyncIterator[tuple[Runtime, ImapStandIn, SmtpStandIn]]:
    async with ImapStandIn() as imap, SmtpStandIn() as smtp:
        settings = Settings(
            database_url=database_url,
            imap=ImapSettings(imap.host, imap.port, imap.user, Secret(imap.password), False, "INBOX", 1),
            smtp=SmtpSettings(smtp.host, smtp.port, None, None, False),
            mail_from="helpdesk@tscc.example.org",
        )
        async with open_runtime(settings, migrate=False) as rt:
            yield rt, imap, smtp


async def ticket_count(rt: Runtime) -> int:
    async with rt.desk.sessions() as session:
        return await session.scalar(select(func.count(Ticket.id))) or 0


async def test_mail_becomes_tickets_and_is_acknowledged(runtime) -> None:
    rt, imap, smtp = runtime
    uids = [await imap.append(mail(n)) for n in range(3)]
    cp1251 = (
        (DATA / "outlook_reply_cp1251.eml").read_bytes()
        if (DATA / "outlook_reply_cp1251.eml").exists()
        else None
    )
    if cp1251 is not None:
        uids.append(await imap.append(cp1251))

    result = await rt.poll_mail_once()
    assert result.fetched == len(uids) and result.committed == len(uids)
    assert await imap.unseen_uids() == []
    assert await ticket_count(rt) == 4
    while await rt.worker.deliver_due():
        pass
    acks = await smtp.wait_for_messages(len(uids))
    # The worker serves different recipients concurrently: compare recipients, not their order.
    assert sorted(str(m.message["To"]) for m in acks).count("aliya@eco.gov.kz") == 3
    assert all("[TSCC-" in m.message["Subject"] for m in acks)

    again = await rt.poll_mail_once()
    assert again.fetched == 0


async def test_same_message_delivered_twice_is_one_ticket(runtime) -> None:
    rt, imap, _ = runtime
    await imap.append(mail(1))
    await imap.append(mail(1))  # the same Message-ID, e.g. a client that resent after a timeout
    result = await rt.poll_mail_once()
    assert result.committed == 2 and await imap.unseen_uids() == []
    assert await ticket_count(rt) == 1


async def test_not_an_email_becomes_a_dead_letter_and_does_not_block(runtime) -> None:
    rt, imap, _ = runtime
    await imap.append(b"\x00\x01 this is not a mail message at all")
    await imap.append(mail(2))
    result = await rt.poll_mail_once()
    # Issue 4: the bad one is kept raw in the database (a dead letter), so it is marked seen like the rest.
    assert result.committed == 2 and result.declined == 0
    assert await imap.unseen_uids() == []
    assert await ticket_count(rt) == 1
    [letter] = await list_dead_letters(rt.desk)
    assert "not an email" in letter["reason"]
