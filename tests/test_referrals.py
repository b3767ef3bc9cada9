"""Matchmaking (issue #14): a ticket referred to an expert of the roster, and followed to an answer.

Through the real parts on loopback: pymap IMAP → parser → desk (SQLite and PostgreSQL) → outbox → delivery
worker → aiosmtpd SMTP and the Bot API stand-in. Attacks first: a forged expert answer attaches nothing.
"""

# The mail-trust tests' runtime fixture is reused by name, so test parameters shadow its import.
# ruff: noqa: F811

from __future__ import annotations

from datetime import timedelta
from email.utils import getaddresses
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from test_mail_trust import (  # noqa: F401 - runtime is a fixture
    FP_CHAT,
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
    telegram_request,
)

from helpdesk.db.models import AuditEvent, Referral
from helpdesk.messages import InboundMessage, Sender
from helpdesk.reports.build import build_report
from helpdesk.reports.period import Period
from helpdesk.reports.render import render_report
from helpdesk.service import Runtime
from helpdesk.usecases import self_service
from helpdesk.usecases.errors import InvalidTransition
from helpdesk.usecases.introductions import introduce, mark_cooperation, record_outcome
from helpdesk.usecases.personal_data.export import export_person
from helpdesk.usecases.personal_data.forget import forget_person
from helpdesk.usecases.personal_data.person import Person
from helpdesk.usecases.receive import receive
from helpdesk.usecases.referral_links import ANSWERED, answer_by_link
from helpdesk.usecases.referral_load import PENALTIES, matching_load
from helpdesk.usecases.referral_reminders import ReminderRun, remind_referrals
from helpdesk.usecases.referral_tokens import EXPIRED, NOT_OURS, link_key, link_token
from helpdesk.usecases.referrals import LINK_LIFETIME, refer
from helpdesk.usecases.roster import load_roster
from knowledge.models import Expert
from standins.imap_server import ImapStandIn
from standins.smtp_server import CapturedMessage, SmtpStandIn
from standins.telegram_api import TelegramApiStandIn

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
    [referral] = await referrals(runtime)
    assert f"[{reference} R{referral.id}]" in str(offer.message["Subject"])
    assert "Could you advise them?" in text and "да" in text  # ru: the expert's first language
    assert REQUESTER not in text and "Umarov" not in text
    assert f"+r{referral.id}-" in str(offer.message["Reply-To"])
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


async def test_no_answer_gets_one_reminder_then_no_answer_and_staff_are_told(
    runtime: Runtime, imap: ImapStandIn, smtp: SmtpStandIn
) -> None:
    reference, offer = await offered(runtime, imap, smtp)
    [referral] = await referrals(runtime)
    day = timedelta(days=1)
    assert await remind_referrals(runtime.desk, 5, now=referral.offered_at + 4 * day) == ReminderRun((), ())
    run = await remind_referrals(runtime.desk, 5, now=referral.offered_at + 6 * day)
    assert run.reminded == (referral.id,)
    assert (await remind_referrals(runtime.desk, 5, now=referral.offered_at + 7 * day)).reminded == ()
    await drain(runtime)
    [_, reminder] = mailed_to(smtp, EXPERT)
    assert str(reminder.message["In-Reply-To"]) == str(offer.message["Message-ID"])
    assert "Напоминание" in body_of(reminder)
    run = await remind_referrals(runtime.desk, 5, now=referral.offered_at + 11 * day)
    assert run.no_answer == (referral.id,)
    [referral] = await referrals(runtime)
    assert referral.state == "no_answer"
    notes = [m.body for m in await messages(runtime, reference) if m.kind == "note"]
    assert any("No answer from expert ex-001" in n for n in notes)


