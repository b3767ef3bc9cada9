"""The "which ticket does this continue?" question kept in the database: it survives a restart of
`helpdesk run` (SIGTERM and SIGKILL) between the question and the button press, refuses a stranger's press,
and expires. Real PTB client, Bot API stand-in over HTTP, both databases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from faults.helpers import READY, HelpdeskProcess, PrivatePostgres, run_env
from sqlalchemy import func, select, update
from telegram_harness import STAFF, STAFF_CHAT, Harness, open_harness

from bot.application import build_application, start_polling, stop_application
from helpdesk.db.engine import make_engine, make_sessions
from helpdesk.db.migrate import upgrade
from helpdesk.db.models import Message, PendingChoice, PendingChoiceMessage, Ticket
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage, Sender
from helpdesk.service import standard_composers
from helpdesk.usecases.followup_question import NEW_TTL, QUESTION_TTL, Asked, Held, answer, choose_new
from helpdesk.usecases.personal_data.forget import forget_person
from helpdesk.usecases.personal_data.person import Person
from helpdesk.usecases.receive import ReceiveResult, receive
from helpdesk.usecases.take import take_message
from standins.smtp_server import SmtpStandIn
from standins.telegram_api import TelegramApiStandIn

REQUESTER = 8101
GROUP = -8200
PHOTO = b"\xff\xd8\xff-held-photo"


async def two_open_tickets(desk: Desk, user: int, chat: int) -> list[str]:
    """Two open tickets of ``user`` in ``chat``: a new message there makes the bot ask which it continues."""
    sender = Sender(name="Aigerim", telegram_user_id=user, telegram_chat_id=chat, language="en")
    references = []
    for n, text in enumerate(["Wetlands monitoring methodology", "Invasive species in Lake Issyk-Kul"]):
        inbound = InboundMessage("telegram", f"{chat}:{900 + n}", sender, text, force_new=True)
        references.append((await receive(desk, inbound)).reference)
    return references


def the_question(api: TelegramApiStandIn, chat: int) -> dict[str, Any] | None:
    return next((m for m in api.sent_messages(chat) if "pick:" in str(m.get("reply_markup"))), None)


def pick(question: dict[str, Any], reference: str) -> str:
    return next(
        b["callback_data"]
        for row in question["reply_markup"]["inline_keyboard"]
        for b in row
        if b["callback_data"].endswith(reference)
    )


async def inbound_bodies(desk: Desk, reference: str) -> list[str]:
    async with desk.sessions() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.reference == reference))
        assert ticket is not None
        return list(
            await session.scalars(
                select(Message.body)
                .where(Message.ticket_id == ticket.id, Message.kind == "inbound")
                .order_by(Message.id)
            )
        )


async def held(desk: Desk) -> int:
    async with desk.sessions() as session:
        return await session.scalar(select(func.count()).select_from(PendingChoiceMessage)) or 0


async def questions(desk: Desk) -> int:
    async with desk.sessions() as session:
        return await session.scalar(select(func.count()).select_from(PendingChoice)) or 0


async def until(check: Any, within: float = 60.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while not (value := await check()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
    return value


# ------------------------------------------------------------------------------- restart of `helpdesk run`


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
async def test_the_question_and_its_held_messages_survive_a_restart(
    stop: str, database_url: str, desk: Desk, smtp: SmtpStandIn, workdir: Path
) -> None:
    first, second = await two_open_tickets(desk, REQUESTER, REQUESTER)
    async with TelegramApiStandIn() as api:
        api.add_file("held-photo", PHOTO, "photos/file_1.jpg")
        env = run_env(database_url, smtp=smtp, bot_api=api)
        process = await HelpdeskProcess(env, workdir, name="before").start()
        try:
            await process.wait_for_log(READY)
            await api.push_message(REQUESTER, "is there any news?", user={"language_code": "en"})

            async def asked() -> dict[str, Any] | None:
                return the_question(api, REQUESTER)

            question = await until(asked)
            photo = [{"file_id": "held-photo", "file_unique_id": "u1", "width": 90, "height": 90}]
            await api.push_message(REQUESTER, None, caption="it is quite urgent", extra={"photo": photo})

            async def both_held() -> bool:
                return await held(desk) == 2

            await until(both_held)
        finally:
            if stop == "sigkill":
                await process.kill()
            else:
                assert await process.terminate() == 0, process.log_text()[-3000:]
        # Nothing of the two messages is on a ticket yet: they wait in the database, not in a process.
        assert await inbound_bodies(desk, first) == ["Wetlands monitoring methodology"]

        process = await HelpdeskProcess(env, workdir, name="after").start()
        try:
            await process.wait_for_log(READY)
            await api.push_callback_query(REQUESTER, pick(question, first), message_id=question["message_id"])

            async def stored() -> list[str] | None:
                bodies = await inbound_bodies(desk, first)
                return bodies if len(bodies) == 3 else None

            bodies = await until(stored)
            assert bodies == ["Wetlands monitoring methodology", "is there any news?", "it is quite urgent"]
            assert await inbound_bodies(desk, second) == ["Invasive species in Lake Issyk-Kul"]
            async with desk.sessions() as session:
                message = await session.scalar(select(Message).where(Message.body == "it is quite urgent"))
                assert message is not None
                await session.refresh(message, ["attachments"])
                assert [a.data for a in message.attachments] == [PHOTO]

            async def acknowledged() -> list[dict[str, Any]] | None:
                acks = [m for m in api.sent_messages(REQUESTER) if "Added to your request" in m["text"]]
                return acks if len(acks) == 2 else None

            acks = await until(acknowledged)
            assert all(first in ack["text"] for ack in acks)

            async def question_gone() -> bool:
                # Deleted only after the last held message is stored, so possibly after its receipt went.
                return (await questions(desk), await held(desk)) == (0, 0)

            await until(question_gone)

            async def buttons_gone() -> bool:
                # The bot removes them after the answer is committed: a Bot API call later, not at once.
                answered = api.message(REQUESTER, question["message_id"])
                return answered is not None and not answered.get("reply_markup")

            await until(buttons_gone)
        finally:
            assert await process.terminate() == 0, process.log_text()[-3000:]


# ----------------------------------------------------------------------------------- strangers, expiry


@pytest.fixture
async def harness(desk: Desk) -> AsyncIterator[Harness]:
    async with open_harness(desk) as opened:
        yield opened


async def ask_in_group(harness: Harness, requester: int) -> tuple[list[str], dict[str, Any]]:
    references = await two_open_tickets(harness.desk, requester, GROUP)
    bot = harness.api.bot_user["username"]
    await harness.api.push_message(
        GROUP, f"@{bot} is there any news?", chat_type="group", user={"id": requester, "language_code": "en"}
    )

    async def asked() -> dict[str, Any] | None:
        return the_question(harness.api, GROUP)

    return references, await harness.until(asked)


async def test_a_stranger_pressing_the_button_is_refused_and_nothing_is_stored(harness: Harness) -> None:
    (first, _), question = await ask_in_group(harness, 8301)
    await harness.api.push_callback_query(
        GROUP, pick(question, first), message_id=question["message_id"], user={"id": 8302}
    )
    refusal = await harness.api.wait_for_call(
        "answerCallbackQuery", lambda c: "send it again" in str(c.params.get("text"))
    )
    assert refusal.params["show_alert"] is True
    assert await inbound_bodies(harness.desk, first) == ["Wetlands monitoring methodology"]
    assert (await questions(harness.desk), await held(harness.desk)) == (1, 1)

    # The requester's own press still works afterwards.
    await harness.api.push_callback_query(
        GROUP, pick(question, first), message_id=question["message_id"], user={"id": 8301}
    )

    async def answered() -> bool:
        # The question is deleted only after its last held message is stored: wait for both.
        stored = len(await inbound_bodies(harness.desk, first)) == 2
        return stored and (await questions(harness.desk), await held(harness.desk)) == (0, 0)

    await harness.until(answered)
    assert await inbound_bodies(harness.desk, first) == [
        "Wetlands monitoring methodology",
        "is there any news?",
    ]


async def test_an_expired_question_is_dropped_and_its_button_says_so(harness: Harness) -> None:
    (first, _), question = await ask_in_group(harness, 8401)
    async with harness.desk.sessions.begin() as session:
        await session.execute(
            update(PendingChoice).values(created_at=utcnow() - QUESTION_TTL - timedelta(minutes=1))
        )
    # A message after the expiry is not held by the old question: it gets a question of its own.
    bot = harness.api.bot_user["username"]
    await harness.api.push_message(
        GROUP, f"@{bot} hello again", chat_type="group", user={"id": 8401, "language_code": "en"}
    )

    async def asked_again() -> list[dict[str, Any]] | None:
        asked = [m for m in harness.api.sent_messages(GROUP) if "pick:" in str(m.get("reply_markup"))]
        return asked if len(asked) == 2 else None

    _, again = await harness.until(asked_again)
    assert pick(again, first) != pick(question, first)  # a new token
    assert (await questions(harness.desk), await held(harness.desk)) == (1, 1)

    # The old button now says the question is gone; nothing is stored, the new question stays.
    await harness.api.push_callback_query(
        GROUP, pick(question, first), message_id=question["message_id"], user={"id": 8401}
    )
    expired = await harness.api.wait_for_call(
        "answerCallbackQuery", lambda c: "send it again" in str(c.params.get("text"))
    )
    assert expired.params["show_alert"] is True
    assert await inbound_bodies(harness.desk, first) == ["Wetlands monitoring methodology"]
    assert (await questions(harness.desk), await held(harness.desk)) == (1, 1)

    # Expired while waiting for the press itself: the press says so and drops it.
    async with harness.desk.sessions.begin() as session:
        await session.execute(
            update(PendingChoice).values(created_at=utcnow() - QUESTION_TTL - timedelta(minutes=1))
        )
    await harness.api.push_callback_query(
        GROUP, pick(again, first), message_id=again["message_id"], user={"id": 8401}
    )

    async def dropped() -> bool:
        return (await questions(harness.desk), await held(harness.desk)) == (0, 0)

    await harness.until(dropped)
    assert await inbound_bodies(harness.desk, first) == ["Wetlands monitoring methodology"]


async def test_the_database_away_at_the_press_keeps_the_messages_and_the_buttons(workdir: Path) -> None:
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
            (first, _), question = await ask_in_group(harness, 8601)
            await engine.dispose()
            await postgres.stop()
            await harness.api.push_callback_query(
                GROUP, pick(question, first), message_id=question["message_id"], user={"id": 8601}
            )
            failed = await harness.api.wait_for_call(
                "answerCallbackQuery",
                lambda c: "press the button again" in str(c.params.get("text")),
                timeout=60,
            )
            assert failed.params["show_alert"] is True
            still = harness.api.message(GROUP, question["message_id"])
            assert still is not None and still.get("reply_markup")  # the buttons stay

            await postgres.start()
            await harness.api.push_callback_query(
                GROUP, pick(question, first), message_id=question["message_id"], user={"id": 8601}
            )

            async def answered() -> bool:
                # The question is deleted only after its last held message is stored: wait for both.
                stored = await inbound_bodies(desk, first) == [
                    "Wetlands monitoring methodology",
                    "is there any news?",
                ]
                return stored and (await questions(desk), await held(desk)) == (0, 0)

            await harness.until(answered, within=60)
        await engine.dispose()
    finally:
        await postgres.cleanup()


# ------------------------------------------------------------------------------------------ personal data


async def test_forgetting_a_person_drops_their_open_question_and_held_messages(desk: Desk) -> None:
    first, _ = await two_open_tickets(desk, 8501, 8501)
    sender = Sender(name="Aigerim", telegram_user_id=8501, telegram_chat_id=8501, language="en")
    asked = await take_message(desk, InboundMessage("telegram", "8501:1", sender, "any news? Aigerim"))
    assert isinstance(asked, Asked) and [c.reference for c in asked.choices][-1] == first
    held_too = await take_message(desk, InboundMessage("telegram", "8501:2", sender, "call me on +7 700"))
    assert isinstance(held_too, Held) and held_too.token == asked.token
    # Taken again (a retry after a lost connection), a held message is not held twice.
    assert (
        await take_message(desk, InboundMessage("telegram", "8501:2", sender, "call me on +7 700"))
        == held_too
    )
    # The question's own message taken again: the same question is offered again, nothing held twice.
    again = await take_message(desk, InboundMessage("telegram", "8501:1", sender, "any news? Aigerim"))
    assert isinstance(again, Asked) and again.token == asked.token and again.choices == asked.choices
    assert (await questions(desk), await held(desk)) == (1, 2)

    result = await forget_person(desk, Person(telegram_id=8501), actor="staff:test")
    assert result.held_messages == 2
    assert (await questions(desk), await held(desk)) == (0, 0)


# ------------------------------------------------------------------------- /new across a restart of the bot


async def test_new_survives_a_restart_of_the_bot_and_expires(harness: Harness) -> None:
    api, chat, user = harness.api, 8501, {"language_code": "en"}
    await api.push_message(chat, "First request about wetlands monitoring", user=user)
    await harness.sent_to(chat, 1)
    await api.push_message(chat, "/new")
    assert "new request" in (await harness.sent_to(chat, 2))[-1]["text"]

    # The bot restarts (or another process takes the next update): a new Application, the same database.
    await stop_application(harness.app)
    harness.app = build_application(
        api.token,
        api.base_url,
        harness.intake.take,
        desk=harness.desk,
        staff_chat_id=STAFF_CHAT,
        staff_ids=frozenset({STAFF}),
    )
    await start_polling(harness.app, poll_timeout=1)
    try:
        await api.push_message(chat, "Second request: invasive species in Lake Issyk-Kul", user=user)
        await harness.sent_to(chat, 3)
        _, second = await harness.tickets()
        assert await inbound_bodies(harness.desk, second.reference) == [
            "Second request: invasive species in Lake Issyk-Kul"
        ]
        assert await questions(harness.desk) == 0  # consumed with the message it announced

        # A /new older than NEW_TTL no longer applies: the message continues the chat's open request.
        other = 8502
        await api.push_message(other, "Third request about protected areas", user=user)
        await harness.sent_to(other, 1)
        await api.push_message(other, "/new")
        await harness.sent_to(other, 2)
        async with harness.desk.sessions.begin() as session:
            await session.execute(
                update(PendingChoice).values(new_requested_at=utcnow() - NEW_TTL - timedelta(minutes=1))
            )
        await api.push_message(other, "and one more detail", user=user)
        assert "Added to your request" in (await harness.sent_to(other, 3))[-1]["text"]
        third = (await harness.tickets())[-1]
        assert len(await harness.tickets()) == 3
        assert await inbound_bodies(harness.desk, third.reference) == [
            "Third request about protected areas",
            "and one more detail",
        ]
        assert await questions(harness.desk) == 0
    finally:
        await stop_application(harness.app)


async def test_new_sent_while_a_question_is_open_opens_the_next_message_even_after_the_answer(
    desk: Desk,
) -> None:
    first, _ = await two_open_tickets(desk, 8601, 8601)
    sender = Sender(name="Aigerim", telegram_user_id=8601, telegram_chat_id=8601, language="en")
    asked = await take_message(desk, InboundMessage("telegram", "8601:1", sender, "any news?"))
    assert isinstance(asked, Asked)
    await choose_new(desk, 8601, 8601)
    # The question is answered before the requester writes again: their /new still stands.
    [joined] = await answer(desk, asked.token, 8601, first) or []
    assert joined.reference == first
    opened = await take_message(desk, InboundMessage("telegram", "8601:2", sender, "A new topic: peatlands"))
    assert isinstance(opened, ReceiveResult) and opened.created
    assert (await questions(desk), await held(desk)) == (0, 0)

    # With the question still open, the next message opens a ticket and the question keeps what it holds.
    asked = await take_message(desk, InboundMessage("telegram", "8601:3", sender, "and the news?"))
    assert isinstance(asked, Asked)
    await choose_new(desk, 8601, 8601)
    opened = await take_message(desk, InboundMessage("telegram", "8601:4", sender, "Another: steppe fires"))
    assert isinstance(opened, ReceiveResult) and opened.created
    assert (await questions(desk), await held(desk)) == (1, 1)


async def test_new_said_in_two_processes_at_once_is_one_row_not_an_error(desk: Desk) -> None:
    """PostgreSQL: another process's /new for the chat is written but not yet committed when this one's
    comes; this one waits for it and then keeps the /new in the same row (no unique clash, no error)."""
    from row_locks import waiting_on_a_lock
    from sqlalchemy import insert

    engine = desk.sessions.kw["bind"]
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    async with engine.connect() as other:
        row = {
            "token": "other-process",
            "telegram_user_id": 8701,
            "telegram_chat_id": 8701,
            "created_at": utcnow(),
            "new_requested_at": utcnow() - timedelta(seconds=5),
        }
        await other.execute(insert(PendingChoice).values(**row))
        second = asyncio.create_task(choose_new(desk, 8701, 8701))
        assert await waiting_on_a_lock(engine, second)
        await other.commit()
    await second  # no IntegrityError
    async with desk.sessions() as session:
        chat = select(PendingChoice).where(PendingChoice.telegram_chat_id == 8701)
        rows = (await session.scalars(chat)).all()
    assert len(rows) == 1
    assert rows[0].new_requested_at is not None and rows[0].new_requested_at > row["new_requested_at"]
