"""Channel-agnostic messages: what a channel adapter hands the desk, and what the desk asks a channel to send.

Adapters (bot/, helpdesk/email/) translate a Telegram update or a MIME message into an ``InboundMessage``
and deliver an ``OutboundMessage``; the desk never sees python-telegram-bot or aioimaplib objects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal

Channel = Literal["telegram", "email"]

# NUL cannot be stored in PostgreSQL text, and lone surrogates cannot be encoded as UTF-8 at all: whatever a
# sender manages to put in a message, the desk gets text that every database and channel can carry.
_UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """``text`` without NUL characters, lone surrogates replaced by U+FFFD."""
    if not _UNSTORABLE_RE.search(text):
        return text
    return _UNSTORABLE_RE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", text)


# The longest value the database keeps for a field (helpdesk/db/models.py); a longer one (a 10,000-character
# subject, a 500-character name) is cut with "…" rather than refused. Bodies have no limit.
_LIMITS = {
    ("Sender", "name"): 200,
    ("Sender", "email"): 320,
    ("Attachment", "filename"): 500,
    ("Attachment", "content_type"): 200,
    ("InboundMessage", "subject"): 1000,
    ("InboundMessage", "channel_message_id"): 1000,
}


def _clean_fields(instance: object) -> None:
    kind = type(instance).__name__
    for item in fields(instance):  # type: ignore[arg-type]
        value = getattr(instance, item.name)
        if isinstance(value, str):
            cleaned = storable(value)
            limit = _LIMITS.get((kind, item.name))
            if limit is not None and len(cleaned) > limit:
                cleaned = cleaned[: limit - 1] + "…"
            if cleaned is not value:
                object.__setattr__(instance, item.name, cleaned)


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes

    def __post_init__(self) -> None:
        _clean_fields(self)

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True, slots=True)
class OversizedAttachment:
    """An attachment over the size limit: not stored, but noted on the ticket and the sender told."""

    filename: str
    content_type: str
    size: int

    @property
    def readable_size(self) -> str:
        """The size as staff notes and the sender's notice show it: "1.4 MB"."""
        return f"{self.size / (1024 * 1024):.1f} MB"


@dataclass(frozen=True, slots=True)
class Sender:
    """Who wrote an inbound message, as far as the channel can tell."""

    name: str | None = None
    email: str | None = None
    telegram_user_id: int | None = None
    telegram_chat_id: int | None = None
    language: str | None = None  # a hint such as Telegram's language_code

    def __post_init__(self) -> None:
        _clean_fields(self)


Verdict = Literal["verified", "failed", "unknown"]


@dataclass(frozen=True, slots=True)
class Authenticity:
    """What the Centre's own mail server vouched for about an inbound message (email only).

    "verified": a DKIM or DMARC pass for the sender's own domain; "failed": an spf/dkim/dmarc fail without
    such a pass; "unknown": no verdict from the trusted server (or none configured, or not email).
    """

    verdict: Verdict = "unknown"
    # Domains the trusted server found a DKIM (header.d / header.i) or DMARC (header.from) pass for.
    domains: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class InboundMessage:
    channel: Channel
    # The channel's own id: an email Message-ID, or "<chat_id>:<message_id>" for Telegram. It de-duplicates.
    channel_message_id: str
    sender: Sender
    text: str
    subject: str | None = None
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    # Ids of earlier messages this one answers (email In-Reply-To + References, newest last).
    replies_to: tuple[str, ...] = ()
    received_at: datetime | None = None
    # Automatic mail (RFC 3834 and friends): stored, never acknowledged, never reopens a ticket.
    automatic: bool = False
    # The requester explicitly asked for a new ticket (e.g. Telegram /new) rather than a follow-up.
    force_new: bool = False
    # The requester chose which of their tickets this continues (Telegram buttons); checked to be theirs.
    continues: str | None = None
    # Why the message is automatic (e.g. "Auto-Submitted: auto-replied"), for staff and logs.
    automatic_reason: str | None = None
    # ``text`` without quoted history and signature (email); None when nothing was stripped.
    stripped_text: str | None = None
    # Other people the message was addressed to (email To and Cc), lower case: ticket participants.
    cc: tuple[str, ...] = ()
    # To/Cc addresses beyond the number read (helpdesk.email.parse.MAX_RECIPIENTS): not participants.
    recipients_cut: int = 0
    # Attachments over the configured size limit, left out of ``attachments``.
    oversized_attachments: tuple[OversizedAttachment, ...] = ()
    # The trusted mail server's verdict on the sender (email); channels without one leave it "unknown".
    authenticity: Authenticity = field(default_factory=Authenticity)
    # Tags of the desk's own sub-addresses the message was sent to (``helpdesk+<tag>@…``): a signed reply
    # address proves which staff member answers which ticket; the desk checks the signature.
    reply_tokens: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _clean_fields(self)

    @property
    def text_for_classification(self) -> str:
        """What the sender wrote this time: quoted history and signature removed, the original kept."""
        return self.stripped_text if self.stripped_text is not None else self.text


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One message to deliver; serialised into the outbox as JSON, so keep it plain."""

    channel: Channel
    # email address, or Telegram chat id as a string
    recipient: str
    text: str
    subject: str | None = None
    html: str | None = None
    reference: str | None = None
    # Email threading: our Message-ID for this message, and what it answers.
    message_id: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "recipient": self.recipient,
            "text": self.text,
            "subject": self.subject,
            "html": self.html,
            "reference": self.reference,
            "message_id": self.message_id,
            "in_reply_to": self.in_reply_to,
            "references": list(self.references),
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OutboundMessage:
        return cls(
            channel=data["channel"],
            recipient=data["recipient"],
            text=data["text"],
            subject=data.get("subject"),
            html=data.get("html"),
            reference=data.get("reference"),
            message_id=data.get("message_id"),
            in_reply_to=data.get("in_reply_to"),
            references=tuple(data.get("references") or ()),
            extra=dict(data.get("extra") or {}),
        )
