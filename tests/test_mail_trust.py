"""Mail trust (issue 10, item 1): nobody can send mail as staff.

Attacks first, through the real intake: pymap IMAP stand-in → parser → desk (SQLite and PostgreSQL) →
outbox → delivery worker → aiosmtpd SMTP stand-in and the Bot API stand-in. A staff address acts as staff
only when the Centre's mail server vouches for it or it answers a signed reply address; anything else from
a staff address is a stranger's mail, marked and alerted, never sent to a requester.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from email.utils import getaddresses
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from helpdesk.config import Settings
from helpdesk.db.engine import make_sessions
from helpdesk.db.models import AuditEvent, DeskSecret, Message, Requester, Ticket, TicketParticipant
from helpdesk.email.authentication import assess, parse_header, trusted_results
from helpdesk.email.intake import retry_dead_letter
from helpdesk.email.parse import load_message, parse_email
from helpdesk.messages import InboundMessage, Sender
from helpdesk.service import Runtime, open_runtime
from helpdesk.usecases.dead_letters import store_dead_letter
from helpdesk.usecases.desk_secrets import desk_secret
from helpdesk.usecases.listing import show_ticket
from helpdesk.usecases.receive import receive
from helpdesk.usecases.reply_addresses import reply_token, token_proves, token_ticket_id
from helpdesk.usecases.staff_mail import UNVERIFIED_SENDER_TAG, UNVERIFIED_STAFF_TAG
from standins.environment import standin_environment
from standins.imap_server import ImapStandIn
from standins.smtp_server import CapturedMessage, SmtpStandIn
from standins.telegram_api import TelegramApiStandIn

HELPDESK = "helpdesk@tscc.example"
STAFF = "staff@tscc.example"
LEAD = "lead@tscc.example"
MX = "mx.tscc.example"
STAFF_CHAT = -100500
REQUESTER = "b.umarov@ecology.uz"
FP_CHAT = 4242
IBAN = "pay the processing fee to IBAN KZ00 1234 5678 9012"
FAILED = (
    f"Authentication-Results: {MX}; spf=fail smtp.mailfrom={STAFF}; dkim=none; dmarc=fail "
    "header.from=tscc.example"
)
DKIM_PASS = f"Authentication-Results: {MX}; dkim=pass header.d=tscc.example header.i=@tscc.example"


def mail(
    *,
    sender: str,
    subject: str,
    body: str,
    message_id: str,
    to: str = HELPDESK,
    top: tuple[str, ...] = (),
    extra: tuple[str, ...] = (),
) -> bytes:
    """A raw message as our server delivers it: ``top`` are the fields it put above the sender's own."""
    lines = [
        *top,
        "Received: from relay.example (relay.example [192.0.2.1]) by mx.tscc.example",
        f"From: {sender}",
        f"To: {to}",
        *extra,
        f"Subject: {subject}",
        f"Message-ID: {message_id}",
        "Date: Tue, 10 Mar 2026 09:15:00 +0500",
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="utf-8"',
        "",
        body,
        "",
    ]
    return "\r\n".join(lines).encode("utf-8")


@pytest.fixture
async def runtime(
    engine: AsyncEngine,
    database_url: str,
    imap: ImapStandIn,
    smtp: SmtpStandIn,
    bot_api: TelegramApiStandIn,
    workdir: Path,
) -> AsyncIterator[Runtime]:
    env = {
        "HELPDESK_DATABASE_URL": database_url,
        **standin_environment(imap=imap, smtp=smtp, bot_api=bot_api),
        "HELPDESK_TELEGRAM_STAFF_CHAT_ID": str(STAFF_CHAT),
        "HELPDESK_MAIL_FROM": HELPDESK,
        "HELPDESK_STAFF_EMAILS": f"{STAFF},{LEAD}",
        "HELPDESK_MAIL_TRUSTED_AUTHSERV_ID": MX.upper(),  # compared case-insensitively
        "HELPDESK_REPORT_LANGUAGE": "en",
    }
    async with open_runtime(Settings.from_env(env), migrate=False) as opened:
        yield opened


async def arrive(runtime: Runtime, imap: ImapStandIn, raw: bytes) -> None:
    """The mail reaches the mailbox and one poll takes it in, then everything queued is delivered."""
    await imap.append(raw)
    result = await runtime.poll_mail_once()
    assert (result.committed, result.failed) == (1, 0)
    await drain(runtime)


async def drain(runtime: Runtime) -> None:
    while await runtime.worker.deliver_due():
        pass


async def ticket_of(runtime: Runtime, email: str) -> Ticket:
    async with runtime.desk.sessions() as session:
        ticket = await session.scalar(
            select(Ticket)
            .join(Requester, Requester.id == Ticket.requester_id)
            .where(Requester.email == email)
            .order_by(Ticket.id.desc())
            .limit(1)
        )
    assert ticket is not None
    return ticket


