"""MIME message → channel-agnostic ``InboundMessage``.

Real mail is messy: undeclared or wrong charsets, 8-bit bytes in headers, broken multipart boundaries,
missing Message-IDs. The parser prefers a best-effort result to an exception; only input that is not an
email at all raises ``EmailParseError``, so intake can keep it as a dead letter with the reason.
"""

from __future__ import annotations

import codecs
import hashlib
import html
import mimetypes
import re
from collections.abc import Collection, Iterable, Iterator
from datetime import datetime
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.utils import getaddresses, parsedate_to_datetime

import html2text

from helpdesk.email.authentication import assess, trusted_results
from helpdesk.email.quotes import strip_quoted
from helpdesk.messages import Attachment, InboundMessage, OversizedAttachment, Sender

SYNTHETIC_ID_DOMAIN = "tscc-helpdesk.invalid"
# Where the sender's address is read from, in this order (lower case, as header names compare).
SENDER_FIELDS = ("from", "sender", "reply-to", "return-path")

_MSGID_RE = re.compile(r"<[^<>\s]+>")
_SURROGATES_RE = re.compile("[\udc80-\udcff]")
_CYRILLIC_RE = re.compile("[\u0400-\u04ff]")
# A longer "Message-ID" is garbage (the column holds 1000); fall back to the content hash.
_MAX_MSGID = 900
# Hostile headers are cut before they are parsed: a To line with 100,000 addresses adds no participants.
_MAX_ADDRESS_HEADER = 16_384
_ANGLE_ADDR_RE = re.compile(r"<([^<>\s@]+@[^<>\s@]+)>")
_QUOTED_OR_COMMENT_RE = re.compile(r'"(?:[^"\\]|\\.)*"|\((?:[^()\\]|\\.)*\)')
# Tags of our own sub-addresses (signed reply addresses): a few short ones, never a long list.
_MAX_TAG = 54
_MAX_TAGS = 4
# Threading needs the newest few ids: a References of 40,000 ids must not become 40,000 query parameters
# (PostgreSQL allows 32,767) nor 1 MB copied into every receipt. Real threads reach a few dozen.
MAX_THREAD_IDS = 30
# To/Cc addresses read per message: more than a meeting's worth of participants is a list, not a
# conversation; the rest are counted (a note on the ticket says how many) but never parsed.
MAX_RECIPIENTS = 50
# Only the tail of a References field is searched for ids: room for MAX_THREAD_IDS of the longest kind.
_REFERENCES_TAIL = MAX_THREAD_IDS * (_MAX_MSGID + 100)

# Senders that are machines, by local part (RFC 3834 §2 and common practice).
_ROBOT_LOCAL_PARTS = re.compile(
    r"^(mailer-daemon|postmaster|no[-_.]?reply|do[-_.]?not[-_.]?reply|bounces?|auto[-_.]?reply)([+-].*)?$",
    re.IGNORECASE,
)
# Single-byte charsets that decode any byte string without error, so a successful decode proves nothing.
_PERMISSIVE_CHARSETS = {
    "cp1251",
    "koi8_r",
    "koi8_u",
    "latin_1",
    "iso8859_1",
    "iso8859_5",
    "cp1252",
    "cp866",
    "mac_cyrillic",
    "ascii",
}