async def test_a_one_click_link_works_once_and_not_after_it_expires(
    runtime: Runtime, imap: ImapStandIn, smtp: SmtpStandIn
) -> None:
    reference, _ = await offered(runtime, imap, smtp)
    [referral] = await referrals(runtime)
    async with runtime.desk.sessions() as session:
        key = await link_key(session)
    expires = referral.offered_at + LINK_LIFETIME
    yes, no = (link_token(key, referral.id, a, expires) for a in ("yes", "no"))
    with pytest.raises(InvalidTransition, match=f"^{EXPIRED}$"):
        await answer_by_link(runtime.desk, yes, now=expires + timedelta(seconds=1))
    forged = yes.replace(".yes.", ".no.")
    with pytest.raises(InvalidTransition, match=f"^{NOT_OURS}$"):
        await answer_by_link(runtime.desk, forged)
    recorded = await answer_by_link(runtime.desk, yes)
    assert (recorded.reference, recorded.answer) == (reference, "yes")
    for again in (yes, no):
        with pytest.raises(InvalidTransition, match=f"^{ANSWERED}$"):
            await answer_by_link(runtime.desk, again)
    [referral] = await referrals(runtime)
    assert referral.state == "accepted"


TG_EXPERT = 777001


async def test_a_telegram_only_expert_is_offered_in_their_chat_and_answers_there(
    runtime: Runtime, bot_api: TelegramApiStandIn, imap: ImapStandIn
) -> None:
    ticket = await email_request(runtime, imap)
    expert = Expert(
        id="tg-1",
        name="Example Expert",
        organisation="Example Uzbek Institute",
        languages=("ru", "uz"),
        targets=(1,),
        telegram_id=TG_EXPERT,
    )
    await load_roster(runtime.desk, (expert,), actor="test")
    with pytest.raises(Exception, match="has not started the bot"):
        await refer(runtime.desk, ticket.reference, ["tg-1"], message=None, actor="cli:t")
    await self_service.profile(runtime.desk, Sender(telegram_user_id=TG_EXPERT, telegram_chat_id=TG_EXPERT))
    await refer(runtime.desk, ticket.reference, ["tg-1"], message=None, actor="cli:t")
    await drain(runtime)
    [offer] = bot_api.sent_messages(TG_EXPERT)
    assert ticket.reference in offer["text"] and REQUESTER not in offer["text"]
    sender = Sender(telegram_user_id=TG_EXPERT, telegram_chat_id=TG_EXPERT)
    await receive(runtime.desk, InboundMessage("telegram", f"{TG_EXPERT}:9", sender, "Ha, yordam beraman"))
    [referral] = await referrals(runtime)
    assert (referral.channel, referral.state) == ("telegram", "accepted")
    [kept] = [m for m in await messages(runtime, ticket.reference) if m.kind == "expert"]
    assert kept.body.startswith("Ha")


