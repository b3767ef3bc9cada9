"""The Bot API stand-in, checked over raw HTTP and through the unmodified python-telegram-bot client."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.ext import Application, CallbackQueryHandler, ContextTypes

from standins.telegram_api import TelegramApiStandIn

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
async def api() -> AsyncIterator[TelegramApiStandIn]:
    async with TelegramApiStandIn() as stand_in:
        yield stand_in


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(trust_env=False) as session:
        yield session


@pytest.fixture
async def bot(api: TelegramApiStandIn) -> AsyncIterator[Bot]:
    async with Bot(api.token, base_url=api.base_url, base_file_url=api.base_file_url) as client:
        yield client


async def call(
    http: aiohttp.ClientSession, api: TelegramApiStandIn, method: str, **form: Any
) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{api.base_url}{api.token}/{method}", data=form) as response:
        return response.status, await response.json()


async def test_get_me_is_a_full_bot_user(bot: Bot, api: TelegramApiStandIn) -> None:
    me = await bot.get_me()
    assert me.is_bot is True
    assert me.username == "tscc_helpdesk_bot"
    assert me.id == int(api.token.split(":")[0])
    assert api.calls_to("getMe")[0].ok


async def test_wrong_token_is_unauthorized(api: TelegramApiStandIn) -> None:
    wrong = Bot("1:wrong", base_url=api.base_url)
    with pytest.raises(InvalidToken):
        await wrong.get_me()
    await wrong.shutdown()


async def test_unknown_method_is_400_not_404(http: aiohttp.ClientSession, api: TelegramApiStandIn) -> None:
    status, body = await call(http, api, "sendPhoto", chat_id="1")
    assert status == 400
    assert body == {
        "ok": False,
        "error_code": 400,
        "description": "Bot API stand-in does not implement sendPhoto",
    }
    assert api.unknown_methods == ["sendPhoto"]


async def test_form_fields_are_decoded_per_key(bot: Bot, api: TelegramApiStandIn) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Open", callback_data="open:1")]])
    await bot.send_message(chat_id=42, text="42", reply_markup=markup, disable_notification=True)
    sent = api.calls_to("sendMessage")[0]
    # On the wire both are "42"; only the key says which one is a number.
    assert sent.raw["chat_id"] == "42" and sent.raw["text"] == "42"
    assert sent.params["chat_id"] == 42
    assert sent.params["text"] == "42"
    assert sent.params["disable_notification"] is True
    assert sent.params["reply_markup"] == {"inline_keyboard": [[{"text": "Open", "callback_data": "open:1"}]]}
    assert api.sent_messages(42)[0]["reply_markup"] == sent.params["reply_markup"]


async def test_json_and_query_string_requests_work_too(
    http: aiohttp.ClientSession, api: TelegramApiStandIn
) -> None:
    url = f"{api.base_url}{api.token}/sendMessage"
    async with http.post(url, json={"chat_id": 5, "text": "json body"}) as response:
        assert (await response.json())["result"]["text"] == "json body"
    async with http.get(url, params={"chat_id": "5", "text": "query"}) as response:
        assert (await response.json())["result"]["chat"]["id"] == 5
    assert [m["text"] for m in api.sent_messages(5)] == ["json body", "query"]


async def test_long_poll_waits_for_timeout_then_returns_empty(
    http: aiohttp.ClientSession, api: TelegramApiStandIn
) -> None:
    started = time.monotonic()
    status, body = await call(http, api, "getUpdates", timeout="1")
    elapsed = time.monotonic() - started
    assert status == 200 and body["result"] == []
    assert 0.9 <= elapsed < 5.0  # held for the timeout (the upper bound leaves room for a loaded machine)


async def test_long_poll_wakes_on_push_and_offset_confirms(
    http: aiohttp.ClientSession, api: TelegramApiStandIn
) -> None:
    poll = asyncio.create_task(call(http, api, "getUpdates", timeout="10"))
    await api.wait_for_poll()
    started = time.monotonic()
    await api.push_message(7, "first")
    _, body = await poll
    assert time.monotonic() - started < 5.0  # woken by the push, well before its 10 s timeout
    [update] = body["result"]
    assert update["message"]["text"] == "first"
    # Not confirmed yet: asked again without an offset, the same update comes back.
    _, again = await call(http, api, "getUpdates")
    assert [u["update_id"] for u in again["result"]] == [update["update_id"]]
    await api.push_message(7, "second")
    await api.push_message(7, "third")
    _, limited = await call(http, api, "getUpdates", offset=str(update["update_id"] + 1), limit="1")
    assert [u["message"]["text"] for u in limited["result"]] == ["second"]
    assert [u["message"]["text"] for u in api.pending_updates] == ["second", "third"]


async def test_second_poller_terminates_the_first_with_409(
    http: aiohttp.ClientSession, api: TelegramApiStandIn
) -> None:
    first = asyncio.create_task(call(http, api, "getUpdates", timeout="10"))
    await api.wait_for_poll(1)
    second = asyncio.create_task(call(http, api, "getUpdates", timeout="10"))
    status, body = await asyncio.wait_for(first, 8)
    assert status == 409 and "terminated by other getUpdates request" in body["description"]
    await api.push_message(8, "for the survivor")
    _, survivor = await asyncio.wait_for(second, 8)
    assert [u["message"]["text"] for u in survivor["result"]] == ["for the survivor"]


async def test_pushed_message_is_shaped_like_telegram(api: TelegramApiStandIn) -> None:
    first = await api.push_message(
        99, "/start@tscc_helpdesk_bot hi", user={"first_name": "Айгерим", "language_code": "ru"}
    )
    second = await api.push_message(99, "Привет @tscc_helpdesk_bot")
    message = first["message"]
    assert message["from"] == {
        "id": 99,
        "is_bot": False,
        "first_name": "Айгерим",
        "last_name": "User",
        "username": "user99",
        "language_code": "ru",
    }
    assert message["chat"]["type"] == "private" and message["chat"]["id"] == 99
    assert message["entities"] == [{"type": "bot_command", "offset": 0, "length": 24}]
    assert second["message"]["entities"] == [{"type": "mention", "offset": 7, "length": 18}]
    assert second["message"]["message_id"] == message["message_id"] + 1
    assert second["update_id"] == first["update_id"] + 1
    Update.de_json(first, None)  # PTB accepts the shape


async def test_fail_next_queues_errors_per_method(bot: Bot, api: TelegramApiStandIn) -> None:
    api.fail_next("sendMessage", 429, "Too Many Requests: retry after 3", retry_after=3)
    api.fail_next("sendMessage", 403, "Forbidden: bot was blocked by the user")
    api.fail_next("sendMessage", 500, times=2)
    with pytest.raises(RetryAfter) as flood:
        await bot.send_message(1, "a")
    assert "retry after 3" in api.calls_to("sendMessage")[0].result
    assert "Retry in 3" in str(flood.value)
    with pytest.raises(Forbidden):
        await bot.send_message(1, "a")
    for _ in range(2):
        with pytest.raises(NetworkError):
            await bot.send_message(1, "a")
    await bot.send_message(1, "finally")
    assert [c.ok for c in api.calls_to("sendMessage")] == [False, False, False, False, True]
    assert [m["text"] for m in api.sent_messages(1)] == ["finally"]


async def test_message_limits_and_edits(bot: Bot, api: TelegramApiStandIn) -> None:
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(3, "x" * 4097)
    # Telegram counts UTF-16 units: 2100 emoji are 4200 units.
    with pytest.raises(BadRequest, match=r"(?i)too long"):
        await bot.send_message(3, "🌿" * 2100)
    sent = await bot.send_message(3, "card v1")
    edited = await bot.edit_message_text("card v2", chat_id=3, message_id=sent.message_id)
    assert edited.text == "card v2"  # type: ignore[union-attr]
    with pytest.raises(BadRequest, match=r"(?i)not modified"):
        await bot.edit_message_text("card v2", chat_id=3, message_id=sent.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", chat_id=3, message_id=999)
    assert api.sent_messages(3)[0]["text"] == "card v2"


async def test_blocked_chat_answers_403(bot: Bot, api: TelegramApiStandIn) -> None:
    api.blocked_chats.add(13)
    with pytest.raises(Forbidden, match=r"(?i)blocked"):
        await bot.send_message(13, "hello")


async def test_files_via_get_file_and_download_route(bot: Bot, api: TelegramApiStandIn) -> None:
    api.add_file("doc-1", b"%PDF-1.4 report", "documents/report.pdf")
    api.add_file("huge", b"0" * (20 * 1024 * 1024 + 1), "documents/huge.bin")
    file = await bot.get_file("doc-1")
    assert file.file_size == 15 and file.file_path is not None
    assert bytes(await file.download_as_bytearray()) == b"%PDF-1.4 report"
    with pytest.raises(BadRequest, match=r"(?i)file is too big"):
        await bot.get_file("huge")
    with pytest.raises(BadRequest, match=r"(?i)invalid file_id"):
        await bot.get_file("nope")


async def test_commands_chat_action_close(bot: Bot, api: TelegramApiStandIn) -> None:
    assert await bot.set_my_commands([("start", "Start"), ("status", "My requests")])
    assert [c.command for c in await bot.get_my_commands()] == ["start", "status"]
    assert await bot.send_chat_action(5, "typing")
    assert api.calls_to("sendChatAction")[0].params == {"chat_id": 5, "action": "typing"}
    assert await bot.log_out() and await bot.close()


async def test_stop_is_fast_with_a_pending_long_poll(http: aiohttp.ClientSession) -> None:
    stand_in = await TelegramApiStandIn().start()
    poll = asyncio.create_task(call(http, stand_in, "getUpdates", timeout="30"))
    await stand_in.wait_for_poll()
    started = time.monotonic()
    await stand_in.stop()
    assert time.monotonic() - started < 5.0  # not the poll's 30 s, nor aiohttp's 60 s shutdown timeout
    _, body = await asyncio.wait_for(poll, 5)
    assert body == {"ok": True, "result": []}


async def test_ptb_polling_callback_query_round_trip(api: TelegramApiStandIn) -> None:
    async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer("Assigned")
        await query.edit_message_text(f"assigned ({query.data})")

    app = Application.builder().token(api.token).base_url(api.base_url).build()
    app.add_handler(CallbackQueryHandler(pressed))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(timeout=1)
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("Assign to me", callback_data="assign")]])
        card = await app.bot.send_message(-100500, "TSCC-2026-0001", reply_markup=markup)
        await api.push_callback_query(-100500, "assign", user={"id": 31337})
        edit = await api.wait_for_call("editMessageText")
        await app.updater.stop()
        await app.stop()
    answer = api.calls_to("answerCallbackQuery")[0]
    assert answer.params["text"] == "Assigned"
    assert edit.params["message_id"] == card.message_id
    assert api.sent_messages(-100500)[0]["text"] == "assigned (assign)"
    # Polling sequence as PTB performs it: bootstrap deleteWebhook before long polls, offsets confirm.
    methods = [c.method for c in api.calls]
    assert methods.index("deleteWebhook") < methods.index("getUpdates")
    assert api.pending_updates == []


async def test_webhook_delivery_with_secret_and_conflict(
    http: aiohttp.ClientSession, api: TelegramApiStandIn
) -> None:
    received: list[tuple[str | None, dict[str, Any]]] = []
    fail_first = [True]

    async def hook(request: web.Request) -> web.Response:
        if fail_first.pop() if fail_first else False:
            return web.Response(status=500)
        received.append((request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json()))
        return web.Response(text="ok")

    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    runner = web.AppRunner(receiver)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        await api.push_message(1, "stale")
        status, _ = await call(
            http,
            api,
            "setWebhook",
            url=f"http://127.0.0.1:{port}/hook",
            secret_token="s3cret",
            drop_pending_updates="true",
        )
        assert status == 200
        status, conflict = await call(http, api, "getUpdates")
        assert status == 409 and "webhook is active" in conflict["description"]
        await api.push_message(1, "fresh")
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.05)
        [(secret, update)] = received
        assert secret == "s3cret"
        assert update["message"]["text"] == "fresh"
        _, info = await call(http, api, "getWebhookInfo")
        assert info["result"]["url"] == f"http://127.0.0.1:{port}/hook"
        assert info["result"]["pending_update_count"] == 0
        # The first POST was answered 500: Telegram reports that as the last error.
        assert "500" in info["result"]["last_error_message"]
        await call(http, api, "deleteWebhook")
        await api.push_message(1, "polled")
        _, polled = await call(http, api, "getUpdates")
        assert [u["message"]["text"] for u in polled["result"]] == ["polled"]
        assert json.dumps(polled)  # plain JSON all the way
    finally:
        await runner.cleanup()
