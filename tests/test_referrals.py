"""Matchmaking (issue #14): a ticket referred to an expert of the roster, and followed to an answer.

Through the real parts on loopback: pymap IMAP → parser → desk (SQLite and PostgreSQL) → outbox → delivery
worker → aiosmtpd SMTP and the Bot API stand-in. Attacks first: a forged expert answer attaches nothing.
"""

# The mail-trust tests' runtime fixture is reused by name, so test parameters shadow its import.
# ruff: noqa: F811

from __future__ import annotations

from email.utils import getaddresses

import pytest
from sqlalchemy import select
from test_mail_trust import (  # noqa: F401 - runtime is a fixture
    MX,
    REQUESTER,
    arrive,
    body_of,
    drain,
    email_request,
    mail,
    mailed_to,
    messages,
    runtime,
)

from helpdesk.db.models import Referral
from helpdesk.service import Runtime
from helpdesk.usecases.referrals import refer
from standins.imap_server import ImapStandIn
from standins.smtp_server import CapturedMessage, SmtpStandIn

EXPERT = "expert001@example.org"  # ex-001 of the packaged example roster: Russian first
OTHER_EXPERT = "expert002@example.org"


async def referrals(runtime: Runtime) -> list[Referral]:
    async with runtime.desk.sessions() as session:
        return list(await session.scalars(select(Referral).order_by(Referral.id)))


async def offered(runtime: Runtime, imap: ImapStandIn, smtp: SmtpStandIn) -> tuple[str, CapturedMessage]:
    ticket = await email_request(runtime, imap)
    await refer(runtime.desk, ticket.reference, ["ex-001"], message="Could you advise them?", actor="cli:t")
    await drain(runtime)
    [offer] = mailed_to(smtp, EXPERT)
    return ticket.reference, offer


def answer(
    offer: CapturedMessage, *, sender: str, body: str, message_id: str, top: tuple[str, ...] = ()
) -> bytes:
    [(_, reply_to)] = getaddresses([str(offer.message["Reply-To"])])
    return mail(
        sender=sender,
        subject=f"Re: {offer.message['Subject']}",
        body=body,
        message_id=message_id,
        to=reply_to,
        top=top,
        extra=(f"In-Reply-To: {offer.message['Message-ID']}",),
    )


async def test_the_offer_reaches_the_expert_in_their_language_without_the_requesters_contact(
    runtime: Runtime, imap: ImapStandIn, smtp: SmtpStandIn
) -> None:
    reference, offer = await offered(runtime, imap, smtp)
    text = body_of(offer)
    assert f"[{reference} R1]" in str(offer.message["Subject"])
    assert "Could you advise them?" in text and "да" in text  # ru: the expert's first language
    assert REQUESTER not in text and "Umarov" not in text
    assert "+r1-" in str(offer.message["Reply-To"])
    [referral] = await referrals(runtime)
    assert (referral.state, referral.channel, referral.language) == ("offered", "email", "ru")


async def test_an_expert_answers_yes_in_russian_and_it_threads_into_the_ticket_for_staff_only(
    runtime: Runtime, imap: ImapStandIn, smtp: SmtpStandIn
) -> None:
    reference, offer = await offered(runtime, imap, smtp)
    to_requester = len(mailed_to(smtp, REQUESTER))
    await arrive(
        runtime,
        imap,
        answer(offer, sender=EXPERT, body="Да, могу помочь.\n\nС уважением", message_id="<a1@x>"),
    )
    [referral] = await referrals(runtime)
    assert referral.state == "accepted" and referral.answered_at is not None
    [kept] = [m for m in await messages(runtime, reference) if m.kind == "expert"]
    assert "могу помочь" in kept.body and kept.author == "expert:ex-001"
    assert len(mailed_to(smtp, REQUESTER)) == to_requester  # never sent to the requester by itself
    assert len(mailed_to(smtp, EXPERT)) == 1  # and no receipt for the expert


async def test_a_decline_moves_the_referral_to_declined(
    runtime: Runtime, imap: ImapStandIn, smtp: SmtpStandIn
) -> None:
    _, offer = await offered(runtime, imap, smtp)
    await arrive(runtime, imap, answer(offer, sender=EXPERT, body="Нет, к сожалению.", message_id="<d1@x>"))
    [referral] = await referrals(runtime)
    assert referral.state == "declined"


@pytest.mark.parametrize(
    ("sender", "top"),
    [
        ("attacker@evil.example", ()),  # another address, the signed Reply-To and In-Reply-To copied
        (
            EXPERT,
            (
                f"Authentication-Results: {MX}; spf=fail smtp.mailfrom=example.org; "
                "dmarc=fail header.from=example.org",
            ),
        ),
    ],
    ids=["other-address", "failed-authentication"],
)
async def test_a_forged_expert_answer_attaches_nothing_and_changes_nothing(
    runtime: Runtime, imap: ImapStandIn, smtp: SmtpStandIn, sender: str, top: tuple[str, ...]
) -> None:
    reference, offer = await offered(runtime, imap, smtp)
    before = [m.id for m in await messages(runtime, reference)]
    await arrive(runtime, imap, answer(offer, sender=sender, body="Да", message_id="<forged@x>", top=top))
    [referral] = await referrals(runtime)
    assert referral.state == "offered" and referral.first_answer_at is None
    assert [m.id for m in await messages(runtime, reference)] == before