async def test_end_to_end_refer_yes_consent_on_telegram_introduction_outcome(
    runtime: Runtime, imap: ImapStandIn, smtp: SmtpStandIn, bot_api: TelegramApiStandIn
) -> None:
    ticket = await telegram_request(runtime)
    await refer(runtime.desk, ticket.reference, ["ex-001", "ex-002"], message="Please help", actor="cli:t")
    await drain(runtime)
    [offer] = mailed_to(smtp, EXPERT)
    await arrive(runtime, imap, answer(offer, sender=EXPERT, body="да", message_id="<yes@x>"))
    [other_offer] = mailed_to(smtp, OTHER_EXPERT)
    await arrive(
        runtime, imap, answer(other_offer, sender=OTHER_EXPERT, body="Yo'q, band", message_id="<no@x>")
    )
    with pytest.raises(InvalidTransition, match="no referral to expert ex-003"):
        await introduce(runtime.desk, ticket.reference, "ex-003", actor="cli:t")
    with pytest.raises(InvalidTransition, match="has not accepted"):
        await introduce(runtime.desk, ticket.reference, "ex-002", actor="cli:t")
    with pytest.raises(InvalidTransition, match="no referral to expert ex-003"):
        await introduce(runtime.desk, ticket.reference, "ex-003", actor="cli:t")
    assert "asked" in await introduce(runtime.desk, ticket.reference, "ex-001", actor="cli:t")
    await drain(runtime)
    assert "introduce you" in bot_api.sent_messages(FP_CHAT)[-1]["text"]  # the ticket is in English
    assert len(mailed_to(smtp, EXPERT)) == 1  # nothing crosses before the requester agrees
    fp = Sender(name="Focal point", telegram_user_id=FP_CHAT, telegram_chat_id=FP_CHAT)
    # Telegram numbers a chat's messages from both sides: after the bot's own ones.
    await receive(runtime.desk, InboundMessage("telegram", f"{FP_CHAT}:100", fp, "Да, согласен"))
    await drain(runtime)
    [_, introduction] = mailed_to(smtp, EXPERT)
    assert "Focal point" in body_of(introduction)
    assert any("expert001@example.org" in m["text"] for m in bot_api.sent_messages(FP_CHAT))
    referral, declined = await referrals(runtime)
    assert referral.consent == "yes" and referral.introduced_at is not None
    assert declined.state == "declined" and declined.consent is None
    async with runtime.desk.sessions() as session:
        [introduced] = await session.scalars(select(AuditEvent).where(AuditEvent.action == "introduced"))
    assert introduced.detail["consent"] == "yes" and introduced.detail["consent_at"]
    with pytest.raises(InvalidTransition, match="already introduced"):
        await introduce(runtime.desk, ticket.reference, "ex-001", actor="cli:t")
    assert (await mark_cooperation(runtime.desk, ticket.reference, "ex-001", actor="cli:t")).cooperation_at
    await record_outcome(runtime.desk, ticket.reference, None, "advice", "Method shared", actor="cli:t")
    referral, declined = await referrals(runtime)
    assert referral.stage == "outcome: advice"
    assert (referral.outcome, referral.outcome_text) == ("advice", "Method shared")

    # The report, counted by hand: two offers, one yes, one no, one introduction, one piece of advice.
    month = referral.offered_at.astimezone(ZoneInfo("Asia/Tashkent")).strftime("%Y-%m")
    report = await build_report(runtime.desk.sessions, Period.month(month), language="ru")
    m = report["matchmaking"]
    assert (m["made"], m["accepted"], m["declined"], m["no_answer"], m["offered"]) == (2, 1, 1, 0, 0)
    assert (m["introductions"], m["outcomes"]) == (1, {"advice": 1})
    waits = sorted((r.first_answer_at - r.offered_at).total_seconds() / 3600 for r in (referral, declined))
    assert m["first_answer"]["count"] == 2
    assert m["first_answer"]["median_hours"] == pytest.approx(round(sum(waits) / 2, 2), abs=0.01)
    assert sorted(row["label"] for row in m["organisations"]) == [
        "Example Institute of Spatial Planning",
        "Example Restoration Network",
    ]
    assert "консультация (1)" in report["summary"]["part2_section4"]
    rendered = render_report(report, "md")
    assert "Example-Sadykova" not in rendered and "expert001" not in rendered  # no personal names
    assert "Часть II, раздел 4" in rendered


async def test_open_referrals_and_recent_refusals_weigh_in_the_matchers_load(
    runtime: Runtime, imap: ImapStandIn, smtp: SmtpStandIn
) -> None:
    _, offer = await offered(runtime, imap, smtp)
    async with runtime.desk.sessions() as session:
        assert (await matching_load(session)).get("ex-001") == 1  # an open offer is an open ticket
    await arrive(runtime, imap, answer(offer, sender=EXPERT, body="нет", message_id="<n@x>"))
    [referral] = await referrals(runtime)
    assert referral.answered_at is not None
    penalty = PENALTIES["declined"]
    async with runtime.desk.sessions() as session:
        assert (await matching_load(session)).get("ex-001") == penalty.weight
        later = referral.answered_at + penalty.lasts + timedelta(seconds=1)
        assert (await matching_load(session, now=later)).get("ex-001", 0) == 0


