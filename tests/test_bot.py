"""The Telegram channel adapter, driven through the real PTB client over HTTP against the Bot API stand-in."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from telegram import Bot, TelegramObject, Update
from telegram.ext import Application
from telegram.request import HTTPXRequest

from bot.application import (
    TelegramStartError,
    build_application,
    start_polling,
    start_webhook,
    stop_application,
)
from bot.inbound import inbound_from_update
from bot.sender import TelegramSender, split_text, utf16_len
from helpdesk.delivery import DeliveryError
from helpdesk.messages import InboundMessage, OutboundMessage, Sender
from standins.telegram_api import TelegramApiStandIn

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
async def api() -> AsyncIterator[TelegramApiStandIn]:
    async with TelegramApiStandIn() as stand_in:
        yield stand_in


class Desk:
    """Records what the adapter hands over; optionally fails like a broken database would."""

    def __init__(self) -> None:
        self.received: list[InboundMessage] = []
        self.arrived = asyncio.Event()
        self.fail = False

    async def __call__(self, inbound: InboundMessage) -> None:
        if self.fail:
            raise RuntimeError("database is down")
        self.received.append(inbound)
        self.arrived.set()


@pytest.fixture
def desk() -> Desk:
    return Desk()


@pytest.fixture
async def running_bot(api: TelegramApiStandIn, desk: Desk) -> AsyncIterator[Application]:  # type: ignore[type-arg]
    app = build_application(api.token, api.base_url, desk)
    await start_polling(app, poll_timeout=1)
    try:
        yield app
    finally:
        await stop_application(app)


def text_of(call: Any) -> str:
    return str(call.params["text"])


async def test_text_message_becomes_inbound_message(
    api: TelegramApiStandIn,
    desk: Desk,
    running_bot: Application,  # type: ignore[type-arg]
) -> None:
    update = await api.push_message(
        5551234,
        "Нужна помощь с национальным докладом по цели 3",
        user={"first_name": "Айгерим", "last_name": "Садыкова", "language_code": "ru"},
    )
    await asyncio.wait_for(desk.arrived.wait(), 5)
    [inbound] = desk.received
    message_id = update["message"]["message_id"]
    assert inbound == InboundMessage(
        channel="telegram",
        channel_message_id=f"5551234:{message_id}",
        sender=Sender(
            name="Айгерим Садыкова", telegram_user_id=5551234, telegram_chat_id=5551234, language="ru"
        ),
        text="Нужна помощь с национальным докладом по цели 3",
        received_at=inbound.received_at,
    )
    assert isinstance(inbound.received_at, datetime) and inbound.received_at.tzinfo is not None
    # The desk acknowledges through its outbox: the handler itself must not answer.
    await asyncio.sleep(0.2)
    assert api.calls_to("sendMessage") == []


async def test_start_greets_in_russian_for_ru_language_code(
    api: TelegramApiStandIn,
    running_bot: Application,  # type: ignore[type-arg]
) -> None:
    await api.push_message(42, "/start", user={"first_name": "Бахтиёр", "language_code": "ru"})
    call = await api.wait_for_call("sendMessage")
    assert call.params["chat_id"] == 42
    assert text_of(call).startswith("Здравствуйте, Бахтиёр!")
    assert "parse_mode" not in call.params


async def test_start_greets_in_english_otherwise(
    api: TelegramApiStandIn,
    running_bot: Application,  # type: ignore[type-arg]
) -> None:
    await api.push_message(43, "/start", user={"first_name": "Anna", "language_code": "de"})
    call = await api.wait_for_call("sendMessage")
    assert text_of(call).startswith("Hello, Anna!")


async def test_sticker_gets_a_polite_answer_and_no_ticket(
    api: TelegramApiStandIn,
    desk: Desk,
    running_bot: Application,  # type: ignore[type-arg]
) -> None:
    sticker = {
        "file_id": "CAACAgIAAxkBAAIBOmZ",
        "file_unique_id": "AgADlwADwZxgDA",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
        "emoji": "👍",
    }
    await api.push_message(44, None, user={"language_code": "en"}, extra={"sticker": sticker})
    call = await api.wait_for_call("sendMessage")
    assert "cannot handle this kind of message" in text_of(call)
    assert "text message" in text_of(call)
    assert desk.received == []


async def test_unknown_command_is_answered_clearly(
    api: TelegramApiStandIn,
    desk: Desk,
    running_bot: Application,  # type: ignore[type-arg]
) -> None:
    await api.push_message(45, "/frobnicate now", user={"language_code": "ru"})
    call = await api.wait_for_call("sendMessage")
    assert "/frobnicate" in text_of(call) and "неизвестна" in text_of(call)
    assert desk.received == []


async def test_caption_counts_as_text(
    api: TelegramApiStandIn,
    desk: Desk,
    running_bot: Application,  # type: ignore[type-arg]
) -> None:
    api.add_file("p1", b"\xff\xd8jpeg", "photos/file_1.jpg")
    photo = [{"file_id": "p1", "file_unique_id": "u1", "width": 90, "height": 90, "file_size": 6}]
    await api.push_message(46, None, caption="Photo of the wetland survey", extra={"photo": photo})
    await asyncio.wait_for(desk.arrived.wait(), 5)
    assert desk.received[0].text == "Photo of the wetland survey"
    assert [a.data for a in desk.received[0].attachments] == [b"\xff\xd8jpeg"]


async def test_group_messages_are_left_alone_for_now(
    api: TelegramApiStandIn,
    desk: Desk,
    running_bot: Application,  # type: ignore[type-arg]
) -> None:
    await api.push_message(-100123, "hello everyone", chat_type="supergroup", chat_title="Focal points")
    await api.push_message(47, "private one")
    await asyncio.wait_for(desk.arrived.wait(), 5)
    assert [m.text for m in desk.received] == ["private one"]
    assert api.calls_to("sendMessage") == []


async def test_desk_failure_is_told_to_the_requester(
    api: TelegramApiStandIn,
    desk: Desk,
    running_bot: Application,
    caplog: pytest.LogCaptureFixture,  # type: ignore[type-arg]
) -> None:
    desk.fail = True
    with caplog.at_level(logging.ERROR):
        await api.push_message(48, "please help", user={"language_code": "en"})
        call = await api.wait_for_call("sendMessage")
    assert "could not be registered" in text_of(call)
    assert "database is down" in caplog.text
    assert api.token not in caplog.text


async def test_reply_to_a_bot_message_is_kept(
    api: TelegramApiStandIn,
    desk: Desk,
    running_bot: Application,  # type: ignore[type-arg]
) -> None:
    ack = await running_bot.bot.send_message(49, "TSCC-2026-0001 registered")
    await api.push_message(49, "one more detail", reply_to_message_id=ack.message_id)
    await asyncio.wait_for(desk.arrived.wait(), 5)
    assert desk.received[0].replies_to == (f"49:{ack.message_id}",)


async def test_bot_api_500_then_200_at_start_still_reaches_polling(
    api: TelegramApiStandIn, desk: Desk
) -> None:
    api.fail_next("getMe", 500, "Internal Server Error")
    api.fail_next("deleteWebhook", 502, "Bad Gateway")
    app = build_application(api.token, api.base_url, desk)
    try:
        await start_polling(app, poll_timeout=1)
        await api.push_message(50, "after the hiccup")
        await asyncio.wait_for(desk.arrived.wait(), 10)
    finally:
        await stop_application(app)
    assert [c.ok for c in api.calls_to("getMe")] == [False, True]
    assert [c.ok for c in api.calls_to("deleteWebhook")][:2] == [False, True]
    assert desk.received[0].text == "after the hiccup"


async def test_rejected_token_is_one_clear_line_without_the_token(
    api: TelegramApiStandIn, desk: Desk
) -> None:
    token = "9876543210:AAFakeButWellFormedTokenValue123456789"
    app = build_application(token, api.base_url, desk)
    with pytest.raises(TelegramStartError) as failure:
        await start_polling(app, poll_timeout=1)
    await app.shutdown()
    message = str(failure.value)
    assert "HELPDESK_TELEGRAM_TOKEN" in message
    assert token not in message and "\n" not in message


async def test_unreachable_api_gives_up_after_retries(desk: Desk) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = build_application("1:x", f"http://127.0.0.1:{port}/bot", desk)
    with pytest.raises(TelegramStartError, match="HELPDESK_TELEGRAM_API_URL"):
        await start_polling(app, poll_timeout=1, bootstrap_retries=1)
    await app.shutdown()


async def test_webhook_mode_round_trip(api: TelegramApiStandIn, desk: Desk) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = build_application(api.token, api.base_url, desk)
    await start_webhook(
        app,
        webhook_url=f"http://127.0.0.1:{port}/telegram",
        listen="127.0.0.1",
        port=port,
        url_path="telegram",
        secret_token="hook-secret",
    )
    try:
        set_hook = api.calls_to("setWebhook")[0]
        assert set_hook.params["secret_token"] == "hook-secret"
        await api.push_message(51, "via webhook", user={"language_code": "en"})
        await asyncio.wait_for(desk.arrived.wait(), 5)
        await api.push_message(51, "/start", user={"language_code": "en"})
        greeting = await api.wait_for_call("sendMessage")
    finally:
        await stop_application(app)
    assert desk.received[0].text == "via webhook"
    assert text_of(greeting).startswith("Hello")
    assert len(api.webhook_deliveries) == 2


async def test_inbound_from_update_ignores_non_messages(api: TelegramApiStandIn) -> None:
    raw = await api.push_message(60, "hello")
    edited = await api.push_edited_message(60, raw["message"]["message_id"], "hello, edited")
    assert inbound_from_update(Update.de_json(edited, None)) is None
    assert inbound_from_update(Update.de_json(raw, None)) is not None


# --------------------------------------------------------------------------------------------- sender


@pytest.fixture
async def sender(api: TelegramApiStandIn) -> AsyncIterator[TelegramSender]:
    async with TelegramSender(api.token, api.base_url) as telegram_sender:
        yield telegram_sender


def outbound(text: str, chat: int | str = 700, **extra: Any) -> OutboundMessage:
    return OutboundMessage(
        channel="telegram", recipient=str(chat), text=text, reference="TSCC-2026-0042", extra=extra
    )


async def test_sender_delivers_plain_text(api: TelegramApiStandIn, sender: TelegramSender) -> None:
    text = "TSCC-2026-0042: *not bold* <b>not html</b> _x_ [link](y)"
    sent_id = await sender.send(outbound(text))
    [message] = api.sent_messages(700)
    assert sent_id == f"700:{message['message_id']}"
    assert message["text"] == text
    assert "parse_mode" not in api.calls_to("sendMessage")[0].params


async def test_sender_splits_long_text_on_paragraphs(api: TelegramApiStandIn, sender: TelegramSender) -> None:
    paragraphs = [f"Paragraph {i}: " + "биоразнообразие " * 40 for i in range(15)]
    text = "\n\n".join(p.strip() for p in paragraphs)
    assert 9000 <= len(text) < 11000
    sent_id = await sender.send(
        outbound(text, reply_markup={"inline_keyboard": [[{"text": "OK", "callback_data": "ok"}]]})
    )
    messages = api.sent_messages(700)
    assert len(messages) == 3
    assert all(utf16_len(m["text"]) <= 4096 for m in messages)
    # Split on paragraph boundaries: every part starts a paragraph and nothing is lost.
    assert all(m["text"].startswith("Paragraph") for m in messages)
    assert "\n\n".join(m["text"] for m in messages) == text
    assert sent_id == f"700:{messages[-1]['message_id']}"
    assert "reply_markup" in messages[-1] and "reply_markup" not in messages[0]


async def test_a_send_reads_two_ids_from_the_answer_and_builds_no_telegram_objects(
    api: TelegramApiStandIn, sender: TelegramSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``send_message`` turned the extras into objects and Telegram's whole answer into a Message (with the
    message it replies to): a quarter of a millisecond of CPU per receipt, for two ids."""
    built: list[str] = []
    real_init = TelegramObject.__init__

    def counting_init(self: TelegramObject, *args: Any, **kwargs: Any) -> None:
        built.append(type(self).__name__)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(TelegramObject, "__init__", counting_init)
    asked = (await api.push_message(700, "please help"))["message"]
    markup = {"inline_keyboard": [[{"text": "Close", "callback_data": "close:1"}]]}
    sent_id = await sender.send(
        outbound(
            "hello", reply_to_message_id=asked["message_id"], reply_markup=markup, disable_notification=True
        )
    )
    [message] = api.sent_messages(700)
    assert sent_id == f"700:{message['message_id']}"
    params = api.calls_to("sendMessage")[0].params
    assert params["reply_parameters"] == {
        "message_id": asked["message_id"],
        "allow_sending_without_reply": True,
    }
    assert params["reply_markup"] == markup and params["disable_notification"] is True
    assert message["reply_to_message"]["message_id"] == asked["message_id"]
    assert built == []  # no Message, ReplyParameters or keyboard built on the way


