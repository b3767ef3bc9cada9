"""Parsing real-world-shaped mail (tests/data/mail) into InboundMessage."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from helpdesk.email.parse import (
    EmailParseError,
    automatic_reason,
    decode_text,
    html_to_text,
    load_message,
    parse_email,
)
from helpdesk.references import REFERENCE_RE, find_reference, format_reference
from helpdesk.usecases.threading_rules import subject_reference

MAIL = Path(__file__).parent / "data" / "mail"
OURS = ["helpdesk@tscc.example"]


def corpus(name: str) -> bytes:
    return (MAIL / name).read_bytes()


def test_corpus_has_at_least_fifty_messages() -> None:
    assert len(list(MAIL.glob("*.eml"))) >= 50


@pytest.mark.parametrize("path", sorted(MAIL.glob("*.eml")), ids=lambda p: p.name)
def test_every_corpus_message_parses(path: Path) -> None:
    message = parse_email(path.read_bytes(), own_addresses=OURS)
    assert message.channel == "email"
    assert message.channel_message_id.startswith("<") and message.channel_message_id.endswith(">")
    assert message.sender.email and "@" in message.sender.email
    assert message.text.strip() or message.attachments
    # Decoding went right: no replacement characters and no undecoded RFC 2047 words anywhere visible.
    for text in (message.text, message.subject or "", message.sender.name or ""):
        assert "\ufffd" not in text and "=?" not in text
    for attachment in message.attachments:
        assert attachment.filename and "/" not in attachment.filename


def test_outlook_reply_in_windows_1251() -> None:
    message = parse_email(corpus("outlook_reply_cp1251.eml"))
    assert message.sender.name == "Айгерим Иванова"
    assert message.sender.email == "a.ivanova@minpriroda.kz"
    assert message.sender.language == "ru"
    assert message.subject == "RE: [TSCC-2026-0042] Запрос принят"
    assert subject_reference(message.subject) == "TSCC-2026-0042"
    assert message.channel_message_id == "<000001dc8a1b$4c3e2f10$e4ba8d30$@minpriroda.kz>"
    # The direct parent (In-Reply-To) is last.
    assert message.replies_to == ("<request.1@minpriroda.kz>", "<ack.TSCC-2026-0042.1@tscc.example>")
    assert message.text.startswith("Добрый день!")
    assert "методика оценки деградации земель" in message.text
    assert message.html is not None and "Спасибо за ответ" in message.html
    assert message.received_at == datetime(2026, 3, 3, 4, 12, 40, tzinfo=UTC)
    assert message.automatic is False
    assert message.attachments == ()


def test_koi8r_body_and_header() -> None:
    message = parse_email(corpus("koi8r_plain.eml"))
    assert message.sender.name == "Бакыт Асанов"
    assert message.subject == "Эксперты по инвазивным видам"
    assert "контакты экспертов по инвазивным видам" in message.text


def test_gmail_reply_keeps_quoted_history_and_threads() -> None:
    message = parse_email(corpus("gmail_reply_quoted.eml"))
    assert message.replies_to[-1] == "<ack.TSCC-2026-0043.1@tscc.example>"
    assert message.replies_to[0] == "<CAF=xyz0001@mail.gmail.com>"
    # Quote stripping is issue 4's job; the full original must be kept.
    assert "> Your request has been registered as TSCC-2026-0043." in message.text
    assert message.text.startswith("Thank you, this is very helpful.")


def test_html_only_becomes_readable_text_without_scripts() -> None:
    message = parse_email(corpus("html_only.eml"))
    assert message.html is not None
    text = message.text
    assert "Уважаемые коллеги,\nпросим помочь с подготовкой NBSAP & отчёта." in text
    assert "- Цель 3: охраняемые территории" in text
    assert "Таджикистан" in text
    assert "alert" not in text and "color: red" not in text and "Newsletter title" not in text
    assert "<" not in text


def test_missing_message_id_gets_a_stable_synthetic_one() -> None:
    raw = corpus("no_message_id.eml")
    first = parse_email(raw).channel_message_id
    assert first.startswith("<sha256:") and first.endswith("@tscc-helpdesk.invalid>")
    assert parse_email(raw).channel_message_id == first
    # The same message delivered through another relay (an extra Received header) is still the same id…
    relayed = b"Received: from relay.example by mx.example; Fri, 6 Mar 2026 10:11:00 +0400\r\n" + raw
    assert parse_email(relayed).channel_message_id == first
    # …but a different body is a different message.
    assert parse_email(raw.replace(b"toolkit", b"handbook")).channel_message_id != first


def test_rfc2231_cyrillic_attachment_name_and_bytes() -> None:
    message = parse_email(corpus("attachment_rfc2231_cyrillic.eml"))
    [attachment] = message.attachments
    assert attachment.filename == "Отчёт о деградации земель 2025.pdf"
    assert attachment.content_type == "application/pdf"
    assert attachment.data.startswith(b"%PDF-1.4") and attachment.data.endswith(b"%%EOF\n")
    assert message.text.strip() == "Прошу проверить прилагаемый доклад."


def test_outlook_rfc2047_filename_and_forwarded_message() -> None:
    message = parse_email(corpus("outlook_attachment_rfc2047_filename.eml"))
    names = [a.filename for a in message.attachments]
    assert names[0] == "Индикаторы.xlsx"
    assert message.attachments[0].data == b"PK\x03\x04fake-xlsx-bytes"
    forwarded = message.attachments[1]
    assert forwarded.content_type == "message/rfc822" and forwarded.filename.endswith(".eml")
    # The forwarded message's text is an attachment, not mixed into the body.
    assert "Исходное письмо" not in message.text
    assert parse_email(forwarded.data).channel_message_id == "<inner@example.kz>"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("out_of_office.eml", "Auto-Submitted: auto-replied"),
        ("mailer_daemon_bounce.eml", "Auto-Submitted: auto-replied"),
        ("mailing_list.eml", "Precedence: list"),
        ("x_loop_own.eml", "X-Loop: our own address"),
        ("noreply_portal.eml", "robot sender no-reply@egov.example.kz"),
    ],
)
def test_automatic_mail_is_flagged(name: str, reason: str) -> None:
    raw = corpus(name)
    assert parse_email(raw, own_addresses=OURS).automatic is True
    assert automatic_reason(load_message(raw), own_addresses=OURS) == reason


def test_x_loop_of_someone_else_is_not_ours() -> None:
    assert parse_email(corpus("x_loop_own.eml"), own_addresses=["other@desk.example"]).automatic is False


@pytest.mark.parametrize(
    "extra_headers",
    [
        b"",
        b"Auto-Submitted: no\r\n",
        b"Precedence: first-class\r\n",
    ],
)
def test_person_written_mail_is_not_automatic(extra_headers: bytes) -> None:
    raw = extra_headers + corpus("koi8r_plain.eml")
    assert parse_email(raw, own_addresses=OURS).automatic is False


def test_bounce_without_auto_submitted_is_still_detected() -> None:
    raw = corpus("mailer_daemon_bounce.eml").replace(b"Auto-Submitted: auto-replied\r\n", b"")
    raw = raw.replace(b"Return-Path: <>\r\n", b"")
    assert automatic_reason(load_message(raw)) == "delivery or disposition report"
    message = parse_email(raw)
    assert "550 5.1.1 User unknown" in message.text
    assert [a.content_type for a in message.attachments] == ["message/delivery-status", "text/rfc822-headers"]
    assert b"Final-Recipient: rfc822; nobody@ministry.example.tm" in message.attachments[0].data


def test_broken_mime_recovers_what_it_can() -> None:
    message = parse_email(corpus("broken_mime.eml"))
    assert message.channel_message_id == "<broken-1@example.az>"
    assert message.text.startswith("Hello, we need help with our national report.")
    assert [a.filename for a in message.attachments] == ["data.bin"]


@pytest.mark.parametrize(
    ("name", "subject", "phrase"),
    [
        ("undeclared_cp1251.eml", "Вопрос по Цели 14", "Как учитывать биоразнообразие"),
        ("wrong_charset.eml", "wrong charset", "Нужна помощь с финансированием"),
        ("unknown_charset.eml", "unknown charset", "Привет, это тест."),
    ],
)
def test_undeclared_wrong_and_unknown_charsets(name: str, subject: str, phrase: str) -> None:
    message = parse_email(corpus(name))
    assert message.subject == subject
    assert phrase in message.text


def test_decode_text_guesses_between_windows_1251_and_koi8r() -> None:
    sentence = "Просим помочь с национальным докладом о сохранении биоразнообразия."
    assert decode_text(sentence.encode("cp1251"), None) == sentence
    assert decode_text(sentence.encode("koi8_r"), None) == sentence
    assert decode_text(sentence.encode("utf-8"), "windows-1251") == sentence
    assert decode_text(sentence.encode("cp1251"), "utf-8") == sentence
    assert decode_text(b"", "utf-8") == ""


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b"   \r\n\r\n", "empty"),
        (bytes(range(256)) * 4, "not an email"),
        (b"just some words, no headers at all\r\n", "not an email"),
        (b"X-Random: 1\r\n\r\nbody\r\n", "not an email"),
    ],
)
def test_not_an_email_raises_a_clear_error(raw: bytes, reason: str) -> None:
    with pytest.raises(EmailParseError) as info:
        parse_email(raw)
    assert reason in info.value.reason


def test_corpus_binary_file_is_rejected() -> None:
    with pytest.raises(EmailParseError):
        parse_email(corpus("not_an_email.bin"))


def test_minimal_message_without_from_still_parses() -> None:
    message = parse_email(b"Message-ID: <lonely@example.org>\r\n\r\nhello\r\n")
    assert message.sender.email is None
    assert message.text == "hello\r\n".replace("\r\n", "\n")
    assert message.subject is None and message.received_at is None


def test_html_to_text_never_keeps_tags_or_scripts() -> None:
    text = html_to_text("<p>a&lt;b &amp; c</p><script>steal()</script><style>x{}</style><p>d<br>e</p>")
    assert text == "a<b & c\n\nd\ne"


def test_references_module() -> None:
    assert format_reference(2026, 42) == "TSCC-2026-0042"
    assert format_reference(2026, 12345) == "TSCC-2026-12345"
    assert find_reference("Re: [tscc-2026-0042] thanks") == "TSCC-2026-0042"
    assert find_reference("no reference here") is None
    assert find_reference("XTSCC-2026-0042") is None
    assert find_reference("TSCC-2026-004") is None
    assert REFERENCE_RE.fullmatch("TSCC-2026-0042")
    with pytest.raises(ValueError):
        format_reference(2026, 0)
