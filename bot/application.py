"""The requester-facing Telegram bot: a python-telegram-bot Application wired to the desk.

The bot is an adapter: a text message in a private chat becomes an InboundMessage handed to
``on_inbound``; the desk answers through its outbox (the acknowledgement is not sent from here).
The bot itself only answers what needs no ticket: /start, unknown commands, unsupported content.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from telegram import Message, Update
from telegram.error import InvalidToken, NetworkError, TelegramError
from telegram.ext import Application, CommandHandler, ContextTypes, MessageHandler, filters

from bot.inbound import inbound_from_message
from bot.logsafe import protect_token, redact
from helpdesk.language import detect_reply_language
from helpdesk.messages import InboundMessage
from helpdesk.rendering import render

__all__ = [
    "DEFAULT_API_URL",
    "InboundHandler",
    "TelegramStartError",
    "build_application",
    "file_url_for",
    "start_polling",
    "start_webhook",
    "stop_application",
]

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.telegram.org/bot"

InboundHandler = Callable[[InboundMessage], Awaitable[object]]

_PRIVATE_MESSAGE = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE


class TelegramStartError(RuntimeError):
    """The bot could not start; the message names the setting to check and never contains the token."""


def file_url_for(base_url: str) -> str | None:
    """The file download URL matching a Bot API ``base_url`` (``…/bot`` → ``…/file/bot``).

    PTB would otherwise download files from api.telegram.org even when the API is elsewhere.
    """
    for suffix in ("/bot{token}", "/bot"):
        if base_url.endswith(suffix):
            return base_url[: -len(suffix)] + "/file" + suffix
    return None


def _language(message: Message) -> str:
    """Language of the bot's own short answers: Telegram's language_code (a command or a sticker has no
    prose to detect a language from)."""
    user = message.from_user
    return detect_reply_language("", user.language_code if user else None)


def _text(template: str, message: Message, **context: object) -> str:
    return render(f"bot/{template}.{{lang}}.txt.j2", _language(message), **context).strip()


class RequesterHandlers:
    """Handlers for requesters in private chats; ``on_inbound`` is the desk's entry point."""

    def __init__(self, on_inbound: InboundHandler) -> None:
        self._on_inbound = on_inbound

    def register(self, app: Application) -> None:  # type: ignore[type-arg]
        # Order matters: within one group the first matching handler wins.
        app.add_handler(CommandHandler("start", self.start, filters=_PRIVATE_MESSAGE))
        app.add_handler(MessageHandler(_PRIVATE_MESSAGE & filters.COMMAND, self.unknown_command))
        app.add_handler(MessageHandler(_PRIVATE_MESSAGE & (filters.TEXT | filters.CAPTION), self.message))
        app.add_handler(MessageHandler(_PRIVATE_MESSAGE, self.unsupported))

    async def start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None:
            return
        name = message.from_user.first_name if message.from_user else ""
        await message.reply_text(_text("start", message, name=name))

    async def message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None:
            return
        inbound = inbound_from_message(message)
        try:
            await self._on_inbound(inbound)
        except Exception:
            # PTB has already confirmed this update to Telegram: unless the requester hears that it
            # failed, the message is lost without a trace on their side.
            log.exception("The desk failed to take Telegram message %s", inbound.channel_message_id)
            await message.reply_text(_text("failed", message))

    async def unknown_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or not message.text:
            return
        command = message.text.split()[0].split("@")[0]
        await message.reply_text(_text("unknown_command", message, command=command))

    async def unsupported(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None:
            return
        await message.reply_text(_text("unsupported", message))


async def _log_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    error = context.error
    update_id = update.update_id if isinstance(update, Update) else None
    # The record goes through bot.logsafe's redaction, and the message is redacted explicitly too so that
    # even a handler installed before protect_token() cannot print the token.
    log.error(
        "Telegram update %s failed: %s: %s",
        update_id,
        type(error).__name__,
        redact(str(error)),
        exc_info=error if isinstance(error, Exception) and not isinstance(error, NetworkError) else None,
    )


def build_application(
    token: str,
    base_url: str,
    on_inbound: InboundHandler,
    *,
    base_file_url: str | None = None,
) -> Application:  # type: ignore[type-arg]
    """A PTB Application for requesters, talking to the Bot API at ``base_url`` (PTB form, token appended).

    Start it with :func:`start_polling` (or :func:`start_webhook`) and stop it with :func:`stop_application`.
    """
    protect_token(token)
    builder = Application.builder().token(token).base_url(base_url)
    file_url = base_file_url or file_url_for(base_url)
    if file_url is not None:
        builder = builder.base_file_url(file_url)
    app = builder.build()
    RequesterHandlers(on_inbound).register(app)
    app.add_error_handler(_log_error)
    return app


async def _initialize(app: Application, retries: int) -> None:  # type: ignore[type-arg]
    """``app.initialize()`` (getMe), retried on network errors and 5xx like PTB's bootstrap retries.

    PTB's ``bootstrap_retries`` only cover deleteWebhook/setWebhook; a Bot API hiccup at getMe would
    otherwise kill the start.
    """
    attempt = 0
    delay = 0.5
    while True:
        try:
            await app.initialize()
            return
        except InvalidToken as exc:
            raise TelegramStartError(
                "HELPDESK_TELEGRAM_TOKEN was rejected by the Bot API (or HELPDESK_TELEGRAM_API_URL is not a "
                f"Bot API base URL ending in /bot): {redact(str(exc))}"
            ) from None
        except NetworkError as exc:
            attempt += 1
            if 0 <= retries < attempt:
                raise TelegramStartError(
                    f"The Bot API at HELPDESK_TELEGRAM_API_URL is not reachable: {redact(str(exc))}"
                ) from None
            log.warning("Bot API not ready (%s); retrying in %.1fs", redact(str(exc)), delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


async def start_polling(
    app: Application,  # type: ignore[type-arg]
    *,
    poll_timeout: float = 10.0,
    bootstrap_retries: int = 5,
    drop_pending_updates: bool = False,
) -> None:
    """Initialise, start and begin long polling; transient Bot API errors at start are retried.

    ``bootstrap_retries`` = -1 retries for ever. Raises TelegramStartError with a one-line reason.
    """
    await _initialize(app, bootstrap_retries)
    await app.start()
    assert app.updater is not None
    try:
        await app.updater.start_polling(
            timeout=poll_timeout,
            bootstrap_retries=bootstrap_retries,
            allowed_updates=Update.ALL_TYPES,
            drop_pending_updates=drop_pending_updates,
        )
    except TelegramError as exc:
        await stop_application(app)
        raise TelegramStartError(f"Telegram long polling did not start: {redact(str(exc))}") from None


async def start_webhook(
    app: Application,  # type: ignore[type-arg]
    *,
    webhook_url: str,
    listen: str = "127.0.0.1",
    port: int = 8443,
    url_path: str = "telegram",
    secret_token: str | None = None,
    bootstrap_retries: int = 5,
    drop_pending_updates: bool = False,
) -> None:
    """Like :func:`start_polling`, but PTB's own webhook server receives the updates Telegram POSTs."""
    await _initialize(app, bootstrap_retries)
    await app.start()
    assert app.updater is not None
    try:
        await app.updater.start_webhook(
            listen=listen,
            port=port,
            url_path=url_path,
            webhook_url=webhook_url,
            secret_token=secret_token,
            bootstrap_retries=bootstrap_retries,
            allowed_updates=Update.ALL_TYPES,
            drop_pending_updates=drop_pending_updates,
        )
    except TelegramError as exc:
        await stop_application(app)
        raise TelegramStartError(f"Telegram webhook did not start: {redact(str(exc))}") from None


async def stop_application(app: Application) -> None:  # type: ignore[type-arg]
    """Stop fetching updates, let handlers in flight finish, and close the HTTP connections."""
    if app.updater is not None and app.updater.running:
        await app.updater.stop()
    if app.running:
        await app.stop()
    await app.shutdown()