class EmailParseError(ValueError):
    """The bytes are not an email message at all; ``reason`` says why (kept with the dead letter)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_email(
    raw: bytes,
    *,
    own_addresses: Collection[str] = (),
    received_at: datetime | None = None,
    max_attachment_bytes: int | None = None,
    trusted_authserv_id: str | None = None,
) -> InboundMessage:
    """Parse one raw RFC 5322 message.

    ``own_addresses`` are the help desk's addresses: an ``X-Loop`` naming one of them marks our own mail
    coming back. ``received_at`` defaults to the message's Date header (None when absent or unparsable).
    Attachments larger than ``max_attachment_bytes`` are left out and listed in ``oversized_attachments``.
    ``trusted_authserv_id`` names the Centre's own mail server, the only one whose Authentication-Results
    count (see ``helpdesk.email.authentication``); None: no verdict.
    """
    msg = _load(raw)
    sender = _sender(msg)
    text, html_body = _bodies(msg)
    if text is None and html_body is None and isinstance(_payload(msg), str):
        # A multipart type without a usable boundary: the body is all there is, read it as text.
        text = _part_text(msg).replace("\r\n", "\n")
    if text is None:
        text = html_to_text(html_body) if html_body is not None else ""
    if received_at is None:
        received_at = _date(msg)
    stripped = strip_quoted(text) if text else text
    kept: list[Attachment] = []
    oversized: list[OversizedAttachment] = []
    for attachment in _attachments(msg):
        if max_attachment_bytes is not None and attachment.size > max_attachment_bytes:
            oversized.append(
                OversizedAttachment(attachment.filename, attachment.content_type, attachment.size)
            )
        else:
            kept.append(attachment)
    reason = automatic_reason(msg, own_addresses=own_addresses)
    own = {address.strip().lower() for address in own_addresses}
    recipients, recipients_cut = _recipients(msg)
    tags, recipients = _reply_tags(recipients, own_addresses)
    results = trusted_results(_raw_items(msg), trusted_authserv_id)
    return InboundMessage(
        channel="email",
        channel_message_id=message_id_of(msg, raw),
        sender=sender,
        text=text,
        subject=_header_text(msg, "Subject"),
        html=html_body,
        attachments=tuple(kept),
        replies_to=_replies_to(msg) + _bounced_ids(msg),
        received_at=received_at,
        automatic=reason is not None,
        automatic_reason=reason,
        stripped_text=stripped if stripped != text.strip() else None,
        cc=tuple(a for a in recipients if a not in own and a != sender.email),
        recipients_cut=recipients_cut,
        oversized_attachments=tuple(oversized),
        authenticity=assess(results, _author(msg)),
        reply_tokens=tuple(tags),
    )


def load_message(raw: bytes) -> EmailMessage:
    """The parsed ``EmailMessage`` (for callers that need headers the ``InboundMessage`` does not carry)."""
    return _load(raw)


def message_id_of(msg: Message, raw: bytes) -> str:
    """The Message-ID, or a synthetic one derived from the content so that a re-fetch gives the same id."""
    for value in _raw_headers(msg, "Message-ID"):
        ids = [i for i in _MSGID_RE.findall(value) if len(i) <= _MAX_MSGID]
        if ids:
            return ids[0]
        token = value.strip()
        if token and " " not in token and len(token) <= _MAX_MSGID - 2:
            # Some mailers omit the angle brackets; keep the id comparable with References entries.
            return f"<{token}>"
    return f"<sha256:{_content_hash(msg, raw)}@{SYNTHETIC_ID_DOMAIN}>"


def automatic_reason(msg: Message, *, own_addresses: Collection[str] = ()) -> str | None:
    """Why a message is automatic mail (RFC 3834 and friends), or None for mail written by a person.

    The reason is a short, human-readable label so staff and logs can see why no acknowledgement went out.
    """
    auto_submitted = _first_raw(msg, "Auto-Submitted")
    if auto_submitted is not None:
        value = auto_submitted.split(";")[0].strip().lower()
        if value and value != "no":
            return f"Auto-Submitted: {value}"
    precedence = (_first_raw(msg, "Precedence") or "").strip().lower()
    if precedence in {"bulk", "junk", "list", "auto_reply"}:
        return f"Precedence: {precedence}"
    if _first_raw(msg, "List-Id") is not None:
        return "List-Id present"
    own = {address.strip().lower() for address in own_addresses if address.strip()}
    for loop in _raw_headers(msg, "X-Loop"):
        looped = {addr.lower() for _, addr in getaddresses([loop]) if addr} | {loop.strip().lower()}
        if own & looped:
            return "X-Loop: our own address"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autogenerated"):
        if _first_raw(msg, name) is not None:
            return f"{name} present"
    content_type = msg.get_content_type()
    if content_type == "multipart/report":
        return "delivery or disposition report"
    if _first_raw(msg, "X-Failed-Recipients") is not None:
        return "bounce (X-Failed-Recipients)"
    return_path = _first_raw(msg, "Return-Path")
    if return_path is not None and return_path.strip() in {"<>", ""}:
        return "null return path (bounce)"
    _, address = _from_address(msg)
    if address and _ROBOT_LOCAL_PARTS.match(address.split("@", 1)[0]):
        return f"robot sender {address}"
    return None


def html_to_text(markup: str) -> str:
    """A plain-text rendering of HTML (html2text): paragraphs, lists, quotes ("> ") and links kept as text.

    Scripts, styles and images are dropped; nothing is executed or fetched.
    """
    converter = html2text.HTML2Text()
    converter.body_width = 0  # no re-wrapping: keep the sender's lines
    converter.unicode_snob = True  # "ё", not "e"
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.ul_item_mark = "-"
    converter.single_line_break = False
    try:
        text = converter.handle(markup)
    except Exception:  # html2text is lenient; this is a last resort against odd input
        return _squeeze(re.sub(r"<[^>]*>", " ", html.unescape(markup)))
    # html2text escapes Markdown syntax (as in "1\\."); this text is for people, not a Markdown renderer.
    text = _MD_ESCAPE_RE.sub(r"\1", text)
    return _squeeze(text)


_MD_ESCAPE_RE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>])")


def decode_text(payload: bytes, charset: str | None) -> str:
    """Bytes of a text part to str, surviving undeclared, unknown and wrong charsets."""
    if not payload:
        return ""
    declared = _codec_name(charset)
    try:
        utf8 = payload.decode("utf-8")
    except UnicodeDecodeError:
        utf8 = None
    # Valid UTF-8 with non-ASCII bytes almost never happens by accident in single-byte text, so it beats
    # a declared legacy charset (mail clients that re-encode but keep the old label exist).
    if utf8 is not None and (declared is None or declared in _PERMISSIVE_CHARSETS or declared == "utf_8"):
        return utf8
    if declared is not None:
        try:
            return payload.decode(declared)
        except (UnicodeDecodeError, LookupError, ValueError):
            pass
    if utf8 is not None:
        return utf8
    return _guess_cyrillic(payload)


# --- internals -------------------------------------------------------------------------------------------


def _load(raw: bytes) -> EmailMessage:
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise EmailParseError(f"expected bytes, got {type(raw).__name__}")
    raw = bytes(raw)
    if not raw.strip():
        raise EmailParseError("empty message")
    try:
        msg = message_from_bytes(raw, policy=policy.default)
    except Exception as exc:  # the stdlib parser should not raise; if it does, say so
        raise EmailParseError(f"MIME parser failed: {exc}") from exc
    if not isinstance(msg, EmailMessage) or not msg.keys():
        raise EmailParseError("no header fields: not an email message")
    if not any(name.lower() in {"from", "sender", "return-path", "message-id", "date"} for name in msg):
        raise EmailParseError("none of From, Sender, Return-Path, Message-ID or Date: not an email message")
    return msg


def _raw_headers(msg: Message, name: str) -> list[str]:
    """Header values as str without the policy's structured parsing, which raises on some broken headers."""
    return [_fix_surrogates(value) for key, value in _raw_items(msg) if key.lower() == name.lower()]