def test_split_text_without_boundaries_and_with_emoji() -> None:
    assert split_text("short") == ["short"]
    parts = split_text("x" * 9000)
    assert [len(p) for p in parts] == [4096, 4096, 808]
    emoji = split_text("🌿" * 3000)  # 6000 UTF-16 units
    assert all(utf16_len(p) <= 4096 for p in emoji) and "".join(emoji) == "🌿" * 3000
    lines = split_text("\n".join(["line " * 10] * 200))
    assert all(not p.startswith("\n") and utf16_len(p) <= 4096 for p in lines)


@pytest.mark.parametrize(
    ("code", "description", "retry_after", "permanent"),
    [
        (429, "Too Many Requests: retry after 7", 7, False),
        (403, "Forbidden: bot was blocked by the user", None, True),
        (400, "Bad Request: chat not found", None, True),
        (500, "Internal Server Error", None, False),
        (502, "Bad Gateway", None, False),
    ],
)
async def test_sender_maps_bot_api_errors(
    api: TelegramApiStandIn,
    sender: TelegramSender,
    code: int,
    description: str,
    retry_after: int | None,
    permanent: bool,
) -> None:
    api.fail_next("sendMessage", code, description, retry_after=retry_after)
    with pytest.raises(DeliveryError) as failure:
        await sender.send(outbound("hello"))
    assert failure.value.permanent is permanent
    assert failure.value.retry_after == (float(retry_after) if retry_after else None)
    assert api.token not in failure.value.reason
    # Nothing was delivered, and the next attempt goes through.
    assert api.sent_messages(700) == []
    await sender.send(outbound("hello"))
    assert [m["text"] for m in api.sent_messages(700)] == ["hello"]


