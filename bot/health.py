"""Telegram's part of `helpdesk health`: the bot's identity and its webhook's state."""

from __future__ import annotations

from telegram import Bot
from telegram.error import TelegramError

from bot.logsafe import protect_token, redact


async def telegram_health(token: str, base_url: str) -> tuple[bool, str]:
    protect_token(token)
    bot = Bot(token, base_url=base_url)
    try:
        async with bot:
            me = bot.bot
            info = await bot.get_webhook_info()
    except TelegramError as exc:
        return False, f"Bot API: {redact(str(exc))}"
    mode = f"webhook {info.url}" if info.url else "long polling (no webhook)"
    detail = f"@{me.username}; {mode}; {info.pending_update_count} pending updates"
    if info.last_error_message:
        detail += f"; last webhook error: {info.last_error_message}"
    return True, detail