def _raw_items(msg: Message) -> list[tuple[str, str]]:
    items = msg.raw_items() if isinstance(msg, EmailMessage) else msg.items()
    return [(key, str(value)) for key, value in items]


def _first_raw(msg: Message, name: str) -> str | None:
    values = _raw_headers(msg, name)
    return values[0] if values else None


def _header_text(msg: Message, name: str) -> str | None:
    """A header decoded from RFC 2047 (and from raw 8-bit bytes some mailers still send)."""
    raw_values = [value for key, value in _raw_items(msg) if key.lower() == name.lower()]
    if not raw_values:
        return None
    if _SURROGATES_RE.search(raw_values[0]):
        # Raw 8-bit bytes: the policy would turn them into U+FFFD, so decode them ourselves.
        return _squeeze_line(_decoded_words(_fix_surrogates(raw_values[0])))
    try:
        value = msg.get(name)
    except Exception:  # a malformed header must not lose the whole message
        value = None
    text = str(value) if value is not None else _decoded_words(raw_values[0])
    return _squeeze_line(text)


def _fix_surrogates(text: str) -> str:
    """8-bit header bytes arrive as surrogate escapes; decode them as the text they most likely are."""
    if not _SURROGATES_RE.search(text):
        return text
    data = text.encode("utf-8", "surrogateescape")
    return decode_text(data, None)


def _squeeze_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _from_address(msg: Message) -> tuple[str | None, str | None]:
    """The sender's display name (decoded) and address (see ``sender_in``)."""
    fields = _raw_items(msg)
    display, address = sender_in(
        (key, _fix_surrogates(value)) for key, value in fields if key.strip().lower() in SENDER_FIELDS
    )
    return (_display_name(display) if display is not None else None, address)


