"""The Telegram bot: a python-telegram-bot Application wired to the desk, for requesters and staff.

The bot is an adapter: a message becomes an InboundMessage handed to ``on_inbound``; the desk answers
through its outbox (acknowledgements, replies and staff cards are not sent from here). Handlers live in
``bot/requester.py`` and ``bot/staff.py``; this module builds, starts and stops the Application.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from telegram import Update
from telegram.error import InvalidToken, NetworkError, TelegramError
from telegram.ext import Application, ContextTypes, filters

from bot.logsafe import protect_token, redact
from bot.requester import InboundHandler, RequesterHandlers
from bot.staff import StaffHandlers
from bot.updates import PerChatUpdateProcessor
from helpdesk.channels import ChannelStartError

if TYPE_CHECKING:
    from helpdesk.desk import Desk

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


class TelegramStartError(ChannelStartError):
    """The bot could not start; the message names the setting to check and never contains the token."""


def file_url_for(base_url: str) -> str | None:
    """The file download URL matching a Bot API ``base_url`` (``…/bot`` → ``…/file/bot``).

    PTB would otherwise download files from api.telegram.org even when the API is elsewhere.
    """
    for suffix in ("/bot{token}", "/bot"):
        if base_url.endswith(suffix):
            return base_url[: -len(suffix)] + "/file" + suffix
    return None


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
    desk: Desk | None = None,
    staff_chat_id: int | None = None,
    staff_ids: frozenset[int] = frozenset(),
    max_concurrent_updates: int = 64,
) -> Application:  # type: ignore[type-arg]
    """A PTB Application for requesters (and, given ``desk``, for staff), talking to the Bot API at
    ``base_url`` (PTB form, token appended).

    Without ``desk`` only the adapter part runs (messages to ``on_inbound``, /start, polite refusals).
    Start it with :func:`start_polling` (or :func:`start_webhook`) and stop it with :func:`stop_application`.
    """
    protect_token(token)
    builder = (
        Application.builder()
        .token(token)
        .base_url(base_url)
        .concurrent_updates(PerChatUpdateProcessor(max_concurrent_updates))
    )
    file_url = base_file_url or file_url_for(base_url)
    if file_url is not None:
        builder = builder.base_file_url(file_url)
    app = builder.build()
    requesters = RequesterHandlers(on_inbound, desk, staff_chat_id)
    requesters.register(app)
    if desk is not None:
        StaffHandlers(desk, staff_chat_id, staff_ids).register(app)
    not_staff = ~filters.Chat(staff_chat_id) if staff_chat_id is not None else filters.ALL
    requesters.register_fallbacks(app, filters.ChatType.PRIVATE, filters.ChatType.GROUPS & not_staff)
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
    secret_token: str,
    listen: str = "127.0.0.1",
    port: int = 8443,
    url_path: str = "telegram",
    bootstrap_retries: int = 5,
    drop_pending_updates: bool = False,
) -> None:
    """Like :func:`start_polling`, but PTB's own webhook server receives the updates Telegram POSTs.

    ``secret_token`` is not optional: PTB answers 403 to a POST without it, and without one any POST
    claiming a staff user's id would act as staff.
    """
    if not secret_token:
        raise TelegramStartError("HELPDESK_TELEGRAM_WEBHOOK_SECRET is required in webhook mode")
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
