"""The requester's consent to an introduction, pressed under the question (Telegram): the real PTB client
against the Bot API stand-in, the desk on SQLite and PostgreSQL. A press by the requester is recorded as a
typed yes or no is, once; a stranger's press, a forged referral, a second press and an email requester's
question (no buttons) change nothing they should not. Attacks first."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from faults.helpers import PrivatePostgres
from sqlalchemy import select
from telegram_harness import Harness, open_harness

from bot.composer import CONSENT, answer_data
from helpdesk.db.engine import make_engine, make_sessions
from helpdesk.db.migrate import upgrade
from helpdesk.db.models import AuditEvent, OutboxItem, Referral
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage, Sender
from helpdesk.service import standard_composers
from helpdesk.usecases.introductions import introduce
from helpdesk.usecases.receive import receive
from helpdesk.usecases.referral_links import answer_by_link
from helpdesk.usecases.referral_tokens import link_key, link_token
from helpdesk.usecases.referrals import refer

CHAT = 4801
REQUESTER = {"id": CHAT, "first_name": "Dilnoza", "language_code": "ru"}
STRANGER = {"id": 4899, "first_name": "Mallory"}


@pytest.fixture
async def harness(desk: Desk) -> AsyncIterator[Harness]:
    async with open_harness(desk) as opened:
        yield opened


async def _referral(desk: Desk) -> Referral:
    async with desk.sessions() as session:
        return (await session.scalars(select(Referral).order_by(Referral.id.desc()))).unique().first()


async def _accepted(desk: Desk, reference: str) -> Referral:
    """``reference`` referred to ex-001, who accepted by the one-click link."""
    await refer(desk, reference, ["ex-001"], message="Could you help?", actor="cli:t")
    referral = await _referral(desk)
    async with desk.sessions.begin() as session:
        token = link_token(await link_key(session), referral.id, "yes", utcnow() + timedelta(days=1))
    await answer_by_link(desk, token)
    return await _referral(desk)


def _buttons(message: dict[str, Any]) -> list[dict[str, str]]:
    markup = message.get("reply_markup") or {}
    return [button for row in markup.get("inline_keyboard", []) for button in row]


async def _asked(harness: Harness) -> tuple[Referral, dict[str, Any]]:
    """A Telegram request, referred and accepted, and the consent question the requester got."""
    await harness.api.push_message(
        CHAT, "Нужна помощь с планом управления охраняемой территорией", user=REQUESTER
    )
    await harness.sent_to(CHAT)
    [ticket] = await harness.tickets()
    referral = await _accepted(harness.desk, ticket.reference)
    assert "asked" in await introduce(harness.desk, ticket.reference, "ex-001", actor="cli:t")
    harness.desk.outbox_written()

    async def question() -> dict[str, Any] | None:
        found = [m for m in harness.api.sent_messages(CHAT) if _buttons(m)]
        return found[-1] if found else None

    return referral, await harness.until(question)


async def test_the_question_offers_yes_and_no_and_the_requester_s_yes_introduces(harness: Harness) -> None:
    referral, question = await _asked(harness)
    pressed = [b["callback_data"] for b in _buttons(question)]
    assert pressed == [answer_data(CONSENT, referral.id, "yes"), answer_data(CONSENT, referral.id, "no")]
    assert [b["text"] for b in _buttons(question)] == ["✅ Да, познакомьте нас", "Нет"]

    await harness.api.push_callback_query(CHAT, pressed[0], message_id=question["message_id"], user=REQUESTER)
    await harness.api.wait_for_call("editMessageReplyMarkup")  # the buttons go once it is recorded
    referral = await _referral(harness.desk)
    assert referral.consent == "yes" and referral.consent_at is not None
    assert referral.introduced_at is not None  # the yes introduced the two sides at once
    [consent] = await harness.audit("consent")
    assert consent.detail["pressed_by"] == f"telegram:{CHAT}" and consent.detail["answer"] == "yes"
    # The introduction reaches the requester in their chat (the expert's is mailed).
    await harness.until(lambda: _said(harness, "expert001@example.org"))


async def test_a_stranger_s_press_a_forged_referral_and_a_second_press_change_nothing(
    harness: Harness,
) -> None:
    referral, question = await _asked(harness)
    api = harness.api
    # A stranger who forged the button's data in their own chat: refused, nothing recorded.
    await api.push_message(STRANGER["id"], "привет", user=STRANGER)
    await harness.sent_to(STRANGER["id"])
    await api.push_callback_query(STRANGER["id"], answer_data(CONSENT, referral.id, "yes"), user=STRANGER)
    refused = await api.wait_for_call("answerCallbackQuery", lambda c: bool(c.params.get("show_alert")))
    assert "не ждёт ответа" in refused.params["text"] or "not asked" in refused.params["text"]
    # Forged data: a referral that does not exist, a third answer, garbage.
    for data in (
        answer_data(CONSENT, referral.id + 1000, "yes"),
        answer_data(CONSENT, referral.id, "maybe"),
        "cs:x:yes",
        "cs:²:yes",
    ):
        answered = len(api.calls_to("answerCallbackQuery"))
        await api.push_callback_query(CHAT, data, message_id=question["message_id"], user=REQUESTER)
        await harness.until(lambda n=answered: _answered(harness, n + 1))
        told = api.calls_to("answerCallbackQuery")[-1].params.get("text") or ""
        assert "ещё раз" not in told, (data, told)  # refused, not "press again": it would never work
    assert (await _referral(harness.desk)).consent is None
    assert await harness.audit("consent") == []

    # The requester's no, then a yes pressed on the same question: the no stands.
    await api.push_callback_query(
        CHAT, answer_data(CONSENT, referral.id, "no"), message_id=question["message_id"], user=REQUESTER
    )
    await api.wait_for_call("editMessageReplyMarkup")
    answered = len(api.calls_to("answerCallbackQuery"))
    await api.push_callback_query(
        CHAT, answer_data(CONSENT, referral.id, "yes"), message_id=question["message_id"], user=REQUESTER
    )
    await harness.until(lambda: _answered(harness, answered + 1))
    referral = await _referral(harness.desk)
    assert referral.consent == "no" and referral.introduced_at is None
    assert [e.detail["answer"] for e in await harness.audit("consent")] == ["no"]


async def test_a_typed_answer_still_counts_and_the_buttons_then_refuse(harness: Harness) -> None:
    referral, question = await _asked(harness)
    await harness.api.push_message(CHAT, "Да, согласна", user=REQUESTER)
    await harness.until(lambda: _consent_is(harness, "yes"))
    answered = len(harness.api.calls_to("answerCallbackQuery"))
    await harness.api.push_callback_query(
        CHAT, answer_data(CONSENT, referral.id, "no"), message_id=question["message_id"], user=REQUESTER
    )
    await harness.until(lambda: _answered(harness, answered + 1))
    assert (await _referral(harness.desk)).consent == "yes"


async def test_an_email_requester_s_question_has_no_buttons(desk: Desk) -> None:
    sender = Sender(name="Aliya", email="aliya@eco.gov.kz")
    result = await receive(
        desk, InboundMessage("email", "<c1@eco.gov.kz>", sender, "Need PAME tools", subject="PAME")
    )
    await _accepted(desk, result.reference)
    await introduce(desk, result.reference, "ex-001", actor="cli:t")
    async with desk.sessions() as session:
        events = list(await session.scalars(select(AuditEvent).where(AuditEvent.action == "consent_asked")))
        items = list(
            await session.scalars(
                select(OutboxItem).where(OutboxItem.channel == "email").order_by(OutboxItem.id)
            )
        )
    assert len(events) == 1
    question = [i for i in items if i.payload.get("recipient") == "aliya@eco.gov.kz"][-1]
    assert "reply_markup" not in (question.payload.get("extra") or {})
    assert "«да» или «нет»" in question.payload["text"] or '"yes" or "no"' in question.payload["text"]


async def test_the_database_away_at_the_press_records_nothing_and_keeps_the_buttons() -> None:
    postgres = PrivatePostgres()
    try:
        await postgres.setup()
        await upgrade(postgres.url)
        engine = make_engine(postgres.url)
        desk = Desk(
            sessions=make_sessions(engine),
            mail_from="helpdesk@tscc.example.org",
            composers=standard_composers(),
        )
        async with open_harness(desk) as harness:
            referral, question = await _asked(harness)
            await engine.dispose()
            await postgres.stop()
            yes = answer_data(CONSENT, referral.id, "yes")
            await harness.api.push_callback_query(
                CHAT, yes, message_id=question["message_id"], user=REQUESTER
            )
            failed = await harness.api.wait_for_call(
                "answerCallbackQuery", lambda c: bool(c.params.get("show_alert")), timeout=60
            )
            assert "ещё раз" in failed.params["text"]  # press again: nothing was changed
            still = harness.api.message(CHAT, question["message_id"])
            assert still is not None and still.get("reply_markup")  # the buttons stay

            await postgres.start()
            await harness.api.push_callback_query(
                CHAT, yes, message_id=question["message_id"], user=REQUESTER
            )
            await harness.until(lambda: _consent_is(harness, "yes"), within=60)
        await engine.dispose()
    finally:
        await postgres.cleanup()


async def _said(harness: Harness, fragment: str) -> bool:
    return any(fragment in m["text"] for m in harness.api.sent_messages(CHAT))


async def _answered(harness: Harness, count: int) -> bool:
    return len(harness.api.calls_to("answerCallbackQuery")) >= count


async def _consent_is(harness: Harness, answer: str) -> bool:
    return (await _referral(harness.desk)).consent == answer