def sender_in(fields: Iterable[tuple[str, str]]) -> tuple[str | None, str | None]:
    """The sender's raw display name and lower-case address, from undecoded ``(name, value)`` header
    fields: the first From, else Sender, Reply-To, Return-Path. ``(None, None)`` when none has one.

    The address is always taken from the header as it was sent, before any RFC 2047 decoding: an encoded
    display name such as ``=?utf-8?q?Staff_=3Cstaff=40tscc=2Eexample=3E?=`` is a name, never an address.
    Intake reads the sender here, and so does the notice for mail refused before parsing.
    """
    first: dict[str, str] = {}
    for name, value in fields:
        first.setdefault(name.strip().lower(), value)
    for name in SENDER_FIELDS:
        if name in first:
            for display, address in _addresses(first[name]):
                return (display, address)
    return (None, None)


def _author(msg: Message) -> str | None:
    """The author address the trusted server's DKIM/DMARC verdict can be about, or None when there is no
    single one: exactly one From field holding exactly one mailbox, with no other angle-addr in it.

    Where the desk could read an author other than the one the server checked (a second From put on top of
    a signed mail, a mailbox-list, ``staff@x <intern@x>``, no From at all), the verdict proves nothing
    about the address the desk acts on.
    """
    values = _raw_headers(msg, "From")
    if len(values) != 1:
        return None
    pairs = _addresses(values[0])
    if len(pairs) != 1:
        return None
    address = pairs[0][1]
    bare = _QUOTED_OR_COMMENT_RE.sub(" ", values[0][:_MAX_ADDRESS_HEADER])
    if any(angle.lower() != address for angle in _ANGLE_ADDR_RE.findall(bare)):
        return None
    return address


def _addresses(raw: str) -> list[tuple[str, str]]:
    """``(raw display name, lower-case address)`` pairs of one undecoded address header, in order."""
    raw = raw[:_MAX_ADDRESS_HEADER]
    pairs: list[tuple[str, str]] = []
    for display, address in getaddresses([raw]):
        address = address.strip().lower()
        if "@" in address and len(address) <= 320 and not any(c.isspace() for c in address):
            pairs.append((display, address))
    if not pairs:
        # A broken header (an unclosed quote): the angle-bracketed address is what mail clients show.
        angle = _ANGLE_ADDR_RE.findall(raw)
        if angle and len(angle[-1]) <= 320:
            pairs.append(("", angle[-1].lower()))
    return pairs


def _display_name(raw: str) -> str | None:
    """A display name decoded from RFC 2047 only now that the address is known; one clean line."""
    return _squeeze_line(_decoded_words(raw)) or None


def _decoded_words(raw: str) -> str:
    try:
        return str(make_header(decode_header(raw)))
    except Exception:  # keep the undecoded text rather than nothing
        return raw


def _recipients(msg: Message) -> tuple[list[str], int]:
    """To and Cc addresses, lower case, in order, without duplicates, from the first ``MAX_RECIPIENTS``
    entries; and about how many entries came after those (their "@"s counted, never parsed)."""
    entries: list[str] = []
    cut = 0
    for name in ("To", "Cc"):
        for value in _raw_headers(msg, name):
            if len(entries) >= MAX_RECIPIENTS:
                cut += value.count("@")
                continue
            read, rest = _address_entries(value, MAX_RECIPIENTS - len(entries))
            entries.extend(read)
            cut += rest.count("@")
    result: dict[str, None] = {}  # ordered and de-duplicated in linear time
    for entry in entries:
        # An entry that never closes its "<" (or quote) is one entry of any number of addresses: the cap
        # counts addresses too, and what _addresses does not read of a long entry is counted as cut.
        cut += entry[_MAX_ADDRESS_HEADER:].count("@")
        # Each entry parsed undecoded: an address hidden in an encoded display name stays a name.
        for _, address in _addresses(entry):
            if address in result:
                continue
            if len(result) < MAX_RECIPIENTS:
                result[address] = None
            else:
                cut += 1
    return list(result), cut


def _address_entries(value: str, limit: int) -> tuple[list[str], str]:
    """The first ``limit`` entries of an address list (split at commas outside quotes, comments and
    angle brackets) and the unread rest. Groups ("team: a@x, b@y;") split into their members."""
    entries: list[str] = []
    start = depth = 0
    quoted = escaped = False
    for index, char in enumerate(value):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif char in "(<":
            depth += 1
        elif char in ")>":
            depth = max(0, depth - 1)
        elif char in ",;" and depth == 0:
            entry = value[start:index].strip()
            start = index + 1
            if "@" in entry:
                entries.append(entry)
                if len(entries) == limit:
                    return entries, value[start:]
    entry = value[start:].strip()
    if "@" in entry:
        entries.append(entry)
    return entries, ""


