"""Channel-agnostic ``OutboundMessage`` → the MIME mail SMTP sends, as bytes.

The wire form is written here directly rather than built as an ``EmailMessage`` and flattened: the stdlib
package parses and refolds every header it is given, which was most of a receipt's cost in this process.
What it would produce is kept: 7-bit only (every relay accepts it, even one without 8BITMIME or SMTPUTF8),
non-ASCII header text as RFC 2047 encoded words, lines folded at 76, text parts
in UTF-8 (7bit when plain ASCII with short lines, else base64), CRLF line ends. ``compose_email`` parses
that output back for tests and callers that want header objects.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, make_msgid, parseaddr
from functools import lru_cache

from helpdesk.messages import OutboundMessage

# RFC 3834 values; "no" marks a message a person wrote (a staff reply), which mail clients may answer.
AUTO_SUBMITTED_VALUES = frozenset({"auto-replied", "auto-generated", "no"})

_MSGID_RE = re.compile(r"^<[^<>\s@]+@[^<>\s@]+>$")
_POLICY = policy.SMTP.clone(cte_type="7bit")
# RFC 2047 keeps a line holding an encoded word within 76 characters; every header here keeps to that.
_LINE = 76
# Words of RFC 5322 atext, one space apart: a display name of this form goes unquoted.
_PLAIN_PHRASE = re.compile(r"^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+( [A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*$")
_PRINTABLE_ASCII = re.compile(r"^[\x20-\x7e]*$")
# 39 bytes of UTF-8 make 52 characters of base64, a 64-character encoded word: with "Subject: " in front
# the first line still fits in 76 (words are cut between characters, never inside one).
_WORD_BYTES = 39


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


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    message_id: str
    # The SMTP envelope: our address, and the recipient's as written in To.
    envelope_from: str
    recipient: str
    data: bytes


def render_email(message: OutboundMessage, *, mail_from: str) -> RenderedEmail:
    """The mail for ``message`` as it goes on the wire.

    ``message.extra`` may carry ``auto_submitted`` (default "auto-replied"; "no" for a staff reply),
    ``recipient_name`` (display name for To) and ``reply_to`` (an address, e.g. a signed reply address).
    Raises ValueError for an unusable recipient, Reply-To, Message-ID or header text.
    """
    if message.channel != "email":
        raise ValueError(f"not an email message: channel {message.channel!r}")
    own_from, own_address = _own_headers(mail_from)
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

    lines = [own_from, _address_header("To", str(message.extra.get("recipient_name") or ""), recipient)]
    if reply_to is not None:
        lines.append(f"Reply-To: {reply_to}")
    lines.append(_unstructured("Subject", tagged_subject(message.subject, message.reference)))
    lines.append(f"Date: {format_datetime(datetime.now(UTC))}")
    lines.append(f"Message-ID: {message_id}")

    references = [ref for ref in message.references if ref]
    if message.in_reply_to:
        lines.append(_ids("In-Reply-To", [message.in_reply_to]))
        # Clients thread on References; the parent must be its last entry even if the desk forgot it.
        if message.in_reply_to not in references:
            references.append(message.in_reply_to)
    if references:
        lines.append(_ids("References", references))

    lines.append(f"Auto-Submitted: {auto_submitted}")
    # Lets our own intake (and other well-behaved robots) recognise this mail if it ever comes back.
    lines.append(f"X-Loop: {own_address}")
    if message.reference:
        lines.append(_unstructured("X-TSCC-Reference", message.reference))
    lines.append("MIME-Version: 1.0")

    text = _text_part("plain", message.text)
    if not message.html:
        body = "\r\n".join((*lines, *text))
    else:
        html = _text_part("html", message.html)
        boundary = _boundary(text, html)
        body = "\r\n".join(
            (
                *lines,
                "Content-Type: multipart/alternative;",
                f' boundary="{boundary}"',
                "",
                f"--{boundary}",
                *text,
                f"--{boundary}",
                *html,
                f"--{boundary}--",
                "",
            )
        )
    return RenderedEmail(message_id, own_address, recipient, body.encode("ascii"))


def compose_email(message: OutboundMessage, *, mail_from: str) -> EmailMessage:
    """``render_email``'s mail read back as an ``EmailMessage`` (header objects, parts)."""
    rendered = render_email(message, mail_from=mail_from)
    parsed = BytesParser(_class=EmailMessage, policy=_POLICY).parsebytes(rendered.data)
    assert isinstance(parsed, EmailMessage)
    return parsed


@lru_cache(maxsize=8)
def _own_headers(mail_from: str) -> tuple[str, str]:
    """From and the bare address (X-Loop, the envelope), the same on every mail the desk sends."""
    display_from, from_address = parseaddr(mail_from)
    if "@" not in from_address:
        raise ValueError(f"mail_from is not an address: {mail_from!r}")
    return _address_header("From", display_from, _bare_address(from_address)), _bare_address(from_address)