async def test_availability_and_max_open_tickets_are_honoured(runtime: Runtime, imap: ImapStandIn) -> None:
    first = await email_request(runtime, imap, 1)
    second = await email_request(runtime, imap, 2)
    roster = (
        Expert(
            id="busy", name="A", email="busy@example.org", languages=("en",), targets=(1,), max_open_tickets=1
        ),
        Expert(
            id="away",
            name="B",
            email="away@example.org",
            languages=("en",),
            targets=(1,),
            availability="unavailable",
        ),
    )
    await load_roster(runtime.desk, roster, actor="test")
    with pytest.raises(InvalidTransition, match="unavailable"):
        await refer(runtime.desk, first.reference, ["away"], message=None, actor="cli:t")
    await refer(runtime.desk, first.reference, ["busy"], message=None, actor="cli:t")
    with pytest.raises(InvalidTransition, match="max_open_tickets 1"):
        await refer(runtime.desk, second.reference, ["busy"], message=None, actor="cli:t")
    with pytest.raises(Exception, match="no expert 'nobody'"):
        await refer(runtime.desk, second.reference, ["nobody"], message=None, actor="cli:t")
    assert len(await referrals(runtime)) == 1  # a refused referral leaves nothing behind


async def test_an_expert_can_be_exported_and_forgotten_like_a_requester(
    runtime: Runtime, imap: ImapStandIn, smtp: SmtpStandIn
) -> None:
    reference, offer = await offered(runtime, imap, smtp)
    await arrive(runtime, imap, answer(offer, sender=EXPERT, body="Да, с удовольствием", message_id="<e@x>"))
    exported = await export_person(runtime.desk, Person(email=EXPERT.upper()))
    [referral] = exported["as_expert"]["referrals"]
    assert (referral["ticket"], referral["state"], referral["recipient"]) == (reference, "accepted", EXPERT)
    assert [m["body"].strip() for m in exported["as_expert"]["expert_messages"]] == ["Да, с удовольствием"]
    assert any(o["recipient"] == EXPERT for o in exported["outbox"])

    result = await forget_person(runtime.desk, Person(email=EXPERT), actor="cli:t")
    assert result.referrals == 1
    [kept] = [m for m in await messages(runtime, reference) if m.kind == "expert"]
    assert kept.body == "[erased]"
    [row] = await referrals(runtime)
    assert row.recipient != EXPERT and row.state == "accepted"  # the figures stay, the person goes
    again = await export_person(runtime.desk, Person(email=EXPERT))
    assert again["as_expert"] == {"roster": [], "referrals": [], "expert_messages": []}
    assert not [o for o in again["outbox"] if o["recipient"] == EXPERT]


async def test_a_requesters_no_is_recorded_and_nothing_crosses(
    runtime: Runtime, imap: ImapStandIn, smtp: SmtpStandIn, bot_api: TelegramApiStandIn
) -> None:
    ticket = await telegram_request(runtime)
    await refer(runtime.desk, ticket.reference, ["ex-001"], message=None, actor="cli:t")
    await drain(runtime)
    [offer] = mailed_to(smtp, EXPERT)
    await arrive(runtime, imap, answer(offer, sender=EXPERT, body="Да", message_id="<y2@x>"))
    await introduce(runtime.desk, ticket.reference, "ex-001", actor="cli:t")
    await drain(runtime)
    fp = Sender(name="Focal point", telegram_user_id=FP_CHAT, telegram_chat_id=FP_CHAT)
    await receive(runtime.desk, InboundMessage("telegram", f"{FP_CHAT}:100", fp, "Нет, спасибо"))
    await drain(runtime)
    [referral] = await referrals(runtime)
    assert (referral.consent, referral.introduced_at, referral.stage) == (
        "no",
        None,
        "requester declined the introduction",
    )
    assert len(mailed_to(smtp, EXPERT)) == 1
    with pytest.raises(InvalidTransition, match="declined the introduction"):
        await introduce(runtime.desk, ticket.reference, "ex-001", actor="cli:t")