async def ticket(runtime: Runtime, reference: str) -> Ticket:
    async with runtime.desk.sessions() as session:
        found = await session.scalar(select(Ticket).where(Ticket.reference == reference))
    assert found is not None
    return found


async def messages(runtime: Runtime, reference: str) -> list[Message]:
    found = await ticket(runtime, reference)
    async with runtime.desk.sessions() as session:
        return list(
            await session.scalars(select(Message).where(Message.ticket_id == found.id).order_by(Message.id))
        )


async def audits(runtime: Runtime, action: str) -> list[AuditEvent]:
    async with runtime.desk.sessions() as session:
        return list(await session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def mailed_to(smtp: SmtpStandIn, address: str) -> list[CapturedMessage]:
    return [m for m in smtp.messages if address in m.rcpt_tos]


def body_of(captured: CapturedMessage) -> str:
    part = captured.message.get_body(preferencelist=("plain",))
    assert part is not None
    return part.get_content()


async def email_request(runtime: Runtime, imap: ImapStandIn, n: int = 1) -> Ticket:
    raw = mail(
        sender=f"Bekzod Umarov <{REQUESTER}>",
        subject=f"Support for spatial planning {n}",
        body="We need support for spatial planning (Target 1).",
        message_id=f"<request-{n}@ecology.uz>",
        extra=("Cc: Saida Alimova <s.alimova@ecology.uz>",),
    )
    await arrive(runtime, imap, raw)
    return await ticket_of(runtime, REQUESTER)


async def closed_email_request(runtime: Runtime, imap: ImapStandIn) -> Ticket:
    original = await email_request(runtime, imap)
    async with runtime.desk.sessions.begin() as session:
        closed = await session.get(Ticket, original.id)
        assert closed is not None
        closed.status = "closed"
    return original


async def telegram_request(runtime: Runtime) -> Ticket:
    sender = Sender(name="Focal point", telegram_user_id=FP_CHAT, telegram_chat_id=FP_CHAT)
    inbound = InboundMessage("telegram", f"{FP_CHAT}:1", sender, "Help with the Target 3 national report")
    result = await receive(runtime.desk, inbound)
    await drain(runtime)
    return await ticket(runtime, result.reference)


async def staff_mail_on(
    runtime: Runtime, imap: ImapStandIn, tickets: tuple[Ticket, ...], body: str, verdict: str
) -> None:
    """A mail From the staff address answering each ticket, with ``verdict`` on top from our server."""
    for n, target in enumerate(tickets):
        raw = mail(
            sender=f"TSCC Staff <{STAFF}>",
            subject=f"Re: [{target.reference}] Your request",
            body=body.format(n=n),
            message_id=f"<staff-{n}@tscc.example>",
            top=(verdict,),
        )
        await arrive(runtime, imap, raw)


def notification_reply_to(smtp: SmtpStandIn, staff: str, reference: str) -> str:
    """The Reply-To of the notification ``staff`` got about ``reference``."""
    [notice] = [m for m in mailed_to(smtp, staff) if f"[{reference}]" in str(m.message["Subject"])]
    [(_, address)] = getaddresses([str(notice.message["Reply-To"])])
    return address


# --- the attacks ------------------------------------------------------------------------------------------


async def test_forged_staff_mail_with_failed_authentication_reaches_no_requester(
    runtime: Runtime, imap: ImapStandIn, smtp: SmtpStandIn, bot_api: TelegramApiStandIn
) -> None:
    by_email = await email_request(runtime, imap)
    by_telegram = await telegram_request(runtime)
    requester_mail_before = len(mailed_to(smtp, REQUESTER))
    fp_messages_before = len(bot_api.sent_messages(FP_CHAT))

    await staff_mail_on(
        runtime, imap, (by_email, by_telegram), f"Dear colleague, to continue {IBAN}.", FAILED
    )

    # Nothing of it reached either requester, on either channel.
    assert len(mailed_to(smtp, REQUESTER)) == requester_mail_before
    assert all("IBAN" not in body_of(m) for m in mailed_to(smtp, REQUESTER))
    assert len(bot_api.sent_messages(FP_CHAT)) == fp_messages_before
    assert all("IBAN" not in m.get("text", "") for m in bot_api.sent_messages(FP_CHAT))
    for target in (by_email, by_telegram):
        assert all("IBAN" not in m.body for m in await messages(runtime, target.reference))
        assert (await ticket(runtime, target.reference)).status == target.status

    # Each forgery is a stranger's new ticket, marked, and the staff group is alerted.
    async with runtime.desk.sessions() as session:
        forged_tickets = list(
            await session.scalars(
                select(Ticket)
                .where(Ticket.reference.not_in([by_email.reference, by_telegram.reference]))
                .order_by(Ticket.id)
            )
        )
    assert len(forged_tickets) == 2
    for forged_ticket, original in zip(forged_tickets, (by_email, by_telegram), strict=True):
        assert UNVERIFIED_STAFF_TAG in forged_ticket.tags
        stored = await messages(runtime, forged_ticket.reference)
        [inbound] = [m for m in stored if m.kind == "inbound"]
        assert inbound.unverified and "IBAN" in inbound.body
        notes = [m.body for m in stored if m.kind == "note"]
        assert any(n.startswith("Unverified staff sender") for n in notes)
        assert any(f"Possible follow-up of {original.reference}" in n for n in notes)
        alerts = [
            m["text"]
            for m in bot_api.sent_messages(STAFF_CHAT)
            if "⚠" in m["text"] and forged_ticket.reference in m["text"]
        ]
        assert len(alerts) == 1 and STAFF in alerts[0]
    assert len(await audits(runtime, "unverified_staff_sender")) == 2
    # The other staff member's notification says loudly that the sender is not proven.
    warned = [m for m in mailed_to(smtp, LEAD) if "UNVERIFIED SENDER" in body_of(m)]
    assert len(warned) == 2


async def test_staff_address_hidden_in_an_encoded_display_name_is_only_a_name(
    runtime: Runtime, imap: ImapStandIn, smtp: SmtpStandIn
) -> None:
    original = await email_request(runtime, imap)
    # Passes DMARC for evil.example: the address, not the name, is what the server checked.
    hidden = "=?utf-8?q?Staff_=3Cstaff=40tscc=2Eexample=3E=0A?="
    victim = "=?utf-8?q?Ministry_=3Cvictim=40ministry=2Eexample=3E?="
    forged = mail(
        sender=f"{hidden} <attacker@evil.example>",
        subject=f"Re: [{original.reference}] Your request",
        body=f"Dear colleague, {IBAN}.",
        message_id="<display@evil.example>",
        top=(
            f"Authentication-Results: {MX}; dkim=pass header.d=evil.example; "
            "dmarc=pass header.from=evil.example",
        ),
        extra=(f"Cc: {victim} <cc@evil.example>",),
    )
    parsed = parse_email(forged, own_addresses=[HELPDESK], trusted_authserv_id=MX)
    assert parsed.sender.email == "attacker@evil.example"
    assert parsed.sender.name == "Staff <staff@tscc.example>"  # decoded, on one line, and only a name
    assert parsed.cc == ("cc@evil.example",)
    assert parsed.authenticity.verdict == "verified" and parsed.authenticity.domains == ("evil.example",)

    before = len(mailed_to(smtp, REQUESTER))
    await arrive(runtime, imap, forged)
    assert len(mailed_to(smtp, REQUESTER)) == before
    stranger = await ticket_of(runtime, "attacker@evil.example")
    assert stranger.reference != original.reference and UNVERIFIED_STAFF_TAG not in stranger.tags
    # The receipt goes to the address the mail came from, never to one hidden in a display name.
    assert [m.rcpt_tos for m in smtp.messages if "display" in str(m.message["In-Reply-To"])] == [
        ("attacker@evil.example",)
    ]
    assert not mailed_to(smtp, "victim@ministry.example")
    async with runtime.desk.sessions() as session:
        participants = set(
            await session.scalars(
                select(TicketParticipant.email).where(TicketParticipant.ticket_id == stranger.id)
            )
        )
    assert participants == {"cc@evil.example"}


async def test_forged_lower_authentication_results_never_count(
    runtime: Runtime, imap: ImapStandIn, smtp: SmtpStandIn
) -> None:
    original = await email_request(runtime, imap)
    forged_pass = (
        f"Authentication-Results: {MX}; dkim=pass header.d=tscc.example; dmarc=pass header.from=tscc.example"
    )
    real = f"Authentication-Results: {MX}; spf=softfail smtp.mailfrom={STAFF}; dkim=none; dmarc=none"
    subject = f"Re: [{original.reference}]"

    def forged(n: int, top: tuple[str, ...], extra: tuple[str, ...]) -> bytes:
        return mail(
            sender=STAFF, subject=subject, body=IBAN, message_id=f"<v{n}@evil.example>", top=top, extra=extra
        )

    variants = {
        # Our server's verdict on top; the sender's copy below their own headers.
        "below-ours": forged(1, (real,), (forged_pass,)),
        # Our server added none: a copy among the sender's headers still does not count.
        "no-ours": forged(2, (), (forged_pass,)),
        # Below a Received line, after our server's block: not contiguous with it.
        "after-received": forged(3, (real, "Received: by relay", forged_pass), ()),
    }
    for raw in variants.values():
        assert parse_email(raw, trusted_authserv_id=MX).authenticity.verdict != "verified"
    before = len(mailed_to(smtp, REQUESTER))
    for raw in variants.values():
        await arrive(runtime, imap, raw)
    assert len(mailed_to(smtp, REQUESTER)) == before
    assert len(await audits(runtime, "unverified_staff_sender")) == len(variants)


async def test_staff_mail_vouched_for_by_the_trusted_server_is_relayed_on_both_channels(
    runtime: Runtime, imap: ImapStandIn, smtp: SmtpStandIn, bot_api: TelegramApiStandIn
) -> None:
    by_email = await email_request(runtime, imap)
    by_telegram = await telegram_request(runtime)
    await staff_mail_on(
        runtime, imap, (by_email, by_telegram), "Here is the guidance, number {n}.", DKIM_PASS
    )
    assert any("guidance, number 0" in body_of(m) for m in mailed_to(smtp, REQUESTER))
    assert any("guidance, number 1" in m["text"] for m in bot_api.sent_messages(FP_CHAT))
    assert not await audits(runtime, "unverified_staff_sender")
    assert (await ticket(runtime, by_email.reference)).status == "waiting"


async def test_signed_reply_address_proves_staff_and_nothing_else_does(
    runtime: Runtime, imap: ImapStandIn, smtp: SmtpStandIn
) -> None:
    first = await email_request(runtime, imap, 1)
    second = await email_request(runtime, imap, 2)
    staff_first = notification_reply_to(smtp, STAFF, first.reference)
    lead_first = notification_reply_to(smtp, LEAD, first.reference)
    local, _, domain = staff_first.partition("@")
    assert local.startswith("helpdesk+") and domain == "tscc.example"
    mac = local.rpartition("-")[2]
    tampered = local[:-1] + ("a" if mac[-1] != "a" else "b") + "@" + domain
    truncated = local[:-1] + "@" + domain

    attempts = {
        "tampered": (tampered, first.reference),
        "truncated": (truncated, first.reference),
        "another staff member's": (lead_first, first.reference),
        "another ticket's": (staff_first, second.reference),
    }
    before = len(mailed_to(smtp, REQUESTER))
    for n, (label, (address, reference)) in enumerate(attempts.items()):
        raw = mail(
            sender=STAFF,
            to=address,
            subject=f"Re: [{reference}] Support",
            body=f"Not relayed: {label} token.",
            message_id=f"<attempt-{n}@tscc.example>",
        )
        await arrive(runtime, imap, raw)
    assert len(mailed_to(smtp, REQUESTER)) == before, [body_of(m) for m in mailed_to(smtp, REQUESTER)]
    assert len(await audits(runtime, "unverified_staff_sender")) == len(attempts)

    # The staff member answers their own notification: relayed to the requester of that ticket.
    answer = mail(
        sender=f"Staff Member <{STAFF}>",
        to=staff_first,
        subject=f"Re: [{first.reference}] Support",
        body="Relayed: the guidance on spatial planning is attached to our site.",
        message_id="<answer@tscc.example>",
    )
    await arrive(runtime, imap, answer)
    relayed = [m for m in mailed_to(smtp, REQUESTER) if "Relayed: the guidance" in body_of(m)]
    assert len(relayed) == 1 and f"[{first.reference}]" in str(relayed[0].message["Subject"])
    # The signed address is not a participant of anything.
    async with runtime.desk.sessions() as session:
        participants = set(await session.scalars(select(TicketParticipant.email)))
    assert not any(p.startswith("helpdesk+") for p in participants)


async def test_staff_notifications_are_signed_bounded_and_not_about_ones_own_or_automatic_mail(
    runtime: Runtime, imap: ImapStandIn, smtp: SmtpStandIn
) -> None:
    first = await email_request(runtime, imap)
    [notice] = [m for m in mailed_to(smtp, STAFF) if f"[{first.reference}]" in str(m.message["Subject"])]
    assert notice.message["Auto-Submitted"] == "auto-generated"
    assert "spatial planning" in body_of(notice) and "New request" in body_of(notice)
    token = notification_reply_to(smtp, STAFF, first.reference).partition("+")[2].partition("@")[0]
    assert token_ticket_id(token) == first.id
    assert token != notification_reply_to(smtp, LEAD, first.reference).partition("+")[2].partition("@")[0]

    # A staff member's own proven new request notifies the other staff member only.
    own = mail(
        sender=STAFF,
        subject="Question on Target 21",
        body="Which data do we hold?",
        message_id="<own@tscc.example>",
        top=(DKIM_PASS,),
    )
    staff_before, lead_before = len(mailed_to(smtp, STAFF)), len(mailed_to(smtp, LEAD))
    await arrive(runtime, imap, own)
    assert len(mailed_to(smtp, LEAD)) == lead_before + 1
    # Their own mail gets the receipt every sender gets, but no notification about it.
    own_mail = mailed_to(smtp, STAFF)[staff_before:]
    assert [str(m.message["Auto-Submitted"]) for m in own_mail] == ["auto-replied"]

    # Automatic mail notifies nobody.
    lead_before = len(mailed_to(smtp, LEAD))
    robot = mail(
        sender="noreply@portal.example",
        subject="Weekly digest",
        body="Digest",
        message_id="<robot@portal.example>",
        extra=("Auto-Submitted: auto-generated",),
    )
    await arrive(runtime, imap, robot)
    assert len(mailed_to(smtp, LEAD)) == lead_before

    # Bounded: the per-recipient limit on automatic mail holds for staff notifications too.
    assert lead_before == 2
    runtime.desk.mail_ack_limit_per_hour = 3
    for n in range(3):
        await email_request(runtime, imap, 10 + n)
    assert len(mailed_to(smtp, LEAD)) == 3
    suppressed = [
        event.detail
        for event in await audits(runtime, "auto_reply_suppressed")
        if event.detail["kind"] == "staff_notification" and event.detail["recipient"] == LEAD
    ]
    assert len(suppressed) == 2


async def test_unauthenticated_requester_mail_is_kept_but_changes_nothing(
    runtime: Runtime, imap: ImapStandIn, smtp: SmtpStandIn
) -> None:
    original = await closed_email_request(runtime, imap)
    participants_before = await _participants(runtime, original.id)
    requester_mail_before = len(mailed_to(smtp, REQUESTER))

    failed = (
        f"Authentication-Results: {MX}; spf=fail smtp.mailfrom={REQUESTER}; dmarc=fail header.from=ecology.uz"
    )
    spoofed = mail(
        sender=f"Bekzod Umarov <{REQUESTER}>",
        subject=f"Re: [{original.reference}] Support",
        body="Please also send everything to my new colleague.",
        message_id="<spoofed@evil.example>",
        top=(failed,),
        extra=("Cc: new.colleague@evil.example",),
    )
    await arrive(runtime, imap, spoofed)
    after = await ticket(runtime, original.reference)
    assert after.status == "closed" and UNVERIFIED_SENDER_TAG in after.tags
    stored = await messages(runtime, original.reference)
    [kept] = [m for m in stored if m.channel_message_id == "<spoofed@evil.example>"]
    assert kept.kind == "inbound" and kept.unverified
    shown = await show_ticket(runtime.desk, original.reference)  # what `helpdesk tickets show` prints
    assert [m["unverified"] for m in shown["messages"] if m["text"].startswith("Please also")] == [True]
    assert any(m.kind == "note" and m.body.startswith("Unverified sender") for m in stored)
    assert await _participants(runtime, original.id) == participants_before
    assert len(mailed_to(smtp, REQUESTER)) == requester_mail_before
    assert not await audits(runtime, "reopened")

    # Waiting stays waiting.
    async with runtime.desk.sessions.begin() as session:
        waiting = await session.get(Ticket, original.id)
        assert waiting is not None
        waiting.status = "waiting"
    again = spoofed.replace(b"<spoofed@evil.example>", b"<spoofed-2@evil.example>")
    await arrive(runtime, imap, again)
    assert (await ticket(runtime, original.reference)).status == "waiting"

    # Without a failing verdict the requester's mail works as before: it moves the ticket on.
    genuine = mail(
        sender=f"Bekzod Umarov <{REQUESTER}>",
        subject=f"Re: [{original.reference}] Support",
        body="Thank you, one more question.",
        message_id="<genuine@ecology.uz>",
        top=(
            f"Authentication-Results: {MX}; spf=pass smtp.mailfrom={REQUESTER}; "
            "dmarc=pass header.from=ecology.uz",
        ),
    )
    await arrive(runtime, imap, genuine)
    assert (await ticket(runtime, original.reference)).status == "open"


async def test_staff_vouching_needs_one_unambiguous_author(
    runtime: Runtime, imap: ImapStandIn, smtp: SmtpStandIn
) -> None:
    """The server's DKIM/DMARC pass is about the From it evaluated; where the desk could read another
    author out of the mail, the pass proves nothing about the one the desk reads."""
    original = await email_request(runtime, imap)
    tscc_pass = (
        f"Authentication-Results: {MX}; dkim=pass header.d=tscc.example; dmarc=pass header.from=tscc.example"
    )
    subject = f"Re: [{original.reference}] Your request"

    def staff_mail(n: int, sender: str, extra: tuple[str, ...] = ()) -> bytes:
        return mail(
            sender=sender, subject=subject, body=IBAN, message_id=f"<author-{n}@tscc.example>",
            top=(tscc_pass,), extra=extra,
        )  # fmt: skip

    variants = {
        # DKIM replay: a genuine tscc.example mail (signed From: an intern) with a From put on top of it.
        # Verifiers check the bottom-most From; the desk read the first one.
        "second From header": staff_mail(1, STAFF).replace(
            b"Subject:", b"From: intern@tscc.example\r\nSubject:", 1
        ),
        # A colleague's own signed mail whose From shows the staff address as its "name" part.
        "bare address before the angle-addr": staff_mail(2, f"{STAFF} <intern@tscc.example>"),
        # RFC 5322 mailbox-list: which one is the author?
        "mailbox-list": staff_mail(3, f"{STAFF}, intern@tscc.example"),
        # No From at all: the server's DMARC had no author to check.
        "Sender instead of From": staff_mail(4, STAFF).replace(b"From:", b"Sender:", 1),
    }
    for label, raw in variants.items():
        verdict = parse_email(raw, own_addresses=[HELPDESK], trusted_authserv_id=MX).authenticity.verdict
        assert verdict != "verified", label
    before = len(mailed_to(smtp, REQUESTER))
    for raw in variants.values():
        await arrive(runtime, imap, raw)
    assert len(mailed_to(smtp, REQUESTER)) == before, [body_of(m) for m in mailed_to(smtp, REQUESTER)]
    assert all("IBAN" not in m.body for m in await messages(runtime, original.reference))
    assert len(await audits(runtime, "unverified_staff_sender")) == len(variants)


async def test_forged_pass_right_below_our_servers_block_is_outweighed_by_its_dmarc_fail(
    runtime: Runtime, imap: ImapStandIn, smtp: SmtpStandIn
) -> None:
    """A server that adds its verdict but does not strip (RFC 8601 §5 unmet): the sender's own forged
    header starts their message, so it lands directly below ours, inside the topmost block. OpenDKIM adds
    nothing for an unsigned mail; OpenDMARC says fail. A DMARC fail for the sender's domain contradicts
    any DKIM pass for it: never verified."""
    original = await email_request(runtime, imap)
    ours = f"Authentication-Results: {MX}; dmarc=fail (p=none) header.from=tscc.example"
    forged = f"Authentication-Results: {MX}; dkim=pass header.d=tscc.example header.i=@tscc.example"
    raw = mail(
        sender=STAFF,
        subject=f"Re: [{original.reference}] Your request",
        body=IBAN,
        message_id="<merged-block@evil.example>",
        top=(ours, forged),
    )
    parsed = parse_email(raw, own_addresses=[HELPDESK], trusted_authserv_id=MX)
    assert parsed.authenticity.verdict == "failed"
    before = len(mailed_to(smtp, REQUESTER))
    await arrive(runtime, imap, raw)
    assert len(mailed_to(smtp, REQUESTER)) == before
    assert len(await audits(runtime, "unverified_staff_sender")) == 1


async def test_a_forged_header_the_documented_strip_rule_misses_is_not_read_either(
    runtime: Runtime, imap: ImapStandIn, smtp: SmtpStandIn
) -> None:
    r"""The README's strip rule (`/^Authentication-Results:\s*mx\.tscc\.example\b/ IGNORE`) misses an
    authserv-id behind a comment or in quotes, which RFC 8601 syntax allows; the reader must not accept
    what the strip rule lets through. Our server here checks SPF only and adds its header on top."""
    original = await email_request(runtime, imap)
    ours = f"Authentication-Results: {MX}; spf=pass smtp.mailfrom=relay.example"
    strip = re.compile(r"^Authentication-Results:\s*mx\.tscc\.example\b", re.IGNORECASE)
    forgeries = [
        f"Authentication-Results: (our mail server) {MX}; dkim=pass header.d=tscc.example",
        f'Authentication-Results: "{MX}"; dkim=pass header.d=tscc.example',
    ]
    before = len(mailed_to(smtp, REQUESTER))
    for n, forged in enumerate(forgeries):
        assert strip.match(forged) is None  # it survives the server's strip
        raw = mail(
            sender=STAFF, subject=f"Re: [{original.reference}] Your request", body=IBAN,
            message_id=f"<unstripped-{n}@evil.example>", top=(ours, forged),
        )  # fmt: skip
        assert parse_email(raw, trusted_authserv_id=MX).authenticity.verdict != "verified"
        await arrive(runtime, imap, raw)
    assert len(mailed_to(smtp, REQUESTER)) == before
    assert len(await audits(runtime, "unverified_staff_sender")) == len(forgeries)


async def test_requester_mail_cannot_dodge_a_dmarc_fail_by_blurring_its_author(
    runtime: Runtime, imap: ImapStandIn, smtp: SmtpStandIn
) -> None:
    """A mail whose From the server evaluated as evil.example (so DMARC passes there), or that gives the
    server no single author, while the desk reads the requester's address: kept, but changes nothing."""
    original = await closed_email_request(runtime, imap)
    participants_before = await _participants(runtime, original.id)
    evil_pass = (
        f"Authentication-Results: {MX}; spf=pass smtp.mailfrom=attacker@evil.example; "
        "dkim=pass header.d=evil.example; dmarc=pass header.from=evil.example"
    )
    no_author = (
        f"Authentication-Results: {MX}; spf=pass smtp.mailfrom=attacker@evil.example; "
        "dkim=pass header.d=evil.example; dmarc=none"
    )

    def spoof(n: int, sender: str, top: str) -> bytes:
        return mail(
            sender=sender, subject=f"Re: [{original.reference}] Support", body="Add my colleague.",
            message_id=f"<blur-{n}@evil.example>", top=(top,), extra=("Cc: new.colleague@evil.example",),
        )  # fmt: skip

    variants = [
        spoof(1, f"{REQUESTER} <attacker@evil.example>", evil_pass),
        spoof(2, REQUESTER, evil_pass).replace(b"To:", b"From: attacker@evil.example\r\nTo:", 1),
        spoof(3, f"{REQUESTER}, attacker@evil.example", evil_pass),
        spoof(4, REQUESTER, no_author).replace(b"From:", b"Sender:", 1),
    ]
    for raw in variants:
        await arrive(runtime, imap, raw)
    after = await ticket(runtime, original.reference)
    assert after.status == "closed" and UNVERIFIED_SENDER_TAG in after.tags
    kept = [m for m in await messages(runtime, original.reference) if m.body.startswith("Add my colleague")]
    assert len(kept) == len(variants) and all(m.unverified for m in kept)
    assert await _participants(runtime, original.id) == participants_before
    assert not await audits(runtime, "reopened")


async def test_a_retried_dead_letter_keeps_its_proof_and_its_lack_of_one(
    runtime: Runtime, imap: ImapStandIn, smtp: SmtpStandIn
) -> None:
    """`helpdesk mail dead-letters retry` parses the kept bytes again with the same guards: a signed
    reply address still proves its staff member, a forged From still proves nothing."""
    original = await email_request(runtime, imap)
    signed = notification_reply_to(smtp, STAFF, original.reference)

    def staff_reply(n: int, to: str) -> bytes:
        return mail(
            sender=STAFF, to=to, subject=f"Re: [{original.reference}] Support",
            body=f"Retried answer {n}.", message_id=f"<retried-{n}@tscc.example>",
        )  # fmt: skip

    for raw in (staff_reply(1, signed), staff_reply(2, HELPDESK)):
        letter = await store_dead_letter(runtime.desk, raw, "cannot be received: the database was gone")
        reference, reason = await retry_dead_letter(runtime.mail, letter.id)
        assert reason is None and reference is not None
    await drain(runtime)
    relayed = [body_of(m) for m in mailed_to(smtp, REQUESTER) if "Retried answer" in body_of(m)]
    assert len(relayed) == 1 and "Retried answer 1." in relayed[0]
    assert len(await audits(runtime, "unverified_staff_sender")) == 1


async def test_a_flood_of_forged_staff_mail_alerts_the_staff_group_within_the_limit(
    runtime: Runtime, imap: ImapStandIn, bot_api: TelegramApiStandIn
) -> None:
    runtime.desk.mail_ack_limit_per_hour = 2
    for n in range(5):
        raw = mail(sender=STAFF, subject=f"Urgent {n}", body=IBAN, message_id=f"<flood-{n}@evil.example>")
        await arrive(runtime, imap, raw)
    alerts = [m for m in bot_api.sent_messages(STAFF_CHAT) if "⚠" in m["text"]]
    assert len(alerts) == 2
    # Each one is still marked and in the audit trail.
    assert len(await audits(runtime, "unverified_staff_sender")) == 5


async def _participants(runtime: Runtime, ticket_id: int) -> set[str]:
    async with runtime.desk.sessions() as session:
        return set(
            await session.scalars(
                select(TicketParticipant.email).where(TicketParticipant.ticket_id == ticket_id)
            )
        )


# --- the pieces -------------------------------------------------------------------------------------------


def test_authentication_results_reader_takes_only_the_trusted_servers_results() -> None:
    server, results = parse_header(
        "MX.TSCC.example 1 (our server); spf=pass (sender ok) smtp.mailfrom=a@x.example; "
        'dkim=pass reason="good sig; really" header.d=Sub.X.example header.i=@sub.x.example; '
        "dmarc=fail (p=reject) header.from=x.example"
    )
    assert server == "MX.TSCC.example"
    assert [(r.method, r.result) for r in results] == [("spf", "pass"), ("dkim", "pass"), ("dmarc", "fail")]
    assert results[1].property("header.d") == "Sub.X.example"
    assert parse_header(f"{MX}; none") == (MX, [])

    headers = [
        ("Authentication-Results", "other.example; dkim=pass header.d=x.example"),
        ("Authentication-Results", f"{MX}; dkim=pass header.d=x.example"),
        ("From", "a@x.example"),
    ]
    assert [r.method for r in trusted_results(headers, MX.upper())] == ["dkim"]
    assert trusted_results(headers, None) == []  # unset: nobody vouches
    assert trusted_results(headers, "other-mx.tscc.example") == []
    assert assess(trusted_results(headers, MX), "a@x.example").verdict == "verified"
    # A pass for another domain (no alignment) verifies nothing; a fail without it is "failed".
    assert assess(trusted_results(headers, MX), "a@y.example").verdict == "unknown"
    fail = [("Authentication-Results", f"{MX}; spf=fail smtp.mailfrom=a@y.example")]
    assert assess(trusted_results(fail, MX), "a@y.example").verdict == "failed"
    # Bounded: an enormous header is ignored rather than parsed.
    huge = [("Authentication-Results", f"{MX}; dkim=pass header.d=x.example" + " " * 10_000)]
    assert trusted_results(huge, MX) == []


def test_verdict_is_failed_when_the_server_checked_another_author() -> None:
    dmarc_evil = [
        ("Authentication-Results", f"{MX}; dkim=pass header.d=x.example; dmarc=pass header.from=evil.example")
    ]
    assert assess(trusted_results(dmarc_evil, MX), "a@x.example").verdict == "failed"
    # No single author: whatever the server says is about someone else.
    dkim_x = [("Authentication-Results", f"{MX}; dkim=pass header.d=x.example")]
    assert assess(trusted_results(dkim_x, MX), None).verdict == "failed"
    assert assess([], None).verdict == "unknown"  # no trusted server, no verdict
    # The signing domain counts, not an identity the signer wrote for another domain.
    i_only = [("Authentication-Results", f"{MX}; dkim=pass header.d=evil.example header.i=@x.example")]
    assert assess(trusted_results(i_only, MX), "a@x.example").verdict == "unknown"
    legacy = [("Authentication-Results", f"{MX}; dkim=pass header.i=@x.example")]
    assert assess(trusted_results(legacy, MX), "a@x.example").verdict == "verified"
    # An internationalised domain is compared in the A-label form servers write.
    idn = [("Authentication-Results", f"{MX}; dmarc=pass header.from=xn--e1afmkfd.example")]
    assert assess(trusted_results(idn, MX), "a@пример.example").verdict == "verified"
    assert assess(trusted_results(idn, MX), "a@XN--E1AFMKFD.example").verdict == "verified"


def test_reply_tokens_are_bound_to_one_ticket_and_one_staff_address() -> None:
    key = b"k" * 32
    token = reply_token(key, 42, STAFF)
    assert token_proves(key, token, 42, STAFF)
    assert token_proves(key, token.upper(), 42, STAFF.upper())  # mail systems may fold case
    assert not token_proves(key, token, 43, STAFF)
    assert not token_proves(key, token, 42, LEAD)
    assert not token_proves(b"x" * 32, token, 42, STAFF)
    assert not token_proves(key, token[:-1], 42, STAFF)
    assert not token_proves(key, token.replace("t42-", "t43-"), 43, STAFF)
    assert token_ticket_id("garbage") is None and token_ticket_id(token) == 42
    assert len(f"helpdesk+{reply_token(key, 10**11, STAFF)}") <= 64  # an RFC 5321 local part


def test_own_plus_addresses_are_tokens_not_participants() -> None:
    raw = mail(
        sender=STAFF,
        to="Help Desk <helpdesk+t7-abcdefghijklmnop@tscc.example>",
        subject="Re: x",
        body="x",
        message_id="<tok@tscc.example>",
        extra=("Cc: someone@ngo.example, HELPDESK+t8-qrstuvwxyz234567@TSCC.example",),
    )
    parsed = parse_email(raw, own_addresses=[HELPDESK])
    assert parsed.reply_tokens == ("t7-abcdefghijklmnop", "t8-qrstuvwxyz234567")
    assert parsed.cc == ("someone@ngo.example",)
    assert load_message(raw)["To"] is not None


async def test_desk_secret_is_created_once_even_by_racing_workers(engine: AsyncEngine) -> None:
    sessions = make_sessions(engine)

    async def get() -> bytes:
        async with sessions.begin() as session:
            return await desk_secret(session)

    values = await asyncio.gather(*(get() for _ in range(6)))
    assert len(set(values)) == 1 and len(values[0]) >= 48
    async with sessions() as session:
        rows = list(await session.scalars(select(DeskSecret)))
    assert [row.name for row in rows] == ["desk"]
