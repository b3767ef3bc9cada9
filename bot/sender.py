"""Telegram delivery for the outbox: one OutboundMessage → one or more sendMessage calls."""

from __future__ import annotations

import datetime as dtm
import warnings
from typing import Any

from telegram import Bot, InlineKeyboardMarkup
from telegram.error import (
    BadRequest,
    ChatMigrated,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.warnings import PTBDeprecationWarning

from bot.application import DEFAULT_API_URL, file_url_for
from bot.inbound import telegram_message_id
from bot.logsafe import protect_token, redact
from helpdesk.delivery import DeliveryError
from helpdesk.messages import OutboundMessage

__all__ = ["MAX_MESSAGE_LENGTH", "TelegramSender", "split_text", "utf16_len"]

MAX_MESSAGE_LENGTH = 4096  # Telegram's limit, counted in UTF-16 code units


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _fitting_prefix(text: str, limit: int) -> int:
    """The longest prefix length (in code points) whose UTF-16 length is within ``limit``."""
    end = min(len(text), limit)
    while (excess := utf16_len(text[:end]) - limit) > 0:
        end -= (excess + 1) // 2 if excess > 1 else 1
    return end


def split_text(text: str, limit: int = MAX_MESSAGE_LENGTH) -> list[str]:
    """Split ``text`` into parts Telegram accepts, preferring paragraph, then line, then word boundaries."""
    parts: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        end = _fitting_prefix(rest, limit)
        window = rest[:end]
        cut = -1
        for separator in ("\n\n", "\n", " "):
            position = window.rfind(separator)
            # A boundary in the first half would leave tiny parts; cut hard instead.
            if position > end // 2:
                cut = position
                break
        if cut < 0:
            cut = end
        part = rest[:cut].rstrip()
        if part:
            parts.append(part)
        rest = rest[cut:].lstrip("\n ")
    if rest.strip():
        parts.append(rest)
    return parts or [text]


def _retry_after_seconds(exc: RetryAfter) -> float:
    # PTB 22 warns on reading retry_after (it becomes a timedelta in v23); both types are handled.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


class TelegramSender:
    """ChannelSender for Telegram: sends plain text (no parse_mode, so nothing needs escaping).

    ``OutboundMessage.recipient`` is the chat id. Optional ``extra`` keys: ``reply_to_message_id`` (int),
    ``reply_markup`` (an InlineKeyboardMarkup as Telegram JSON), ``disable_notification`` (bool),
    ``edit_message_id`` (int: edit that message instead, e.g. a staff card; posted anew if it is gone).
    Long texts are split into several messages; the markup goes on the last one, and ``send`` returns
    the last message's ``"<chat_id>:<message_id>"``.
    """

    def __init__(
        self,
        token: str,
        base_url: str = DEFAULT_API_URL,
        *,
        base_file_url: str | None = None,
        bot: Bot | None = None,
    ) -> None:
        protect_token(token)
        if bot is None:
            file_url = base_file_url or file_url_for(base_url)
            bot = Bot(token, base_url=base_url, **({"base_file_url": file_url} if file_url else {}))
        self.bot = bot
        # Parts of split messages already delivered, so that a retry after a failure in the middle does
        # not send the first parts twice (in this process; after a restart they may be repeated).
        self._delivered_parts: dict[tuple[str, str], list[str]] = {}

    @classmethod
    def from_bot(cls, bot: Bot) -> TelegramSender:
        """Share an existing Bot (e.g. ``application.bot``) and its connection pool."""
        return cls(bot.token, bot=bot)

    async def close(self) -> None:
        await self.bot.shutdown()

    async def __aenter__(self) -> TelegramSender:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def send(self, message: OutboundMessage) -> str | None:
        if message.channel != "telegram":
            raise DeliveryError(f"TelegramSender cannot send on channel {message.channel!r}", permanent=True)
        chat_id = _chat_id(message.recipient)
        if isinstance(message.extra.get("edit_message_id"), int):
            edited = await self._edit(chat_id, message.extra["edit_message_id"], message)
            if edited is not None:
                return edited
        parts = split_text(message.text)
        key = (message.recipient, message.text)
        delivered = self._delivered_parts.setdefault(key, [])
        try:
            for index in range(len(delivered), len(parts)):
                last = index == len(parts) - 1
                sent_id, chat_id = await self._send_part(chat_id, parts[index], message.extra, last=last)
                delivered.append(sent_id)
        except DeliveryError:
            if not delivered:
                self._delivered_parts.pop(key, None)
            raise
        self._delivered_parts.pop(key, None)
        return delivered[-1]

    async def _edit(self, chat_id: int | str, message_id: int, message: OutboundMessage) -> str | None:
        """Edit a message in place (a staff card); None when it is gone and must be posted again."""
        markup = message.extra.get("reply_markup")
        text = split_text(message.text)[0]
        try:
            await self.bot.edit_message_text(
                chat_id=chat_id,
                message_id=message_id,
                text=text,
                reply_markup=InlineKeyboardMarkup.de_json(markup, self.bot)
                if isinstance(markup, dict)
                else None,
            )
        except BadRequest as exc:
            reason = str(exc).lower()
            if "not modified" in reason:
                return telegram_message_id(int(chat_id), message_id)  # already showing this
            if "not found" in reason or "can't be edited" in reason:
                return None  # deleted by someone in the group: post it anew
            raise _delivery_error(exc) from exc
        except TelegramError as exc:
            raise _delivery_error(exc) from exc
        return telegram_message_id(int(chat_id), message_id)

    async def _send_part(
        self, chat_id: int | str, text: str, extra: dict[str, Any], *, last: bool
    ) -> tuple[str, int | str]:
        # Sent raw: the extras are Telegram JSON already, and of the answer only two ids are read, where
        # ``send_message`` would build the parameters as objects and parse a whole Message back (a
        # quarter of a millisecond of CPU per receipt, more than the rest of the sender's own work).
        params: dict[str, Any] = {"text": text}
        if isinstance(extra.get("reply_to_message_id"), int):
            params["reply_parameters"] = {
                "message_id": extra["reply_to_message_id"],
                "allow_sending_without_reply": True,
            }
        if last and isinstance(extra.get("reply_markup"), dict):
            params["reply_markup"] = extra["reply_markup"]
        if extra.get("disable_notification"):
            params["disable_notification"] = True
        for _attempt in range(2):
            try:
                sent = await self.bot.do_api_request(_SEND_MESSAGE, api_kwargs={"chat_id": chat_id, **params})
                return telegram_message_id(sent["chat"]["id"], sent["message_id"]), chat_id
            except ChatMigrated as exc:
                # A group became a supergroup: Telegram names the new chat; send there instead.
                chat_id = exc.new_chat_id
            except TelegramError as exc:
                raise _delivery_error(exc) from exc
        raise DeliveryError(f"chat {chat_id} keeps migrating", permanent=True)


# The Bot API's method names are case-insensitive; PTB warns when a method it wraps is called raw under
# its own spelling.
_SEND_MESSAGE = "sendmessage"


def _chat_id(recipient: str) -> int | str:
    try:
        return int(recipient)
    except ValueError:
        if recipient.startswith("@"):
            return recipient  # a public channel or group username
        raise DeliveryError(f"not a Telegram chat id: {recipient!r}", permanent=True) from None


def _delivery_error(exc: TelegramError) -> DeliveryError:
    reason = redact(str(exc))
    if isinstance(exc, RetryAfter):
        return DeliveryError(f"Telegram flood control: {reason}", retry_after=_retry_after_seconds(exc))
    if isinstance(exc, Forbidden):
        # The user blocked the bot, deleted their account, or the bot left the group: retrying cannot help.
        return DeliveryError(f"Telegram refused: {reason}", permanent=True)
    if isinstance(exc, BadRequest):
        # Chat not found, message too long, bad markup…: the same request will fail the same way.
        return DeliveryError(f"Telegram rejected the message: {reason}", permanent=True)
    if isinstance(exc, InvalidToken | EndPointNotFound):
        # (A raw call's 404 once the bot is initialised: Telegram's answer to a rejected token.)
        # A configuration problem, not this message's: keep it queued until the token is fixed.
        return DeliveryError(f"Telegram rejected the bot token: {reason}")
    if isinstance(exc, NetworkError):  # includes TimedOut and 5xx answers
        return DeliveryError(f"Telegram not reachable: {reason}")
    return DeliveryError(f"Telegram error: {reason}")
