"""Channels as adapters (issue 11, item 3): each channel's composer, registered once; the desk never picks
an answer by a channel's name, and a channel nobody registered is refused, not answered as Telegram."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from helpdesk.composer import UnknownChannel
from helpdesk.db.models import AuditEvent, Message, OutboxItem, Requester, Ticket
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage, OversizedAttachment, Sender
from helpdesk.references import ticket_subject
from helpdesk.usecases.receive import receive
from helpdesk.usecases.reply import reply

ALIYA = Sender(name="Aliya", email="aliya@eco.gov.kz")
BIG = OversizedAttachment("survey.zip", "application/zip", 30 * 1024 * 1024)


def mail(message_id: str, **kw: object) -> InboundMessage:
    fields: dict = {"subject": "OECM guidance", "text": "We need guidance on OECMs.", **kw}
    return InboundMessage(channel="email", channel_message_id=message_id, sender=ALIYA, **fields)


async def _rows(desk: Desk, model: type) -> int:
    async with desk.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_message_on_a_channel_without_a_composer_is_refused_and_stores_nothing(desk: Desk) -> None:
    web = InboundMessage(
        channel="web",  # type: ignore[arg-type]
        channel_message_id="form-1",
        sender=Sender(name="Form", email="form@example.org"),
        text="Please help with our NBSAP",
    )
    with pytest.raises(UnknownChannel, match="no composer for channel 'web'"):
        await receive(desk, web)
    for model in (Ticket, Message, Requester, OutboxItem, AuditEvent):
        assert await _rows(desk, model) == 0, model


async def test_a_reply_on_a_channel_without_a_composer_is_refused_and_queues_nothing(desk: Desk) -> None:
    result = await receive(desk, mail("<c1@eco.gov.kz>"))
    queued = await _rows(desk, OutboxItem)
    without_email = replace(desk, composers={k: v for k, v in desk.composers.items() if k != "email"})
    with pytest.raises(UnknownChannel):
        await reply(without_email, result.reference, "Here is the guidance.", actor="cli:staff")
    assert await _rows(desk, OutboxItem) == queued


async def test_one_request_one_acknowledgement_naming_the_file_not_kept(desk: Desk) -> None:
    result = await receive(desk, mail("<c2@eco.gov.kz>", oversized_attachments=(BIG,)))
    async with desk.sessions() as session:
        to_requester = list(
            await session.scalars(
                select(OutboxItem).where(OutboxItem.payload["recipient"].as_string() == ALIYA.email)
            )
        )
    [ack] = [item.payload for item in to_requester]
    assert result.reference in ack["text"] and "survey.zip (30.0 MB)" in ack["text"]
    assert ack["subject"] == ticket_subject(result.reference, "OECM guidance")


async def test_a_hostile_file_name_is_escaped_in_the_html_acknowledgement(desk: Desk) -> None:
    hostile = OversizedAttachment('<img src=x onerror="alert(1)">.zip', "application/zip", 2 * 1024 * 1024)
    await receive(desk, mail("<c3@eco.gov.kz>", oversized_attachments=(hostile,)))
    async with desk.sessions() as session:
        html = await session.scalar(select(Message.html).where(Message.kind == "outbound"))
    assert html is not None and "&lt;img src=x" in html and "<img" not in html


def test_the_composers_load_no_channel_library() -> None:
    probe = (
        "import sys; from helpdesk.service import standard_composers; standard_composers(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('telegram', 'aioimaplib', 'aiosmtplib')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
