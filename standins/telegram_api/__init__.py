"""A local stand-in for the Telegram Bot API, served over real HTTP on 127.0.0.1.

The unmodified python-telegram-bot client talks to it through ``base_url``/``base_file_url``, so the
tests and ``helpdesk demo`` exercise PTB's real wire code: form-encoded (or multipart) POSTs to
``/bot<token>/<method>``, ``{"ok": ..., "result": ...}`` answers, long polling, webhooks.

Usage::

    async with TelegramApiStandIn() as api:
        app = Application.builder().token(api.token).base_url(api.base_url).build()
        ...
        await api.push_message(chat_id=42, text="Hello", user={"language_code": "ru"})
        call = await api.wait_for_call("sendMessage")

It runs in the caller's event loop. Behaviour follows the real Bot API where it matters to a client:
per-chat message ids, offsets confirm updates, 409 for getUpdates while a webhook is set, 400 for
texts over 4096 characters, "message is not modified" on identical edits, 401 for a wrong token.
Unknown methods answer 400 (not Telegram's 404, which PTB would report as an invalid token).

The package, one section per module: ``wire`` (parameters in, answers out), ``recording`` (the calls
received, waiting for them), ``updates`` (the update queue, long polling, webhook delivery), ``chats``
(users' messages and the bot's), ``files`` (getFile and downloads), ``faults`` (injected failures) and
``server`` (lifecycle, routes, the method table).
"""

from standins.telegram_api.faults import FAULT_MODES
from standins.telegram_api.files import MAX_FILE_DOWNLOAD_SIZE
from standins.telegram_api.server import DEFAULT_TOKEN, TelegramApiStandIn
from standins.telegram_api.text import MAX_MESSAGE_LENGTH, utf16_len
from standins.telegram_api.wire import ApiCall, BotApiError

__all__ = [
    "DEFAULT_TOKEN",
    "FAULT_MODES",
    "MAX_FILE_DOWNLOAD_SIZE",
    "MAX_MESSAGE_LENGTH",
    "ApiCall",
    "BotApiError",
    "TelegramApiStandIn",
    "utf16_len",
]