def _reply_tags(recipients: list[str], own_addresses: Collection[str]) -> tuple[list[str], list[str]]:
    """Split ``recipients`` into the tags of our own sub-addresses (``helpdesk+<tag>@…``) and the rest."""
    own: list[tuple[str, str]] = []
    for address in own_addresses:
        local, _, domain = address.strip().lower().rpartition("@")
        if local and domain:
            own.append((local + "+", domain))
    tags: list[str] = []
    others: list[str] = []
    for address in recipients:
        local, _, domain = address.rpartition("@")
        tag = next((local[len(p) :] for p, d in own if domain == d and local.startswith(p)), None)
        if tag is None:
            others.append(address)
        elif tag and len(tag) <= _MAX_TAG and tag not in tags and len(tags) < _MAX_TAGS:
            tags.append(tag)
    return tags, others


def _sender(msg: Message) -> Sender:
    name, address = _from_address(msg)
    language = _first_raw(msg, "Content-Language")
    if language:
        language = language.split(",")[0].strip().lower() or None
    return Sender(name=name, email=address, language=language)


def _date(msg: Message) -> datetime | None:
    raw = _first_raw(msg, "Date")
    if not raw:
        return None
    try:
        return parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None


def _replies_to(msg: Message) -> tuple[str, ...]:
    """Thread ids, oldest first, the direct parent last: at most ``MAX_THREAD_IDS``, the newest kept."""
    parents: list[str] = []
    for value in _raw_headers(msg, "In-Reply-To"):
        parents.extend(_MSGID_RE.findall(value))
    parents = list(dict.fromkeys(parents))[-MAX_THREAD_IDS:]
    # References lists the thread oldest first: the newest ids are at its end.
    ordered: list[str] = []
    for value in _raw_headers(msg, "References"):
        ordered.extend(_MSGID_RE.findall(value[-_REFERENCES_TAIL:]))
    # The direct parent (In-Reply-To) is the newest, so it goes last even if References lists it earlier.
    kept_parents = set(parents)
    earlier = list(dict.fromkeys(m for m in ordered if m not in kept_parents))
    room = MAX_THREAD_IDS - len(parents)
    return tuple((earlier[-room:] if room > 0 else []) + parents)


def _bounced_ids(msg: Message) -> tuple[str, ...]:
    """A delivery report's returned message (or its headers) names the mail that bounced: thread on it."""
    if msg.get_content_type() != "multipart/report":
        return ()
    for part in _leaves(msg):
        if part.get_content_type() not in {"message/rfc822", "text/rfc822-headers"}:
            continue
        data = _message_part_bytes(part) if part.get_content_maintype() == "message" else None
        if data is None:
            try:
                data = part.get_payload(decode=True) or b""
            except Exception:  # a broken part: nothing to thread on
                continue
        try:
            returned = message_from_bytes(data, policy=policy.compat32)
        except Exception:  # same
            continue
        ids = [i for value in returned.get_all("Message-ID", []) for i in _MSGID_RE.findall(str(value))]
        if ids:
            return (ids[0],)
    return ()


def _content_hash(msg: Message, raw: bytes) -> str:
    # Hash what the sender wrote, not the transport headers (Received, Delivered-To…) that differ between
    # deliveries of the same message to different mailboxes.
    digest = hashlib.sha256()
    for name in ("From", "To", "Cc", "Date", "Subject"):
        for value in _raw_headers(msg, name):
            digest.update(name.lower().encode() + b":" + _squeeze_line(value).encode("utf-8", "replace"))
            digest.update(b"\n")
    separator = re.search(rb"\r?\n\r?\n", raw)
    digest.update(raw[separator.end() :] if separator else raw)
    return digest.hexdigest()


def _is_attachment(part: Message) -> bool:
    disposition = (part.get_content_disposition() or "").lower()
    if disposition == "attachment":
        return True
    if part.get_content_maintype() == "text" and part.get_content_subtype() in {"plain", "html"}:
        # An inline text part with a file name is still a file the sender attached (e.g. notes.txt).
        return disposition == "inline" and _safe_filename(part) is not None
    return True


def _leaves(msg: Message) -> Iterator[Message]:
    """Leaf parts in order; attached messages (message/*) are leaves too, not descended into."""
    if msg.is_multipart() and msg.get_content_maintype() == "multipart":
        payload = _payload(msg)
        if isinstance(payload, list):
            for sub in payload:
                if isinstance(sub, Message):
                    yield from _leaves(sub)
        return
    yield msg


