"""Bad input (issue 7, item 3): fuzzed MIME mail and Telegram updates, oversized texts, control characters,
right-to-left marks, 10,000-character subjects and zip-like attachments. Nothing crashes the service;
everything ends as a ticket (or an answer) or as a dead letter with a reason.

The hypothesis runs are bounded for CI (``HELPDESK_FUZZ_EXAMPLES`` scales them for a longer local run,
e.g. ``HELPDESK_FUZZ_EXAMPLES=20 pytest tests/test_bad_input.py`` runs twenty times as many examples).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
import os
import quopri
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from telegram import Update
from telegram.ext import TypeHandler
from telegram_harness import STAFF_CHAT, STAFF_USER, Harness, open_harness

from helpdesk.config import Settings
from helpdesk.db.models import Attachment, DeadLetter, Message, PendingChoiceMessage, Ticket
from helpdesk.desk import Desk
from helpdesk.email.intake import message_handler
from helpdesk.email.parse import EmailParseError, parse_email
from helpdesk.messages import InboundMessage
from helpdesk.service import Runtime, open_runtime

SCALE = max(1, int(os.environ.get("HELPDESK_FUZZ_EXAMPLES", "1")))
OWN = ("helpdesk@tscc.example.org",)


def examples(n: int) -> Any:
    return settings(
        max_examples=n * SCALE,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


# ------------------------------------------------------------------------------------------- strategies

CHARSETS = [
    "utf-8",
    "windows-1251",
    "koi8-r",
    "iso-8859-5",
    "us-ascii",
    "utf-16",
    "utf-7",
    "gb2312",
    "x-unknown",
    "",
    "utf-8\x00",
    "\u0430\u0431\u0432",
]
CONTENT_TYPES = [
    "text/plain",
    "text/html",
    "application/zip",
    "application/x-zip-compressed",
    "application/octet-stream",
    "message/rfc822",
    "message/delivery-status",
    "image/png",
    "text/rfc822-headers",
    "multipart/mixed",
    "bogus",
    "",
]
ENCODINGS = ["7bit", "8bit", "base64", "quoted-printable", "binary", "x-uuencode", "bogus", ""]
HEADER_NAMES = [
    "From",
    "To",
    "Cc",
    "Subject",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Date",
    "Reply-To",
    "X-Loop",
    "Auto-Submitted",
    "Precedence",
    "Return-Path",
    "List-Id",
    "MIME-Version",
    "Content-Disposition",
    "X-Failed-Recipients",
]

# Text with the awkward characters: controls, NUL, right-to-left marks and overrides, surrogate-escaped
# bytes, combining marks, Cyrillic, ticket-tag look-alikes, HTML.
AWKWARD = st.sampled_from(
    [
        "\x00",
        "\x07",
        "\x1b[31m",
        "\r",
        "\n",
        "\t",
        "\u200f",
        "\u202e",
        "\u2066",
        "\ufeff",
        "\u0301",
        "Привет",
        "[TSCC-2026-0001]",
        "TSCC-2026-9999",
        "<script>alert(1)</script>",
        "=?utf-8?B?0J/RgNC40LLQtdGC?=",
        "=?bogus?Q?=FF=FE?=",
        "=?utf-8?B?###?=",
        "<a@b>",
        "\\",
        '"',
        ";",
        ":",
        "\udcff",
    ]
)
TEXT = st.lists(st.one_of(st.text(max_size=20), AWKWARD), max_size=8).map("".join)


def header_value() -> st.SearchStrategy[bytes]:
    def encode(value: str, how: str) -> bytes:
        if how == "utf8":
            return value.encode("utf-8", "surrogatepass")
        if how == "cp1251":
            return value.encode("cp1251", "replace")
        return value.encode("ascii", "backslashreplace")

    return st.one_of(
        st.tuples(TEXT, st.sampled_from(["utf8", "cp1251", "ascii"])).map(lambda t: encode(*t)),
        st.binary(max_size=40),
        st.tuples(st.sampled_from(CHARSETS), st.sampled_from("BQbqX"), st.binary(max_size=30)).map(
            lambda t: (
                b"=?"
                + t[0].encode("utf-8", "surrogatepass")
                + b"?"
                + t[1].encode()
                + b"?"
                + base64.b64encode(t[2])
                + b"?="
            )
        ),
    )


def payload(encoding: str, data: bytes) -> bytes:
    if encoding == "base64":
        return base64.encodebytes(data)
    if encoding == "quoted-printable":
        return quopri.encodestring(data)
    return data


@st.composite
def leaf(draw: st.DrawFn) -> bytes:
    content_type = draw(st.sampled_from(CONTENT_TYPES))
    charset = draw(st.sampled_from(CHARSETS))
    encoding = draw(st.sampled_from(ENCODINGS))
    params = draw(st.sampled_from(["", f'; charset="{charset}"', f"; charset={charset}", "; name=bomb.zip"]))
    disposition = draw(
        st.sampled_from(
            [
                b"",
                b'Content-Disposition: attachment; filename="bomb.zip"\r\n',
                b"Content-Disposition: attachment; filename*=utf-8''%D0%B0%00.zip\r\n",
                b'Content-Disposition: attachment; filename="../../etc/passwd"\r\n',
                b"Content-Disposition: inline\r\n",
                b'Content-Disposition: attachment; filename="' + b"a" * 600 + b'.zip"\r\n',
            ]
        )
    )
    if draw(st.booleans()):
        data = draw(st.binary(max_size=200))
    else:
        text = draw(TEXT)
        codec = charset if charset in ("utf-8", "windows-1251", "koi8-r", "utf-16") else "utf-8"
        data = text.encode(codec, "surrogatepass") if codec == "utf-8" else text.encode(codec, "replace")
    head = (
        f"Content-Type: {content_type}{params}\r\nContent-Transfer-Encoding: {encoding}\r\n".encode(
            "utf-8", "surrogatepass"
        )
        + disposition
    )
    return head + b"\r\n" + payload(encoding, data)


def multipart(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        subtype = draw(st.sampled_from(["mixed", "alternative", "related", "report", "signed", "digest"]))
        boundary = draw(st.sampled_from(["b1", "==x==", "", "a" * 80, "b1 b2", '"quoted"', "--"]))
        parts = draw(st.lists(children, max_size=4))
        broken = draw(st.sampled_from(["ok", "no-close", "wrong", "no-param", "truncated"]))
        header = f"Content-Type: multipart/{subtype}"
        if broken != "no-param":
            header += f'; boundary="{boundary}"'
        marker = ("zz" if broken == "wrong" else boundary).encode()
        body = b"preamble\r\n"
        for part in parts:
            body += b"--" + marker + b"\r\n" + part + b"\r\n"
        if broken not in ("no-close", "truncated"):
            body += b"--" + marker + b"--\r\n"
        if broken == "truncated":
            body = body[: draw(st.integers(0, max(0, len(body))))]
        return header.encode() + b"\r\n\r\n" + body

    return build()


BODY = st.recursive(leaf(), multipart, max_leaves=6)


@st.composite
def raw_mail(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))  # not a mail at all, or barely
    headers = draw(
        st.lists(
            st.tuples(st.one_of(st.sampled_from(HEADER_NAMES), st.text(max_size=12)), header_value()),
            max_size=10,
        )
    )
    lines = [name.encode("utf-8", "surrogatepass") + b": " + value for name, value in headers]
    if draw(st.booleans()):
        lines.insert(0, b"From: Aliya <aliya@eco.gov.kz>")
    separator = draw(st.sampled_from([b"\r\n", b"\n", b"\r"]))
    return separator.join(lines) + separator + draw(BODY)


def check_inbound(inbound: InboundMessage) -> None:
    """What the desk may rely on from a parsed mail, whatever the input."""
    assert inbound.channel == "email" and inbound.channel_message_id
    assert isinstance(inbound.text, str)
    for attachment in inbound.attachments:
        assert isinstance(attachment.data, bytes) and attachment.filename


# --------------------------------------------------------------------------------------- the parser


@examples(300)
@given(raw=raw_mail(), limit=st.one_of(st.none(), st.integers(0, 300)))
def test_parser_returns_a_message_or_says_why_not(raw: bytes, limit: int | None) -> None:
    try:
        inbound = parse_email(
            raw, own_addresses=OWN, received_at=datetime.now(UTC), max_attachment_bytes=limit
        )
    except EmailParseError as exc:
        assert exc.reason
        return
    check_inbound(inbound)


@examples(150)
@given(raw=st.binary(max_size=2000))
def test_parser_on_random_bytes(raw: bytes) -> None:
    try:
        check_inbound(parse_email(raw, own_addresses=OWN))
    except EmailParseError as exc:
        assert exc.reason


# ------------------------------------------------------------------------------ mail through the intake


@pytest.fixture
async def runtime(engine: Any, database_url: str) -> AsyncIterator[Runtime]:
    settings = Settings(database_url=database_url, mail_from=OWN[0], mail_max_attachment_mb=0.001)
    async with open_runtime(settings, migrate=False) as rt:
        yield rt


async def _count(rt: Runtime, model: Any) -> int:
    async with rt.desk.sessions() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


async def _intake(rt: Runtime, raw: bytes, caplog: pytest.LogCaptureFixture) -> str:
    """Hand ``raw`` to the IMAP intake handler; returns "ticket" or "dead letter", asserting which it is."""
    handle = message_handler(rt.mail, source="fuzz")
    digest = hashlib.sha256(raw).hexdigest()
    caplog.clear()
    try:
        expected: InboundMessage | None = parse_email(raw, own_addresses=OWN)
    except EmailParseError:
        expected = None
    assert await handle(1, raw) is True  # safe: marked on the server, never blocks the mailbox
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not failures, [r.getMessage() for r in failures]
    async with rt.desk.sessions() as session:
        letter = await session.scalar(select(DeadLetter).where(DeadLetter.sha256 == digest))
    if expected is None:
        # The same bytes twice are one dead letter (attempts counted), so look it up by content.
        assert letter is not None and letter.raw == raw
        assert letter.reason.startswith("cannot parse: ") and len(letter.reason) > len("cannot parse: ")
        return "dead letter"
    assert letter is None, letter.reason
    async with rt.desk.sessions() as session:
        stored = await session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.channel_message_id == expected.channel_message_id)
        )
    assert stored, "parsed, not dead-lettered, yet no message stored"
    return "ticket"


@examples(40)
@given(raw=raw_mail())
async def test_fuzzed_mail_ends_as_ticket_or_dead_letter(
    runtime: Runtime, caplog: pytest.LogCaptureFixture, raw: bytes
) -> None:
    await _intake(runtime, raw, caplog)


def _mail(subject: str, body: str, **headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = headers.pop("sender", "Aliya <aliya@eco.gov.kz>")
    message["To"] = OWN[0]
    message["Subject"] = subject
    message["Message-ID"] = headers.pop("message_id", f"<{abs(hash((subject, body)))}@eco.gov.kz>")
    message.set_content(body)
    return message


async def test_oversized_and_awkward_mail_is_ticketed(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    awkward = "Привет\x00\x07\x1b[2J\u200f\u202eevil.exe\u202c\ufeff <b>bold</b>"
    cases = {
        "long subject": _mail("Тема " * 2000, "A request with a 10,000-character subject"),
        "1 MB body": _mail("Big body", ("Текст запроса о ООПТ. " * 50_000)[: 1024 * 1024]),
        "controls and RTL": _mail(awkward, awkward * 10),
        "sender name": _mail("x", "y", sender=f'"{"N" * 500}\x00\u202e" <{"a" * 300}@eco.gov.kz>'),
        "long message id": _mail("z", "w", message_id="<" + "m" * 2000 + "@x>"),
    }
    for name, message in cases.items():
        raw = message.as_bytes()
        assert await _intake(runtime, raw, caplog) == "ticket", name
    async with runtime.desk.sessions() as session:
        tickets = list(await session.scalars(select(Ticket)))
        bodies = list(await session.scalars(select(Message.body)))
    assert len(tickets) == len(cases)
    assert all(len(t.subject) <= 300 for t in tickets)
    assert any(len(body) > 1_000_000 for body in bodies)  # the whole body is kept
    assert not any("\x00" in body for body in bodies)  # PostgreSQL text cannot hold NUL


async def test_zip_attachments_are_stored_never_unpacked(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    # A zip bomb by name and type: 42.zip-like bytes, a nested archive name, a misleading double extension.
    bomb = b"PK\x03\x04" + b"\x00" * 26 + b"42.zip" + b"\x00" * 200
    message = _mail("Our data", "Please see the attached archives")
    message.add_attachment(bomb, maintype="application", subtype="zip", filename="42.zip")
    message.add_attachment(bomb, maintype="application", subtype="octet-stream", filename="report.pdf.zip")
    message.add_attachment(
        bomb, maintype="application", subtype="x-zip-compressed", filename="../../etc/cron.d/x.zip"
    )
    assert await _intake(runtime, message.as_bytes(), caplog) == "ticket"
    async with runtime.desk.sessions() as session:
        stored = list(await session.scalars(select(Attachment).order_by(Attachment.id)))
    assert [(a.filename, a.data) for a in stored] == [
        ("42.zip", bomb),
        ("report.pdf.zip", bomb),
        ("x.zip", bomb),
    ]
    assert {a.content_type for a in stored} == {
        "application/zip",
        "application/octet-stream",
        "application/x-zip-compressed",
    }


# ------------------------------------------------------------------------------------- Telegram updates


@dataclasses.dataclass
class Watched:
    harness: Harness
    done: set[int]
    errors: list[BaseException]


@pytest.fixture
async def watched(desk: Desk) -> AsyncIterator[Watched]:
    """The Telegram harness, told when the application has finished with each update and of any error."""
    async with open_harness(desk) as harness:
        done: set[int] = set()
        errors: list[BaseException] = []

        async def finished(update: object, context: Any) -> None:
            if isinstance(update, Update):
                done.add(update.update_id)

        async def failed(update: object, context: Any) -> None:
            errors.append(context.error)

        # Handler groups run in order, so this one runs after the bot's own handlers are through.
        harness.app.add_handler(TypeHandler(Update, finished), group=99)
        harness.app.add_error_handler(failed)
        yield Watched(harness, done, errors)


CHATS = [5601, 5602, -1005600, STAFF_CHAT]
USERS = [
    {"id": 5601, "first_name": "Aliya", "language_code": "ru"},
    {"id": 5602, "first_name": "\u202eevil\x00", "language_code": "xx-bogus"},
    {"id": 5603, "first_name": "<b>Tim</b>"},
    STAFF_USER,
]
COMMANDS = ["/start", "/lang", "/new", "/status", "/reply", "/note", "/queue", "/mine", "/ticket", "/nope"]
CALLBACK_PREFIXES = ["lang:", "party:", "pick:", "tk:", "st:", "rc:", "st:to:", "st:set:", "rc:X:", "zz:"]


@st.composite
def telegram_text(draw: st.DrawFn) -> str:
    text = draw(TEXT)
    if draw(st.integers(0, 9)) == 0:
        text += "Оч" * draw(st.integers(2000, 2600))  # over 4096 characters
    if draw(st.booleans()):
        text = (
            draw(st.sampled_from(COMMANDS)) + draw(st.sampled_from(["", " ", "@tscc_helpdesk_bot "])) + text
        )
    return storable_ish(text)


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def storable_ish(text: str) -> str:
    # Telegram sends JSON strings: lone surrogates cannot reach the bot, everything else can.
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


@st.composite
def telegram_update(draw: st.DrawFn, reference: str) -> dict[str, Any]:
    chat_id = draw(st.sampled_from(CHATS))
    user = dict(draw(st.sampled_from(USERS)))
    user.setdefault("is_bot", False)
    private = chat_id > 0
    if private:
        user["id"] = chat_id
    chat: dict[str, Any] = (
        {"id": chat_id, "type": "private", "first_name": "x"}
        if private
        else {"id": chat_id, "type": "supergroup", "title": draw(TEXT) or "g"}
    )
    kind = draw(st.sampled_from(["message", "message", "message", "edited_message", "callback_query"]))
    message: dict[str, Any] = {
        "message_id": draw(st.integers(1, 50)),
        "from": user,
        "chat": chat,
        "date": 1_760_000_000,
    }
    if kind == "callback_query":
        data = draw(st.sampled_from(CALLBACK_PREFIXES)) + draw(
            st.one_of(st.just(reference), st.text(max_size=12), st.just(f"{reference}:abc:1.2.x:t99"))
        )
        return {
            "callback_query": {
                "id": str(draw(st.integers(1, 10**9))),
                "from": user,
                "chat_instance": "ci",
                "data": data.encode()[:64].decode("utf-8", "ignore"),
                "message": {**message, "from": {"id": 1, "is_bot": True, "first_name": "bot"}, "text": "x"},
            }
        }
    content = draw(st.sampled_from(["text", "text", "caption", "sticker", "contact", "empty"]))
    if content == "text":
        text = draw(telegram_text())
        message["text"] = text or "."
        entities = []
        if text.startswith("/"):
            entities.append({"type": "bot_command", "offset": 0, "length": _utf16_length(text.split(" ")[0])})
        if draw(st.booleans()) and text:  # an entity over any part of the text, counted in UTF-16 as Telegram
            start = draw(st.integers(0, len(text) - 1))
            end = draw(st.integers(start, len(text)))
            entities.append(
                {
                    "type": draw(st.sampled_from(["mention", "bold", "text_link", "bot_command"])),
                    "offset": _utf16_length(text[:start]),
                    "length": _utf16_length(text[start:end]),
                    "url": "https://example.org",
                }
            )
        if entities:
            message["entities"] = entities
    elif content == "caption":
        message["caption"] = draw(telegram_text())
        message["document"] = {
            "file_id": "missing-file",
            "file_unique_id": "mf",
            "file_name": draw(st.sampled_from(["bomb.zip", "../../x.zip", "\u202egnp.exe", "a" * 300])),
            "mime_type": draw(st.sampled_from(["application/zip", "application/x-msdownload", "bogus"])),
        }
    elif content == "sticker":
        message["sticker"] = {
            "file_id": "s",
            "file_unique_id": "s",
            "type": "regular",
            "width": 1,
            "height": 1,
            "is_animated": False,
            "is_video": False,
        }
    elif content == "contact":
        message["contact"] = {"phone_number": "+998", "first_name": draw(TEXT) or "c"}
    if draw(st.integers(0, 3)) == 0:
        message["reply_to_message"] = {
            "message_id": draw(st.integers(1, 50)),
            "from": draw(st.sampled_from([{"id": 1, "is_bot": True, "first_name": "bot"}, user])),
            "chat": chat,
            "date": 1_760_000_000,
            "text": draw(st.sampled_from([reference, f"{reference} card", "hello"])),
        }
    return {kind: message}


async def _handled(watched: Watched, update: dict[str, Any]) -> None:
    """Push ``update``; the application must finish with it without error, and a requester's message in a
    private chat must be ticketed, answered, or held with the "which ticket?" question already asked in that
    chat (helpdesk/usecases/followup_question.py: asked → another message → held, the question above it)."""
    harness, api = watched.harness, watched.harness.api
    calls = len(api.calls)
    watched.errors.clear()
    pushed = await api.push_update(update)
    await harness.until(lambda: _true(pushed["update_id"] in watched.done))
    assert not watched.errors, [f"{type(e).__name__}: {e}" for e in watched.errors]
    message = update.get("message")
    if message is not None and message["chat"]["type"] == "private":
        chat_id = message["chat"]["id"]
        answered = any(c.params.get("chat_id") == chat_id for c in api.calls[calls:])
        channel_id = f"{chat_id}:{message['message_id']}"
        async with harness.desk.sessions() as session:
            ticketed = await session.scalar(
                select(func.count()).select_from(Message).where(Message.channel_message_id == channel_id)
            )
            held = await session.scalar(
                select(func.count())
                .select_from(PendingChoiceMessage)
                .where(PendingChoiceMessage.channel_message_id == channel_id)
            )
        assert answered or ticketed or held, update
    query = update.get("callback_query")
    if query is not None:
        assert any(
            c.method == "answerCallbackQuery" and c.params.get("callback_query_id") == query["id"]
            for c in api.calls[calls:]
        ), update


async def _true(value: bool) -> bool:
    return value


@examples(30)
@given(data=st.data())
async def test_fuzzed_telegram_updates_are_ticketed_or_answered(
    watched: Watched, data: st.DataObject
) -> None:
    tickets = await watched.harness.tickets()
    reference = tickets[0].reference if tickets else "TSCC-2026-0001"
    update = data.draw(telegram_update(reference))
    await _handled(watched, update)


async def test_a_command_mark_over_blank_text_is_answered(watched: Watched) -> None:
    """Found by the fuzzer: a bot_command entity over the text "\\r" raised IndexError in the unknown-command
    answer, and the requester heard nothing."""
    for n, text in enumerate(("\r", " ", "\u2028")):
        message = _private(5790 + n, text)
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": 0}]
        await _handled(watched, {"message": message})


async def test_oversized_and_awkward_telegram_messages(watched: Watched) -> None:
    harness = watched.harness
    texts = [
        "Нужна помощь " * 600,  # 7,800 characters, over Telegram's 4,096 for the bot's own messages
        "\x07\x1b[31m control \u200f\u202e right-to-left \u2066 marks \ufeff",
        "<script>alert(1)</script> & <b>bold</b>",
        "A" * 10_000,
    ]
    for n, text in enumerate(texts):
        chat = 5700 + n
        await _handled(watched, {"message": _private(chat, text)})
    tickets = await harness.tickets()
    assert len(tickets) == len(texts)
    # Each requester gets an acknowledgement and staff get a card, however long the text was.
    for n, ticket in enumerate(sorted(tickets, key=lambda t: t.telegram_chat_id or 0)):
        await harness.sent_to(5700 + n, 1)
        card = await harness.card(ticket.reference)
        assert len(card["text"].encode("utf-16-le")) // 2 <= 4096


def _private(chat: int, text: str) -> dict[str, Any]:
    user = {"id": chat, "is_bot": False, "first_name": "Req", "language_code": "en"}
    return {
        "message_id": 1,
        "from": user,
        "chat": {"id": chat, "type": "private", "first_name": "Req"},
        "date": 1_760_000_000,
        "text": text,
    }
