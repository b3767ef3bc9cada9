"""Telegram update → the desk's channel-agnostic InboundMessage (text, caption, downloaded attachments)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from telegram import Message, Update
from telegram.error import BadRequest

from helpdesk.messages import Attachment, InboundMessage, Sender

# The Bot API refuses getFile above this size: such files cannot reach the desk through a bot at all.
MAX_DOWNLOAD = 20 * 1024 * 1024


def telegram_message_id(chat_id: int, message_id: int) -> str:
    """The desk's id for a Telegram message: unique per chat, so both parts are needed."""
    return f"{chat_id}:{message_id}"


def message_text(message: Message) -> str:
    """What the requester wrote: the text, or the caption of a photo, document, video…"""
    return message.text or message.caption or ""


def without_mention(text: str, username: str | None) -> str:
    """``@our_bot please help`` → ``please help``: in a group the mention only says who is addressed."""
    if not username:
        return text
    return re.sub(rf"(?<![\w@])@{re.escape(username)}\b", "", text, flags=re.IGNORECASE).strip()


@dataclass
class Downloads:
    attachments: list[Attachment] = field(default_factory=list)
    too_big: list[str] = field(default_factory=list)


def _files(message: Message) -> list[tuple[Any, str, str]]:
    """(file object, file name, content type) for every file the message carries."""
    found: list[tuple[Any, str, str]] = []
    if message.photo:
        photo = message.photo[-1]  # Telegram lists sizes smallest first: keep the original
        found.append((photo, f"photo_{photo.file_unique_id}.jpg", "image/jpeg"))
    if message.document:
        doc = message.document
        name = doc.file_name or f"document_{doc.file_unique_id}"
        found.append((doc, name, doc.mime_type or "application/octet-stream"))
    if message.voice:
        voice = message.voice
        found.append((voice, f"voice_{voice.file_unique_id}.ogg", voice.mime_type or "audio/ogg"))
    if message.audio:
        audio = message.audio
        name = audio.file_name or f"audio_{audio.file_unique_id}.mp3"
        found.append((audio, name, audio.mime_type or "audio/mpeg"))
    if message.video:
        video = message.video
        name = video.file_name or f"video_{video.file_unique_id}.mp4"
        found.append((video, name, video.mime_type or "video/mp4"))
    if message.video_note:
        note = message.video_note
        found.append((note, f"video_note_{note.file_unique_id}.mp4", "video/mp4"))
    return found


def has_files(message: Message) -> bool:
    return bool(_files(message))


async def download_attachments(message: Message) -> Downloads:
    """Download the message's files through getFile; files over the Bot API's 20 MB limit are named instead.

    Other Bot API errors propagate: the caller tells the requester the message could not be taken.
    """
    downloads = Downloads()
    for media, name, content_type in _files(message):
        if media.file_size is not None and media.file_size > MAX_DOWNLOAD:
            downloads.too_big.append(name)
            continue
        try:
            file = await media.get_file()
        except BadRequest as exc:
            # Sizes are optional in updates; Telegram then refuses at getFile ("file is too big").
            if "too big" in str(exc).lower():
                downloads.too_big.append(name)
                continue
            raise
        data = bytes(await file.download_as_bytearray())
        downloads.attachments.append(Attachment(filename=name, content_type=content_type, data=data))
    return downloads


def inbound_from_message(
    message: Message,
    *,
    text: str | None = None,
    attachments: tuple[Attachment, ...] = (),
    force_new: bool = False,
) -> InboundMessage:
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
        text=message_text(message) if text is None else text,
        attachments=attachments,
        replies_to=replies_to,
        received_at=message.date,
        force_new=force_new,
    )


def inbound_from_update(update: Update) -> InboundMessage | None:
    """The InboundMessage for an update carrying a new message; None for anything else."""
    if update.message is None:
        return None
    return inbound_from_message(update.message)
