"""The Telegram channel end to end: the real PTB client over HTTP against the Bot API stand-in, the real desk
on SQLite and PostgreSQL, and the delivery worker sending acknowledgements, replies and staff cards."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select
from telegram_harness import STAFF_CHAT, STAFF_USER, Harness, open_harness

from helpdesk.config import ConfigError, Settings
from helpdesk.db.models import Message, PendingChoice, Requester, Ticket
from helpdesk.desk import Desk
from standins.telegram_api import TelegramApiStandIn


@pytest.fixture
async def harness(desk: Desk) -> AsyncIterator[Harness]:
    async with open_harness(desk) as opened:
        yield opened


def buttons(message: dict[str, Any]) -> dict[str, str]:
    return {b["text"]: b["callback_data"] for row in message["reply_markup"]["inline_keyboard"] for b in row}


# ------------------------------------------------------------------------------------------- requesters


async def test_first_message_opens_ticket_acknowledges_and_posts_card(harness: Harness) -> None:
    api = harness.api
    update = await api.push_message(
        5101, "Нужна помощь с национальным докладом по охраняемым территориям", user={"language_code": "ru"}
    )
    [ack] = await harness.sent_to(5101)
    [ticket] = await harness.tickets()
    assert ticket.reference in ack["text"] and "зарегистрирован" in ack["text"]
    assert ack["reply_to_message"]["message_id"] == update["message"]["message_id"]
    card = await harness.card(ticket.reference)
    assert "Канал: telegram" in card["text"] and "национальным докладом" in card["text"]
    assert {"st:me:" + ticket.reference, "st:rc:" + ticket.reference} <= set(buttons(card).values())
    # The card's id is remembered, so later changes edit it instead of posting another.
    [ticket] = await harness.until(lambda: _with_card(harness))
    assert ticket.telegram_card_message_id == card["message_id"]


async def _with_card(harness: Harness) -> list[Ticket] | None:
    tickets = await harness.tickets()
    return tickets if tickets and tickets[0].telegram_card_message_id else None


async def test_start_offers_language_and_party_and_remembers_choices(harness: Harness) -> None:
    api = harness.api
    await api.push_message(5102, "/start", user={"first_name": "Bakhtiyor", "language_code": "ru"})
    greeting, party_prompt = await harness.sent_to(5102, 2)
    assert (
        greeting["text"].startswith("Здравствуйте, Bakhtiyor!") and "Конфиденциальность" in greeting["text"]
    )
    assert set(buttons(greeting).values()) == {"lang:en", "lang:ru"}
    assert "party:UZ" in buttons(party_prompt).values() and "Узбекистан" in buttons(party_prompt)

    await api.push_callback_query(5102, "lang:en", message_id=greeting["message_id"])
    await harness.until(lambda: _text_is(api, 5102, greeting["message_id"], "I will answer in English"))
    await api.push_callback_query(5102, "party:UZ", message_id=party_prompt["message_id"])
    await harness.until(lambda: _text_is(api, 5102, party_prompt["message_id"], "Uzbekistan"))
    async with harness.desk.sessions() as session:
        requester = await session.scalar(select(Requester).where(Requester.telegram_user_id == 5102))
    assert requester is not None
    assert (requester.language, requester.language_chosen, requester.party) == ("en", True, "UZ")

    # The choice wins over the language of the text, and the Party goes onto the ticket.
    await api.push_message(5102, "Здравствуйте, нужна методика оценки эффективности управления ООПТ")
    ack = (await harness.sent_to(5102, 3))[-1]
    assert "registered" in ack["text"]
    [ticket] = await harness.tickets()
    assert (ticket.language, ticket.party) == ("en", "UZ")


async def _text_is(api: TelegramApiStandIn, chat: int, message_id: int, fragment: str) -> bool:
    message = api.message(chat, message_id)
    return message is not None and fragment in message["text"]


async def test_start_in_kazakh_tells_the_party_without_asking(harness: Harness) -> None:
    await harness.api.push_message(5103, "/start", user={"language_code": "kk"})
    await harness.sent_to(5103)
    await asyncio.sleep(0.3)
    assert len(harness.api.sent_messages(5103)) == 1  # no Party question


async def test_follow_up_new_and_choice_between_open_tickets(harness: Harness) -> None:
    api = harness.api
    await api.push_message(5104, "First request about wetlands monitoring", user={"language_code": "en"})
    await harness.sent_to(5104, 1)
    await api.push_message(5104, "and one more detail")
    followup = (await harness.sent_to(5104, 2))[-1]
    assert "Added to your request" in followup["text"]
    await api.push_message(5104, "/new")
    assert "new request" in (await harness.sent_to(5104, 3))[-1]["text"]
    await api.push_message(5104, "Second request: invasive species in Lake Issyk-Kul")
    await harness.sent_to(5104, 4)
    first, second = await harness.tickets()
    assert first.reference != second.reference

    # Two open tickets: the bot asks which one a new message continues, and keeps the message meanwhile.
    await api.push_message(5104, "is there any news?")
    question = (await harness.sent_to(5104, 5))[-1]
    choices = buttons(question)
    assert any(first.reference in label for label in choices) and any("New" in label for label in choices)
    await api.push_message(5104, "it is quite urgent")  # joins the pending question
    await asyncio.sleep(0.3)
    assert len(api.sent_messages(5104)) == 5
    await api.push_callback_query(
        5104, f"pick:{choices_value(choices, first.reference)}", message_id=question["message_id"]
    )
    await harness.sent_to(5104, 7)
    async with harness.desk.sessions() as session:
        bodies = list(
            await session.scalars(
                select(Message.body)
                .where(Message.ticket_id == first.id, Message.kind == "inbound")
                .order_by(Message.id)  # PostgreSQL returns rows in heap order, which updates reshuffle
            )
        )
    assert bodies[-2:] == ["is there any news?", "it is quite urgent"]
    assert len(await harness.tickets()) == 2

    async def question_gone() -> bool:
        # The question is deleted after its last held message is stored, possibly after the receipts went.
        async with harness.desk.sessions() as session:
            return not await session.scalar(select(func.count()).select_from(PendingChoice))

    await harness.until(question_gone)
    # Someone else pressing the button (or a stale button) is told to send again.
    await api.push_callback_query(
        5104, f"pick:{choices_value(choices, first.reference)}", message_id=question["message_id"]
    )
    answer = await api.wait_for_call(
        "answerCallbackQuery", lambda c: "send it again" in str(c.params.get("text"))
    )
    assert answer.params["show_alert"] is True


def choices_value(choices: dict[str, str], reference: str) -> str:
    return next(v for k, v in choices.items() if reference in k).removeprefix("pick:")


async def test_status_lists_own_tickets_and_reference_shows_summary(harness: Harness) -> None:
    api = harness.api
    await api.push_message(5105, "Need the METT tool in Russian", user={"language_code": "en"})
    await harness.sent_to(5105, 1)
    [ticket] = await harness.tickets()
    await api.push_message(5105, "/status")
    listing = (await harness.sent_to(5105, 2))[-1]
    assert ticket.reference in listing["text"] and "new" in listing["text"]
    assert buttons(listing) == {f"{ticket.reference} · new": f"tk:{ticket.reference}"}
    await api.push_callback_query(5105, f"tk:{ticket.reference}", message_id=listing["message_id"])
    summary = (await harness.sent_to(5105, 3))[-1]
    assert summary["text"].startswith(f"{ticket.reference}: Need the METT tool")
    # A bare reference shows the summary too, but only for the requester's own tickets.
    await api.push_message(5106, ticket.reference, user={"language_code": "en"})
    refusal = (await harness.sent_to(5106, 1))[-1]
    assert "found no request" in refusal["text"]
    assert len(await harness.tickets()) == 1


async def test_photo_alone_opens_ticket_and_big_files_get_a_clear_answer(harness: Harness) -> None:
    api = harness.api
    api.add_file("ph1", b"\xff\xd8\xff-photo", "photos/file_9.jpg")
    photo = [
        {"file_id": "ph0", "file_unique_id": "s0", "width": 90, "height": 90},
        {"file_id": "ph1", "file_unique_id": "s1", "width": 1280, "height": 960, "file_size": 9},
    ]
    await api.push_message(5107, None, user={"language_code": "en"}, extra={"photo": photo})
    await harness.sent_to(5107, 1)
    async with harness.desk.sessions() as session:
        stored = await session.scalar(select(Message).where(Message.kind == "inbound"))
        assert stored is not None
        await session.refresh(stored, ["attachments"])
        assert [(a.filename, a.content_type, a.data) for a in stored.attachments] == [
            ("photo_s1.jpg", "image/jpeg", b"\xff\xd8\xff-photo")
        ]

    big = {
        "file_id": "doc9",
        "file_unique_id": "d9",
        "file_name": "survey.zip",
        "file_size": 25 * 1024 * 1024,
    }
    await api.push_message(5108, None, user={"language_code": "en"}, extra={"document": big})
    answer = (await harness.sent_to(5108, 1))[-1]
    assert "survey.zip is larger than 20 MB" in answer["text"] and "registered" not in answer["text"]
    # Without a size in the update, Telegram's getFile refusal gives the same answer; the caption is kept.
    api.add_file("doc10", b"x" * (20 * 1024 * 1024 + 1), "documents/big.pdf")
    unsized = {"file_id": "doc10", "file_unique_id": "d10", "file_name": "report.pdf"}
    await api.push_message(
        5109, None, caption="Our draft NBSAP", user={"language_code": "en"}, extra={"document": unsized}
    )
    texts = [m["text"] for m in await harness.sent_to(5109, 2)]
    assert any("report.pdf is larger than 20 MB" in t and "Your text has been registered" in t for t in texts)
    assert len(await harness.tickets()) == 2


async def test_voice_is_kept_and_sticker_gets_polite_answer(harness: Harness) -> None:
    api = harness.api
    api.add_file("v1", b"OggS-voice", "voice/file_1.oga")
    voice = {
        "file_id": "v1",
        "file_unique_id": "vv1",
        "duration": 3,
        "mime_type": "audio/ogg",
        "file_size": 10,
    }
    await api.push_message(5110, None, user={"language_code": "ru"}, extra={"voice": voice})
    await harness.sent_to(5110, 1)
    sticker = {
        "file_id": "st",
        "file_unique_id": "st",
        "type": "regular",
        "width": 1,
        "height": 1,
        "is_animated": False,
        "is_video": False,
    }
    await api.push_message(5110, None, user={"language_code": "ru"}, extra={"sticker": sticker})
    answer = (await harness.sent_to(5110, 2))[-1]
    assert "стикеры" in answer["text"]
    assert len(await harness.tickets()) == 1


async def test_edited_message_updates_the_stored_text(harness: Harness) -> None:
    api = harness.api
    update = await api.push_message(5111, "We need help with target 3 reportng", user={"language_code": "en"})
    await harness.sent_to(5111, 1)
    await api.push_edited_message(
        5111, update["message"]["message_id"], "We need help with Target 3 reporting"
    )
    [edited] = await harness.until(lambda: harness.audit("edited"))
    assert edited.detail["previous"] == "We need help with target 3 reportng"
    async with harness.desk.sessions() as session:
        assert await session.scalar(select(Message.body).where(Message.kind == "inbound")) == (
            "We need help with Target 3 reporting"
        )


async def test_group_each_member_is_a_requester_and_answers_go_to_the_group(harness: Harness) -> None:
    api = harness.api
    group = -1001500
    await api.push_message(
        group, "morning all", chat_type="supergroup", chat_title="CA focal points", user={"id": 6001}
    )
    await api.push_message(
        group,
        "@tscc_helpdesk_bot we need PAME guidance",
        chat_type="supergroup",
        user={"id": 6001, "first_name": "Dana", "language_code": "en"},
    )
    await harness.sent_to(group, 1)
    bot_message = api.sent_messages(group)[0]
    await api.push_message(
        group,
        "Our ministry asks about the GBF Fund",
        chat_type="supergroup",
        user={"id": 6002, "first_name": "Timur", "language_code": "en"},
        reply_to_message_id=bot_message["message_id"],
    )
    await harness.sent_to(group, 2)
    tickets = await harness.tickets()
    assert len(tickets) == 2 and {t.telegram_chat_id for t in tickets} == {group}
    assert tickets[0].requester_id != tickets[1].requester_id
    async with harness.desk.sessions() as session:
        body = await session.scalar(
            select(Message.body).where(Message.ticket_id == tickets[0].id, Message.kind == "inbound")
        )
    assert body == "we need PAME guidance"  # the mention only says who is addressed

    # A staff reply to the card reaches the group, under the member's message.
    card = await harness.card(tickets[0].reference)
    await api.push_message(
        STAFF_CHAT,
        "Please see the PAME guidance at ...",
        chat_type="supergroup",
        user=STAFF_USER,
        reply_to_message_id=card["message_id"],
    )
    answer = (await harness.sent_to(group, 3))[-1]
    assert answer["text"].startswith(tickets[0].reference) and "PAME guidance at" in answer["text"]
    assert answer["reply_to_message"]["from"]["id"] == 6001


async def test_bot_added_to_group_introduces_itself(harness: Harness) -> None:
    bot = harness.api.bot_user
    await harness.api.push_update(
        {
            "my_chat_member": {
                "chat": {"id": -1001600, "type": "supergroup", "title": "Focal points KZ"},
                "from": {"id": 6100, "is_bot": False, "first_name": "Aigerim", "language_code": "ru"},
                "date": 1_760_000_000,
                "old_chat_member": {"status": "left", "user": bot},
                "new_chat_member": {"status": "member", "user": bot},
            }
        }
    )
    [hello] = await harness.sent_to(-1001600)
    assert "@tscc_helpdesk_bot" in hello["text"]


# ------------------------------------------------------------------------------------------------ staff


async def _ticket_with_card(harness: Harness, chat: int = 5201) -> tuple[Ticket, dict[str, Any]]:
    await harness.api.push_message(chat, "Request on protected areas financing", user={"language_code": "en"})
    await harness.sent_to(chat, 1)
    ticket = (await harness.tickets())[-1]
    card = await harness.card(ticket.reference)
    await harness.until(lambda: _with_card(harness))
    return ticket, card


async def test_assign_to_me_edits_the_card_in_place(harness: Harness) -> None:
    api = harness.api
    ticket, card = await _ticket_with_card(harness)
    await api.push_callback_query(
        STAFF_CHAT, f"st:me:{ticket.reference}", message_id=card["message_id"], user=STAFF_USER
    )
    await harness.until(lambda: _text_is(api, STAFF_CHAT, card["message_id"], "исполнитель: @aziza_tscc"))
    assert len(api.sent_messages(STAFF_CHAT)) == 1  # edited, not posted again
    [edit] = api.calls_to("editMessageText")
    assert edit.params["message_id"] == card["message_id"] and edit.params["chat_id"] == STAFF_CHAT
    [assigned] = await harness.audit("assigned")
    assert assigned.actor == "telegram:@aziza_tscc"

    await api.push_message(STAFF_CHAT, "/mine", chat_type="supergroup", user=STAFF_USER)
    mine = await harness.card("Ваши активные")
    assert ticket.reference in mine["text"]


async def test_outsider_is_refused_logged_and_audited(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    api = harness.api
    ticket, card = await _ticket_with_card(harness)
    with caplog.at_level(logging.WARNING):
        await api.push_callback_query(
            STAFF_CHAT,
            f"st:close:{ticket.reference}",
            message_id=card["message_id"],
            user={"id": 999, "first_name": "Mallory"},
        )
        refusal = await api.wait_for_call("answerCallbackQuery", lambda c: bool(c.params.get("text")))
        await api.push_message(5201, f"/reply {ticket.reference} hi", user={"language_code": "en"})
        await harness.sent_to(5201, 2)
    assert "только сотрудники" in refusal.params["text"] and refusal.params["show_alert"] is True
    assert "refused" in caplog.text and "telegram:999" in caplog.text
    refused = await harness.audit("refused")
    assert {r.detail["attempted"] for r in refused} == {"button st:close", "/reply"}
    assert (await harness.tickets())[0].status == "new"


async def test_staff_commands_reply_note_queue_ticket(harness: Harness) -> None:
    api = harness.api
    ticket, _ = await _ticket_with_card(harness)
    staff = {"chat_type": "supergroup", "user": STAFF_USER}
    await api.push_message(STAFF_CHAT, "/queue", **staff)
    assert ticket.reference in (await harness.card("Активные обращения"))["text"]
    await api.push_message(STAFF_CHAT, f"/note {ticket.reference} called the ministry", **staff)
    await harness.card(ticket.reference, "заметка добавлена")
    await api.push_message(STAFF_CHAT, f"/reply {ticket.reference} Here is the *BIOFIN* <guide>", **staff)
    answer = (await harness.sent_to(5201, 2))[-1]
    assert "Here is the *BIOFIN* <guide>" in answer["text"]  # plain text: nothing to escape, nothing lost
    assert "parse_mode" not in api.calls_to("sendMessage")[-1].params
    await api.push_message(STAFF_CHAT, f"/ticket {ticket.reference}", **staff)
    shown = await harness.card(ticket.reference, "[note]")
    assert "called the ministry" in shown["text"] and "[outbound]" in shown["text"]
    await api.push_message(STAFF_CHAT, "/reply nonsense", **staff)
    assert "/reply TSCC-2026-0042 text" in (await harness.card("Как использовать"))["text"]


async def test_status_picker_and_close(harness: Harness) -> None:
    api = harness.api
    ticket, card = await _ticket_with_card(harness)
    staff = {"message_id": card["message_id"], "user": STAFF_USER}
    await api.push_callback_query(STAFF_CHAT, f"st:status:{ticket.reference}", **staff)
    picker = await harness.until(
        lambda: _markup_has(api, card["message_id"], f"st:set:{ticket.reference}:resolved")
    )
    assert picker
    await api.push_callback_query(STAFF_CHAT, f"st:set:{ticket.reference}:resolved", **staff)
    await harness.until(lambda: _text_is(api, STAFF_CHAT, card["message_id"], "решено"))
    await api.push_callback_query(STAFF_CHAT, f"st:close:{ticket.reference}", **staff)
    await harness.until(lambda: _text_is(api, STAFF_CHAT, card["message_id"], "закрыто"))
    assert (await harness.tickets())[0].status == "closed"
    assert (
        f"st:close:{ticket.reference}"
        not in buttons(api.message(STAFF_CHAT, card["message_id"]) or {}).values()
    )


async def _markup_has(api: TelegramApiStandIn, message_id: int, data: str) -> bool:
    message = api.message(STAFF_CHAT, message_id) or {}
    return "reply_markup" in message and data in buttons(message).values()


async def test_reclassify_picker_saves_targets_and_core_functions(harness: Harness) -> None:
    api = harness.api
    ticket, card = await _ticket_with_card(harness)
    staff = {"message_id": card["message_id"], "user": STAFF_USER}
    ref = ticket.reference
    await api.push_callback_query(STAFF_CHAT, f"st:rc:{ref}", **staff)
    await harness.until(lambda: _any_rc(api, card["message_id"]))
    # The picker starts from the classifier's choice; the selection travels in the button data.
    assert any(v.endswith(":C") for v in buttons(api.message(STAFF_CHAT, card["message_id"]) or {}).values())
    # Staff pick target 14, then 3 (14 stays the subject of the request), then core function 2, then save.
    await api.push_callback_query(STAFF_CHAT, f"rc:{ref}:14::T", **staff)
    await harness.until(lambda: _markup_has(api, card["message_id"], f"rc:{ref}:14::t3"))
    await api.push_callback_query(STAFF_CHAT, f"rc:{ref}:14::t3", **staff)
    await harness.until(lambda: _markup_has(api, card["message_id"], f"rc:{ref}:14.3::C"))
    await api.push_callback_query(STAFF_CHAT, f"rc:{ref}:14.3::c2", **staff)
    await harness.until(lambda: _markup_has(api, card["message_id"], f"rc:{ref}:14.3:2:s"))
    await api.push_callback_query(STAFF_CHAT, f"rc:{ref}:14.3:2:s", **staff)
    await harness.until(lambda: _text_is(api, STAFF_CHAT, card["message_id"], "Цели ГРБ: 14"))
    [ticket] = await harness.tickets()
    assert ticket.classification is not None and ticket.classification["source"] == "staff"
    assert [t["target"] for t in ticket.classification["targets"]] == [14, 3]
    assert [c["core_function"] for c in ticket.classification["core_functions"]] == [2]
    assert buttons(api.message(STAFF_CHAT, card["message_id"]) or {})  # the standard buttons are back


async def _any_rc(api: TelegramApiStandIn, message_id: int) -> bool:
    message = api.message(STAFF_CHAT, message_id) or {}
    return "reply_markup" in message and any(v.startswith("rc:") for v in buttons(message).values())


async def test_blocked_requester_is_shown_on_the_card(harness: Harness) -> None:
    api = harness.api
    ticket, card = await _ticket_with_card(harness, chat=5301)
    api.blocked_chats.add(5301)
    await api.push_message(
        STAFF_CHAT, f"/reply {ticket.reference} Answer", chat_type="supergroup", user=STAFF_USER
    )
    await harness.until(lambda: _text_is(api, STAFF_CHAT, card["message_id"], "Ответ не доставлен"))
    assert "blocked" in (api.message(STAFF_CHAT, card["message_id"]) or {})["text"]
    await harness.api.push_update(
        {
            "my_chat_member": {
                "chat": {"id": 5301, "type": "private", "first_name": "Test"},
                "from": {"id": 5301, "is_bot": False, "first_name": "Test"},
                "date": 1_760_000_000,
                "old_chat_member": {"status": "member", "user": api.bot_user},
                "new_chat_member": {"status": "kicked", "user": api.bot_user, "until_date": 0},
            }
        }
    )
    await harness.until(lambda: _text_is(api, STAFF_CHAT, card["message_id"], "заблокировал бота"))
    assert len(await harness.audit("blocked_bot")) == 1


async def test_card_posting_survives_a_bot_api_outage(harness: Harness) -> None:
    api = harness.api
    api.fail_next("sendMessage", 502, "Bad Gateway", times=2)
    await api.push_message(5401, "Request during an outage", user={"language_code": "en"})
    [ticket] = await harness.until(harness.tickets)
    await harness.card(ticket.reference)
    await harness.sent_to(5401, 1)


# ---------------------------------------------------------------------------------------------- config


def test_webhook_settings() -> None:
    env = {
        "HELPDESK_TELEGRAM_TOKEN": "1:abc",
        "HELPDESK_TELEGRAM_WEBHOOK_URL": "https://helpdesk.example.org/telegram",
        "HELPDESK_TELEGRAM_WEBHOOK_PORT": "8080",
        "HELPDESK_TELEGRAM_WEBHOOK_SECRET": "s3cret-token_1",
    }
    telegram = Settings.from_env(env).telegram
    assert telegram is not None
    assert (telegram.webhook_url, telegram.webhook_listen, telegram.webhook_port) == (
        "https://helpdesk.example.org/telegram",
        "127.0.0.1",
        8080,
    )
    assert telegram.webhook_secret is not None and "s3cret" not in repr(telegram)
    polling = Settings.from_env({"HELPDESK_TELEGRAM_TOKEN": "1:abc"}).telegram
    assert polling is not None and polling.webhook_url is None
    with pytest.raises(ConfigError, match="HELPDESK_TELEGRAM_WEBHOOK_SECRET"):
        Settings.from_env({**env, "HELPDESK_TELEGRAM_WEBHOOK_SECRET": "no spaces allowed"})