def _bare_address(value: str) -> str:
    """An addr-spec fit for a header and the envelope: ASCII (a non-ASCII domain in its IDNA form)."""
    address = value.strip()
    if "@" not in address or any(ch in address for ch in '\r\n<>,;"()\\') or " " in address:
        raise ValueError(f"not a deliverable address: {value!r}")
    local, _, domain = address.rpartition("@")
    if not local or not domain or not local.isascii():
        raise ValueError(f"not a deliverable address: {value!r}")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValueError(f"not a deliverable address: {value!r}") from exc
    if not _PRINTABLE_ASCII.match(local):
        raise ValueError(f"not a deliverable address: {value!r}")
    return f"{local}@{domain}"


def _address_header(name: str, display_name: str, address: str) -> str:
    display_name = _one_line(name, display_name).strip()
    if not display_name:
        return f"{name}: {address}"
    if display_name.isascii() and _PRINTABLE_ASCII.match(display_name) and "=?" not in display_name:
        if _PLAIN_PHRASE.match(display_name):
            phrase = display_name
        else:
            phrase = '"' + display_name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return _fold(f"{name}: {phrase} <{address}>")
    # Word by word: the stdlib's reader (our own intake's) puts a space between adjacent encoded words
    # of a phrase, so they are cut where the name has its spaces.
    words = [word for part in display_name.split() for word in _encoded_words(part)]
    return _fold_words(f"{name}:", [*words, f"<{address}>"])


def _unstructured(name: str, value: str) -> str:
    value = _one_line(name, value)
    if _PRINTABLE_ASCII.match(value) and "=?" not in value and len(value) + len(name) + 2 <= 998:
        return _fold(f"{name}: {value}")
    return _fold_words(f"{name}:", _encoded_words(value))


def _ids(name: str, ids: list[str]) -> str:
    for value in ids:
        _one_line(name, value)
        if not _PRINTABLE_ASCII.match(value):
            raise ValueError(f"{name} is not printable ASCII: {value!r}")
    return _fold_words(f"{name}:", [word for value in ids for word in value.split()])


def _one_line(name: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError(f"{name} may not contain line breaks: {value!r}")
    return value


def _encoded_words(text: str) -> list[str]:
    """``text`` as UTF-8 base64 encoded words (64 characters at most), cut between characters."""
    words: list[str] = []
    chunk = bytearray()
    for char in text:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > _WORD_BYTES:
            words.append(_word(chunk))
            chunk = bytearray()
        chunk += encoded
    if chunk or not words:
        words.append(_word(chunk))
    return words


def _word(data: bytes | bytearray) -> str:
    return f"=?utf-8?b?{base64.b64encode(data).decode('ascii')}?="


def _fold(line: str) -> str:
    """Fold at spaces so lines stay within 76 characters where the text allows (a longer word stays whole)."""
    if len(line) <= _LINE:
        return line
    head, _, rest = line.partition(" ")
    return _fold_words(head, rest.split(" "), keep_empty=True)


def _fold_words(head: str, words: list[str], *, keep_empty: bool = False) -> str:
    """``head`` then ``words``, one space apart, a new line (CRLF and a space) before a word that would
    pass 76 characters."""
    out: list[str] = []
    line = head
    for word in words:
        if not word and not keep_empty:
            continue
        if len(line) + 1 + len(word) > _LINE and line.strip() and line != head:
            out.append(line)
            line = " " + word
        else:
            line = f"{line} {word}"
    out.append(line)
    return "\r\n".join(out)


def _text_part(subtype: str, text: str) -> list[str]:
    """A text part's header and body lines: 7bit when it is short-lined ASCII, else base64 of its UTF-8."""
    if not text.endswith("\n"):
        text += "\n"
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if text.isascii() and all(len(line) <= 998 for line in lines) and "\0" not in text:
        return [
            f'Content-Type: text/{subtype}; charset="utf-8"',
            "Content-Transfer-Encoding: 7bit",
            "",
            *lines,
        ]
    data = "\r\n".join(lines).encode("utf-8")
    encoded = base64.encodebytes(data).decode("ascii").split("\n")
    return [
        f'Content-Type: text/{subtype}; charset="utf-8"',
        "Content-Transfer-Encoding: base64",
        "",
        *encoded,
    ]


def _boundary(*parts: list[str]) -> str:
    """A boundary that no line of the parts begins with (base64 never holds "=_", 7bit text might)."""
    while True:
        boundary = f"=_tscc_{secrets.token_hex(12)}"
        if not any(line.startswith(f"--{boundary}") for part in parts for line in part):
            return boundary
