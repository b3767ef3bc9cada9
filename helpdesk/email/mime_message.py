"""Channel-agnostic ``OutboundMessage`` → MIME message ready for SMTP."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address, BaseHeader
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr
from functools import lru_cache

from helpdesk.messages import OutboundMessage

# RFC 3834 values; "no" marks a message a person wrote (a staff reply), which mail clients may answer.
AUTO_SUBMITTED_VALUES = frozenset({"auto-replied", "auto-generated", "no"})

_MSGID_RE = re.compile(r"^<[^<>\s@]+@[^<>\s@]+>$")
# Generated with a 7-bit policy so that non-ASCII text is base64/quoted-printable and headers use RFC 2047:
# every relay accepts that, even one without 8BITMIME or SMTPUTF8.
_POLICY = policy.SMTP.clone(cte_type="7bit")


def mail_domain(mail_from: str) -> str:
    """The domain of the help desk address, used for our Message-IDs."""
    _, address = parseaddr(mail_from)
    if "@" not in address:
        raise ValueError(f"mail_from has no domain: {mail_from!r}")
    return address.rsplit("@", 1)[1].strip().lower()


def new_message_id(mail_from: str) -> str:
    return make_msgid(domain=mail_domain(mail_from))


def tagged_subject(subject: str | None, reference: str | None) -> str:
    """The subject with the ``[TSCC-…]`` tag present exactly once (replies keep their "Re:" in front)."""
    subject = (subject or "").strip()
    if not reference:
        return subject
    tag = f"[{reference}]"
    if tag.lower() in subject.lower():
        return subject
    return f"{tag} {subject}".strip()


def compose_email(message: OutboundMessage, *, mail_from: str) -> EmailMessage:
    """Build the email for ``message``.

    ``message.extra`` may carry ``auto_submitted`` (default "auto-replied"; "no" for a staff reply),
    ``recipient_name`` (display name for To) and ``reply_to`` (an address, e.g. a signed reply address).
    Raises ValueError for an unusable recipient, Reply-To or Message-ID.
    """
    if message.channel != "email":
        raise ValueError(f"not an email message: channel {message.channel!r}")
    own_from, own_loop = _own_headers(mail_from)
    recipient = _bare_address(message.recipient)
    reply_to = _bare_address(str(message.extra["reply_to"])) if message.extra.get("reply_to") else None

    auto_submitted = str(message.extra.get("auto_submitted", "auto-replied")).strip().lower()
    if auto_submitted not in AUTO_SUBMITTED_VALUES:
        raise ValueError(
            f"Auto-Submitted must be one of {sorted(AUTO_SUBMITTED_VALUES)}, got {auto_submitted!r}"
        )

    message_id = message.message_id or new_message_id(mail_from)
    if not _MSGID_RE.match(message_id):
        raise ValueError(f"malformed Message-ID: {message_id!r}")

    msg = EmailMessage(policy=_POLICY)
    msg["From"] = own_from
    msg["To"] = Address(display_name=str(message.extra.get("recipient_name") or ""), addr_spec=recipient)
    if reply_to is not None:
        msg["Reply-To"] = Address(addr_spec=reply_to)
    msg["Subject"] = tagged_subject(message.subject, message.reference)
    msg["Date"] = datetime.now(UTC)
    msg["Message-ID"] = message_id

    references = [ref for ref in message.references if ref]
    if message.in_reply_to:
        msg["In-Reply-To"] = message.in_reply_to
        # Clients thread on References; the parent must be its last entry even if the desk forgot it.
        if message.in_reply_to not in references:
            references.append(message.in_reply_to)
    if references:
        msg["References"] = " ".join(references)

    msg["Auto-Submitted"] = auto_submitted
    # Lets our own intake (and other well-behaved robots) recognise this mail if it ever comes back.
    msg["X-Loop"] = own_loop
    if message.reference:
        msg["X-TSCC-Reference"] = message.reference

    msg.set_content(message.text, charset="utf-8")
    if message.html:
        msg.add_alternative(message.html, subtype="html", charset="utf-8")
    return msg


@lru_cache(maxsize=8)
def _own_headers(mail_from: str) -> tuple[BaseHeader, BaseHeader]:
    """From and X-Loop, the same on every mail the desk sends: parsed once, not per mail (parsing an
    address header is most of composing one). Header objects are immutable, so every message shares them."""
    display_from, from_address = parseaddr(mail_from)
    if "@" not in from_address:
        raise ValueError(f"mail_from is not an address: {mail_from!r}")
    own_from = Address(display_name=display_from, addr_spec=from_address)
    return _POLICY.header_factory("From", own_from), _POLICY.header_factory("X-Loop", from_address)


def _bare_address(value: str) -> str:
    address = value.strip()
    if "@" not in address or any(ch in address for ch in "\r\n<>,;") or " " in address:
        raise ValueError(f"not a deliverable address: {value!r}")
    return address