def _part_text(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # a broken transfer encoding: fall back to the raw payload
        payload = None
    if payload is None:
        raw_payload = _payload(part)
        payload = raw_payload.encode("utf-8", "surrogateescape") if isinstance(raw_payload, str) else b""
    return decode_text(payload, part.get_content_charset())


def _bodies(msg: Message) -> tuple[str | None, str | None]:
    text: str | None = None
    html_body: str | None = None
    for part in _leaves(msg):
        if part.get_content_maintype() != "text" or _is_attachment(part):
            continue
        subtype = part.get_content_subtype()
        if subtype == "plain" and text is None:
            text = _part_text(part).replace("\r\n", "\n")
        elif subtype == "html" and html_body is None:
            html_body = _part_text(part)
    return text, html_body


def _safe_filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:  # malformed parameters
        name = None
    if not name:
        return None
    name = _fix_surrogates(str(name))
    if "=?" in name:
        # Outlook puts RFC 2047 words inside the filename parameter, which RFC 2231 does not allow.
        name = _decoded_words(name)
    # Never let a sender choose a path: keep only the last component and drop control characters.
    name = re.split(r"[\\/]", name)[-1]
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).strip().strip(".")
    return name or None


def _attachments(msg: Message) -> Iterator[Attachment]:
    for index, part in enumerate(_leaves(msg), start=1):
        if part.get_content_maintype() == "text" and not _is_attachment(part):
            continue
        content_type = part.get_content_type()
        if part.get_content_maintype() == "message":
            data = _message_part_bytes(part)
            default_ext = ".eml" if content_type == "message/rfc822" else ".txt"
        else:
            try:
                data = part.get_payload(decode=True) or b""
            except Exception:  # keep what we can of a broken part
                data = b""
            default_ext = mimetypes.guess_extension(content_type) or (
                ".txt" if part.get_content_maintype() == "text" else ".bin"
            )
        filename = _safe_filename(part) or f"attachment-{index}{default_ext}"
        yield Attachment(filename=filename, content_type=content_type, data=data)


def _message_part_bytes(part: Message) -> bytes:
    payload = _payload(part)
    chunks: list[bytes] = []
    items = payload if isinstance(payload, list) else [payload]
    for item in items:
        try:
            if isinstance(item, Message):
                chunks.append(item.as_bytes(policy=policy.default.clone(linesep="\r\n")))
            elif isinstance(item, str):
                chunks.append(item.encode("utf-8", "surrogateescape"))
        except Exception:  # an unserialisable embedded message: keep the rest
            continue
    return b"\r\n".join(chunks)


def _codec_name(charset: str | None) -> str | None:
    if not charset:
        return None
    label = charset.strip().strip('"').lower()
    # Labels seen in the wild that Python does not know under these names.
    label = {"unicode-1-1-utf-8": "utf-8", "x-user-defined": "cp1252", "cp-1251": "cp1251"}.get(label, label)
    try:
        return codecs.lookup(label).name.replace("-", "_")
    except (LookupError, ValueError):  # ValueError: a label with a NUL in it
        return None


def _payload(part: Message) -> object:
    """``part.get_payload()`` that survives a charset label Python cannot even look up.

    With 8-bit bytes in the body the stdlib decodes them with the declared charset and only catches
    LookupError; a label such as ``"utf-8\\x00"`` raises ValueError. The undecoded payload is kept then.
    """
    try:
        return part.get_payload()
    except (LookupError, ValueError):
        return getattr(part, "_payload", None)


def _guess_cyrillic(payload: bytes) -> str:
    """Pick windows-1251 or KOI8-R for undeclared 8-bit text.

    Running text is mostly lower case; decoding KOI8-R bytes as windows-1251 (or the reverse) swaps the
    cases, so the candidate with more lower-case Cyrillic letters is the right one.
    """
    best: tuple[int, str] | None = None
    for codec in ("cp1251", "koi8_r"):
        candidate = payload.decode(codec, errors="replace")
        letters = _CYRILLIC_RE.findall(candidate)
        score = sum(1 for ch in letters if ch.islower()) - sum(1 for ch in letters if ch.isupper())
        if best is None or score > best[0]:
            best = (score, candidate)
    assert best is not None
    return best[1]


def _squeeze(text: str) -> str:
    lines = [re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