async def test_sender_timeout_is_temporary(api: TelegramApiStandIn) -> None:
    async def slow(params: dict[str, Any]) -> Any:
        await asyncio.sleep(1)
        return True

    api.methods["sendmessage"] = slow
    bot = Bot(api.token, base_url=api.base_url, request=HTTPXRequest(read_timeout=0.2))
    async with TelegramSender.from_bot(bot) as impatient:
        with pytest.raises(DeliveryError) as failure:
            await impatient.send(outbound("hello"))
    assert failure.value.permanent is False


async def test_sender_retry_after_partial_failure_does_not_repeat_parts(
    api: TelegramApiStandIn, sender: TelegramSender
) -> None:
    text = "\n\n".join(["a" * 4000, "b" * 4000, "c" * 100])
    api.fail_next("sendMessage", 500, after=1)  # the first part goes through, the second fails
    with pytest.raises(DeliveryError) as failure:
        await sender.send(outbound(text))
    assert not failure.value.permanent
    assert [m["text"][0] for m in api.sent_messages(700)] == ["a"]
    await sender.send(outbound(text))
    assert [m["text"][0] for m in api.sent_messages(700)] == ["a", "b", "c"]


async def test_sender_follows_group_migration(api: TelegramApiStandIn, sender: TelegramSender) -> None:
    # A group that became a supergroup: Telegram names the new chat in parameters.migrate_to_chat_id.
    api.fail_next(
        "sendMessage",
        400,
        "Bad Request: group chat was upgraded to a supergroup chat",
        parameters={"migrate_to_chat_id": -1001234},
    )
    sent_id = await sender.send(outbound("to the group", chat=-123))
    assert sent_id is not None and sent_id.startswith("-1001234:")
    assert [c.params["chat_id"] for c in api.calls_to("sendMessage")] == [-123, -1001234]
    assert [m["text"] for m in api.sent_messages(-1001234)] == ["to the group"]


async def test_sender_refuses_other_channels_and_bad_recipients(sender: TelegramSender) -> None:
    with pytest.raises(DeliveryError) as wrong_channel:
        await sender.send(OutboundMessage(channel="email", recipient="a@example.org", text="x"))
    assert wrong_channel.value.permanent
    with pytest.raises(DeliveryError) as bad_recipient:
        await sender.send(outbound("x", chat="not-a-chat"))
    assert bad_recipient.value.permanent


async def test_token_never_reaches_the_logs(
    api: TelegramApiStandIn, desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = build_application(api.token, api.base_url, desk)
    api.fail_next("getUpdates", 500, f"error mentioning {api.token}")
    try:
        await start_polling(app, poll_timeout=1)
        await api.push_message(61, "hi")
        await asyncio.wait_for(desk.arrived.wait(), 5)
    finally:
        await stop_application(app)
    logging.getLogger("test").error("token in an exception", exc_info=RuntimeError(api.token))
    assert caplog.records
    assert api.token not in caplog.text
    assert all(api.token not in (r.exc_text or "") for r in caplog.records)
