"""Bad input (issue 7, item 3): fuzzed MIME mail and Telegram updates, oversized texts, control characters,
right-to-left marks, 10,000-character subjects and zip-like attachments. Nothing crashes the service;
everything ends as a ticket (or an answer) or as a dead letter with a reason.

The hypothesis runs are bounded for CI (``HELPDESK_FUZZ_EXAMPLES`` scales them for a longer local run,
e.g. ``HELPDESK_FUZZ_EXAMPLES=20 pytest tests/test_bad_input.py`` runs twenty times as many examples).
"""

from __future__ import annotations

import base64
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

from helpdesk.config import Settings
from helpdesk.db.models import Attachment, DeadLetter, Message, Ticket
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
    handle = message_handler(rt, source="fuzz")
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
