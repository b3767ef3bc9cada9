"""Telegram update → the desk's channel-agnostic InboundMessage."""

from __future__ import annotations

from telegram import Message, Update

from helpdesk.messages import InboundMessage, Sender


def telegram_message_id(chat_id: int, message_id: int) -> str:
    """The desk's id for a Telegram message: unique per chat, so both parts are needed."""
    return f"{chat_id}:{message_id}"


def message_text(message: Message) -> str:
    """What the requester wrote: the text, or the caption of a photo, document, video…"""
    return message.text or message.caption or ""


def inbound_from_message(message: Message) -> InboundMessage:
    user = message.from_user
    chat = message.chat
    sender = Sender(
        name=(user.full_name if user else None) or chat.effective_name,
        telegram_user_id=user.id if user else None,
        telegram_chat_id=chat.id,
        language=user.language_code if user else None,
    )
    replies_to: tuple[str, ...] = ()
    if message.reply_to_message is not None:
        replies_to = (telegram_message_id(chat.id, message.reply_to_message.message_id),)
    return InboundMessage(
        channel="telegram",
        channel_message_id=telegram_message_id(chat.id, message.message_id),
        sender=sender,
        text=message_text(message),
        replies_to=replies_to,
        received_at=message.date,
    )


def inbound_from_update(update: Update) -> InboundMessage | None:
    """The InboundMessage for an update carrying a new message; None for anything else."""
    if update.message is None:
        return None
    return inbound_from_message(update.message)
