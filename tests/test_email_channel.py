"""The email channel end to end (issue 4): corpus parsing, threading rules, loop guard, attachments limit,
UID checkpoint, processed folder, dead letters, and a poller killed mid-batch (pymap, aiosmtpd, both DBs)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from helpdesk.config import Settings
from helpdesk.db.engine import make_sessions
from helpdesk.db.models import (
    AutoReply,
    DeadLetter,
    ImapCheckpoint,
    Message,
    OutboxItem,
    Ticket,
    TicketParticipant,
)
from helpdesk.desk import Desk
from helpdesk.email.imap_mailbox import ImapMailbox
from helpdesk.email.imap_polling import one_by_one, poll_once
from helpdesk.email.parse import parse_email
from helpdesk.email.quotes import strip_quoted
from helpdesk.service import open_runtime
from helpdesk.usecases.receive import receive
from standins.environment import standin_environment
from standins.imap_server import ImapStandIn
from standins.smtp_server import SmtpStandIn

MAIL = Path(__file__).parent / "data" / "mail"
OURS = ["helpdesk@tscc.example"]
MB = 1024 * 1024


def corpus(name: str) -> bytes:
    return (MAIL / name).read_bytes()


def parsed(name: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return parse_email(corpus(name), own_addresses=OURS, **kwargs)  # type: ignore[arg-type]


def proven_staff_reply():  # type: ignore[no-untyped-def]
    """staff_reply_by_mail.eml as delivered by the Centre's server, which found a DKIM pass for it."""
    vouched = b"Authentication-Results: mx.tscc.example; dkim=pass header.d=tscc.example\r\n"
    raw = vouched + corpus("staff_reply_by_mail.eml")
    return parse_email(raw, own_addresses=OURS, trusted_authserv_id="mx.tscc.example")


# --- parsing: quoted history, HTML, charsets, attachments ------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kept", "dropped"),
    [
        ("outlook_reply_en_header_block.eml", "METT questionnaire", "Sent: Monday"),
        ("outlook_reply_ru_otpravleno.eml", "ООПТ и Цели 3", "Отправлено:"),
        ("outlook_original_message_en.eml", "headline indicators", "Please ask the TSCC"),
        ("outlook_reply_cp1251.eml", "деградации земель", "Original Message"),
        ("gmail_reply_quoted.eml", "GBF monitoring framework", "registered as"),
        ("gmail_reply_wrapped_attribution.eml", "youth consultation report", "registered as"),
        ("gmail_reply_ru_pisal.eml", "сроки подачи", "зарегистрирован"),
        ("yandex_reply_pisal_a.eml", "Гиссарском", "восстановлению"),
        ("mailru_reply_inline_quotes.eml", "на английский", "Какие данные"),
        ("html_only_blockquote_reply.eml", "guidance in English", "registered as"),
        ("koi8r_plain.eml", "инвазивным видам", "Ала-Арча"),
        ("signature_mobile_footer.eml", "snow leopard", "iPhone"),
        ("staff_reply_by_mail.eml", "guidance on spatial planning", "We need support"),
    ],
)
def test_quoted_history_and_signature_are_stripped_for_classification(
    name: str, kept: str, dropped: str
) -> None:
    message = parsed(name)
    assert kept in message.text_for_classification
    assert dropped not in message.text_for_classification
    # The full original is what gets stored.
    assert dropped in message.text or dropped in (message.html or "")


def test_forwarded_content_is_kept_for_classification() -> None:
    message = parsed("gmail_forward_inline.eml")
    assert "invasive alien species" in message.text_for_classification


def test_strip_quoted_never_returns_nothing() -> None:
    assert strip_quoted("> only a quote\n> nothing else") == "> only a quote\n> nothing else"
    assert strip_quoted("Hello\n-- \nSig") == "Hello"


def test_html_only_mail_becomes_text_with_html2text() -> None:
    message = parsed("html_only_outlook_ru.eml")
    assert "Просим предоставить методику оценки эффективности управления ООПТ." in message.text
    assert "<" not in message.text and "MsoNormal" not in message.text
    newsletter = parsed("html_only_table_newsletter.eml")
    assert "read more" in newsletter.text and "pixel.gif" not in newsletter.text


@pytest.mark.parametrize(
    ("name", "sender_name", "subject", "phrase"),
    [
        ("cp1251_8bit_body_qp_subject.eml", "Олег Сидоренко", "Запрос о ГИС данных", "ГИС-слои"),
        ("koi8r_base64_body.eml", "Наталья Ким", "Финансирование проектов", "грантах ГЭФ"),
        ("koi8r_undeclared_8bit_header.eml", "Айдар", "Вопрос без кодировки", "базе экспертов"),
        ("iso8859_5_body.eml", "Vera", "ISO-8859-5 test", "Цели 14"),
        ("utf8_kazakh.eml", "Әсел Нұрланқызы", "Биоәртүрлілік туралы сұрақ", "Ұлттық баяндаманы"),
    ],
)
def test_cyrillic_charsets(name: str, sender_name: str, subject: str, phrase: str) -> None:
    message = parsed(name)
    assert message.sender.name == sender_name
    assert message.subject == subject
    assert phrase in message.text


@pytest.mark.parametrize(
    ("name", "phrase"),
    [
        ("broken_missing_final_boundary.eml", "wetland inventory"),
        ("broken_no_boundary_param.eml", "red list assessment"),
        ("broken_bare_lf_and_long_lines.eml", "desertification"),
        ("broken_header_garbage_date.eml", "Target 20"),
        ("smime_signed.eml", "biodiversity finance plan"),
        ("tnef_winmail.eml", "Target 11"),
    ],
)
def test_broken_and_odd_mime_still_yields_the_request(name: str, phrase: str) -> None:
    assert phrase in parsed(name).text


def test_oversized_attachment_is_left_out_and_listed() -> None:
    message = parsed("huge_attachment.eml", max_attachment_bytes=1 * MB)
    assert [a.filename for a in message.attachments] == ["summary.pdf"]
    [big] = message.oversized_attachments
    assert big.filename == "camera_traps_2025.zip" and big.size == 1_500_000
    assert len(parsed("huge_attachment.eml", max_attachment_bytes=20 * MB).attachments) == 2


@pytest.mark.parametrize(
    "name",
    [
        "dsn_bounce_of_our_ack.eml",
        "qmail_bounce_plain.eml",
        "exchange_ndr_postmaster.eml",
        "out_of_office_exchange_en.eml",
        "out_of_office_ru_x_autoreply.eml",
        "vacation_precedence_junk.eml",
        "noreply_donotreply_portal.eml",
        "google_groups_list.eml",
        "x_loop_other_helpdesk.eml",
        "html_only_table_newsletter.eml",
    ],
)
def test_loop_guard_flags_automatic_mail(name: str) -> None:
    message = parsed(name)
    assert message.automatic and message.automatic_reason


def test_bounce_threads_on_the_returned_message() -> None:
    assert parsed("dsn_bounce_of_our_ack.eml").replies_to[-1] == "<ack.TSCC-2026-0060.1@tscc.example>"


def test_no_message_id_gets_a_content_hash_id() -> None:
    for name in ("no_message_id_webform.eml", "no_message_id_russian.eml"):
        assert parsed(name).channel_message_id.startswith("<sha256:")


# --- the desk: threading, participants, staff, loop guard, limits -----------------------------------------


@pytest.fixture
def mail_desk(desk: Desk) -> Desk:
    desk.staff_emails = frozenset({"staff@tscc.example"})
    desk.mail_from = "helpdesk@tscc.example"
    return desk


# Outbox items for requesters (the staff notifications each new ticket also queues are left out).
TO_REQUESTERS = (OutboxItem.payload["recipient"].as_string() != "staff@tscc.example",)


async def _count(desk: Desk, model: type, *where: object) -> int:
    async with desk.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def _messages(desk: Desk, reference: str) -> list[Message]:
    async with desk.sessions() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.reference == reference))
        assert ticket is not None
        return list(
            await session.scalars(select(Message).where(Message.ticket_id == ticket.id).order_by(Message.id))
        )


async def test_participant_follows_up_stranger_gets_new_ticket_staff_reply_is_relayed(
    mail_desk: Desk,
) -> None:
    desk = mail_desk
    first = await receive(desk, parsed("cc_participants_request.eml"))
    assert first.created and first.reference.endswith("0001")
    assert await _count(desk, TicketParticipant) == 2

    # Saida was in Cc: her reply continues the ticket.
    followup = await receive(desk, parsed("participant_followup.eml"))
    assert (followup.created, followup.reference) == (False, first.reference)

    # A stranger quoting the reference opens a new ticket, with a visible note.
    stranger = await receive(desk, parsed("stranger_quotes_reference.eml"))
    assert stranger.created and stranger.reference != first.reference
    notes = [m.body for m in await _messages(desk, stranger.reference) if m.kind == "note"]
    assert any(f"Possible follow-up of {first.reference}" in note for note in notes)

    # Staff mail on the ticket, vouched for by the Centre's mail server, is a staff reply: relayed to the
    # requester, without the quoted history.
    outbox_before = await _count(desk, OutboxItem)
    staff = await receive(desk, proven_staff_reply())
    assert (staff.created, staff.reference) == (False, first.reference)
    async with desk.sessions() as session:
        items = list(await session.scalars(select(OutboxItem).order_by(OutboxItem.id)))
        ticket = await session.scalar(select(Ticket).where(Ticket.reference == first.reference))
    assert len(items) == outbox_before + 1
    relay = items[-1].payload
    assert relay["recipient"] == "b.umarov@ecology.uz"
    assert "guidance on spatial planning" in relay["text"] and "We need support" not in relay["text"]
    assert relay["extra"]["auto_submitted"] == "no"
    assert ticket is not None and ticket.status == "waiting" and ticket.first_response_at is not None
    # The same staff mail again is a duplicate: nothing relayed twice.
    again = await receive(desk, proven_staff_reply())
    assert again.duplicate and await _count(desk, OutboxItem) == outbox_before + 1


async def test_automatic_mail_is_stored_on_its_ticket_without_receipt_or_reopen(mail_desk: Desk) -> None:
    desk = mail_desk
    request = await receive(desk, parsed("cc_participants_request.eml"))
    async with desk.sessions.begin() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.reference == request.reference))
        assert ticket is not None
        ticket.status = "resolved"
        ack = await session.scalar(
            select(Message).where(Message.ticket_id == ticket.id, Message.kind == "outbound")
        )
        assert ack is not None and ack.channel_message_id
        ack_id = ack.channel_message_id
    outbox_before = await _count(desk, OutboxItem)
    # A bounce of our acknowledgement, from a robot that is not the requester: stored on that ticket.
    bounce = corpus("dsn_bounce_of_our_ack.eml").replace(
        b"<ack.TSCC-2026-0060.1@tscc.example>", ack_id.encode()
    )
    result = await receive(desk, parse_email(bounce, own_addresses=OURS))
    assert (result.created, result.reference, result.reopened) == (False, request.reference, False)
    for name in (
        "out_of_office_ru_x_autoreply.eml",
        "google_groups_list.eml",
        "vacation_precedence_junk.eml",
    ):
        assert (await receive(desk, parsed(name))).created
    assert await _count(desk, OutboxItem) == outbox_before  # no receipt to any of them
    async with desk.sessions() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.reference == request.reference))
    assert ticket is not None and ticket.status == "resolved"


async def test_acknowledgements_are_rate_limited_per_sender_from_the_database(mail_desk: Desk) -> None:
    desk = mail_desk
    desk.mail_ack_limit_per_hour = 3
    raw = corpus("utf8_uzbek_latin.eml")
    for n in range(5):
        inbound = parse_email(
            raw.replace(b"Message-ID: <", f"Message-ID: <n{n}.".encode()), own_addresses=OURS
        )
        assert (await receive(desk, inbound)).created
    assert await _count(desk, AutoReply, AutoReply.recipient == "shahlo@uzspa.uz") == 3
    assert await _count(desk, OutboxItem, *TO_REQUESTERS) == 3
    # Another sender is not affected; a fresh Desk object (a restart) still sees the count.
    restarted = Desk(
        sessions=desk.sessions,
        mail_from=desk.mail_from,
        mail_ack_limit_per_hour=3,
        composers=desk.composers,
    )
    await receive(restarted, parsed("utf8_kazakh.eml"))
    assert await _count(desk, OutboxItem, *TO_REQUESTERS) == 4
    inbound = parse_email(raw.replace(b"Message-ID: <", b"Message-ID: <n9."), own_addresses=OURS)
    await receive(restarted, inbound)
    assert await _count(desk, OutboxItem, *TO_REQUESTERS) == 4
    # Staff notifications of those tickets count against the staff address's own limit, not the sender's.
    assert await _count(desk, AutoReply, AutoReply.recipient == "staff@tscc.example") == 3


async def test_oversized_attachment_noted_on_ticket_and_told_inside_the_one_acknowledgement(
    mail_desk: Desk,
) -> None:
    desk = mail_desk
    result = await receive(desk, parsed("huge_attachment.eml", max_attachment_bytes=1 * MB))
    messages = await _messages(desk, result.reference)
    assert any(m.kind == "note" and "camera_traps_2025.zip" in m.body for m in messages)
    async with desk.sessions() as session:
        items = list(await session.scalars(select(OutboxItem).where(*TO_REQUESTERS).order_by(OutboxItem.id)))
    # One request, one answer: the receipt itself names the file not kept (no second mail).
    [ack] = [item.payload for item in items]
    assert f"registered as {result.reference}" in ack["text"]
    assert "camera_traps_2025.zip (1.4 MB)" in ack["text"] and "camera_traps_2025.zip" in ack["html"]
    assert ack["subject"] == f"[{result.reference}] Re: Large dataset"


async def test_a_follow_up_with_an_oversized_attachment_still_tells_its_sender(mail_desk: Desk) -> None:
    desk = mail_desk
    first = await receive(desk, parsed("huge_attachment.eml"))
    again = corpus("huge_attachment.eml").replace(
        b"Message-ID: <42a0ce80c4b0@forest.kg>",
        b"Message-ID: <again@forest.kg>\r\nIn-Reply-To: <42a0ce80c4b0@forest.kg>",
    )
    follow_up = await receive(desk, parse_email(again, own_addresses=OURS, max_attachment_bytes=1 * MB))
    assert follow_up.reference == first.reference and not follow_up.created
    async with desk.sessions() as session:
        items = list(await session.scalars(select(OutboxItem).where(*TO_REQUESTERS).order_by(OutboxItem.id)))
    # The follow-up gets no receipt of its own, only the notice, threaded under it.
    [_, notice] = [item.payload for item in items]
    assert "camera_traps_2025.zip (1.4 MB)" in notice["text"] and "registered as" not in notice["text"]
    assert notice["subject"] == f"[{first.reference}] Re: Large dataset"
    assert notice["in_reply_to"] == "<again@forest.kg>" and notice["recipient"] == "mirlan@forest.kg"


# --- intake against pymap: checkpoint, processed folder, dead letters ------------------------------------


def _env(database_url: str, imap: ImapStandIn, smtp: SmtpStandIn, **extra: str) -> dict[str, str]:
    return {
        "HELPDESK_DATABASE_URL": database_url,
        **standin_environment(imap=imap, smtp=smtp),
        "HELPDESK_MAIL_FROM": "helpdesk@tscc.example",
        "HELPDESK_STAFF_EMAILS": "staff@tscc.example",
        **extra,
    }


async def test_poll_with_dead_letters_checkpoint_and_retry(
    engine: AsyncEngine, database_url: str, imap: ImapStandIn, smtp: SmtpStandIn, workdir: Path
) -> None:
    names = ["koi8r_plain.eml", "not_an_email.bin", "html_only.eml", "no_message_id.eml"]
    uids = [await imap.append(corpus(name)) for name in names]
    settings = Settings.from_env(_env(database_url, imap, smtp))
    from helpdesk.email.intake import retry_dead_letter

    async with open_runtime(settings, migrate=False) as runtime:
        result = await runtime.poll_mail_once()
        assert (result.fetched, result.committed, result.failed) == (4, 4, 0)
        # The binary is a dead letter, safe in the database, so it is marked seen like the rest.
        assert await imap.unseen_uids() == []
        desk = runtime.desk
        [letter] = list(await _all(desk, DeadLetter))
        assert letter.raw == corpus("not_an_email.bin") and "not an email" in letter.reason
        assert letter.source_uid == uids[1]
        [checkpoint] = list(await _all(desk, ImapCheckpoint))
        assert checkpoint.last_uid == uids[-1]

        # A person reads new mail in a mail client before the desk polls: the checkpoint still finds it.
        late = await imap.append(corpus("utf8_kazakh.eml"), flags=r"(\Seen)")
        assert (await runtime.poll_mail_once()).committed == 1
        assert await _count(desk, Ticket) == 4
        assert (await _all(desk, ImapCheckpoint))[0].last_uid == late

        reference, reason = await retry_dead_letter(runtime.mail, letter.id)
        assert reference is None and reason and "not an email" in reason

    # The CLI lists and shows it (JSON), and `retry` of a fixed message resolves it.
    env = {**os.environ, **_env(database_url, imap, smtp)}
    listed = _cli(env, "mail", "dead-letters", "list", "--format", "json")
    assert [row["id"] for row in json.loads(listed.stdout)] == [letter.id]
    shown = json.loads(_cli(env, "mail", "dead-letters", "show", str(letter.id), "--format", "json").stdout)
    assert shown["reason"] == letter.reason or "not an email" in shown["reason"]
    async with make_sessions(engine).begin() as session:
        row = await session.get(DeadLetter, letter.id)
        assert row is not None
        row.raw = corpus("utf8_uzbek_latin.eml")  # stands for "the cause was fixed"
    retried = _cli(env, "mail", "dead-letters", "retry", str(letter.id))
    assert retried.returncode == 0 and "resolved: TSCC-" in retried.stdout
    assert json.loads(_cli(env, "mail", "dead-letters", "list", "--format", "json").stdout) == []


async def _all(desk: Desk, model: type) -> list:  # type: ignore[type-arg]
    async with desk.sessions() as session:
        return list(await session.scalars(select(model)))


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "helpdesk.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


async def test_processed_folder_moves_mail_after_commit(imap: ImapStandIn) -> None:
    uids = [await imap.append(corpus(name)) for name in ("koi8r_plain.eml", "html_only.eml")]
    handled: list[int] = []

    async def handle(uid: int, raw: bytes) -> bool:
        handled.append(uid)
        return uid == uids[0]  # the second one's transaction "did not commit"

    mailbox = ImapMailbox(
        imap.host, imap.port, imap.user, imap.password, tls=False, timeout=5, processed_folder="Processed"
    )
    async with mailbox:
        result = await poll_once(mailbox, one_by_one(handle))
        assert (result.committed, result.declined) == (1, 1)
    assert await imap.all_uids() == [uids[1]]  # only the uncommitted one is left in INBOX
    async with mailbox:
        assert await mailbox.waiting_uids() == [uids[1]]


# --- the poller killed in the middle of a batch ----------------------------------------------------------


async def test_poller_killed_mid_batch_loses_nothing_and_duplicates_nothing(
    engine: AsyncEngine, database_url: str, imap: ImapStandIn, smtp: SmtpStandIn, workdir: Path
) -> None:
    total = 60
    template = corpus("utf8_uzbek_latin.eml")
    for n in range(total):
        raw = template.replace(b"Message-ID: <", f"Message-ID: <kill{n}.".encode())
        raw = raw.replace(b"From: Shahlo Ergasheva <shahlo@", f"From: Sender {n} <s{n}@".encode())
        await imap.append(raw)
    env = {**os.environ, **_env(database_url, imap, smtp)}
    sessions = make_sessions(engine)

    async def inbound_count() -> int:
        async with sessions() as session:
            return int(
                await session.scalar(
                    select(func.count()).select_from(Message).where(Message.kind == "inbound")
                )
                or 0
            )

    kills = 0
    for threshold in (8, 25, 45):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "helpdesk.cli",
            "mail",
            "poll",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        # Polling the database is the point here: the kill must land while the batch is half done.
        while await inbound_count() < threshold and time.monotonic() < deadline:
            if process.returncode is not None:
                break
            await asyncio.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        await process.wait()
        kills += 1
        assert await inbound_count() < total, "the batch finished before the kill: not a mid-batch kill"
    # Restart and let it finish.
    finished = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "helpdesk.cli", "mail", "poll", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 0, finished.stderr
    async with sessions() as session:
        ids = list(await session.scalars(select(Message.channel_message_id).where(Message.kind == "inbound")))
        tickets = int(await session.scalar(select(func.count()).select_from(Ticket)) or 0)
    assert kills == 3
    assert len(ids) == total and len(set(ids)) == total  # none lost, none twice
    assert tickets == total
    assert await imap.unseen_uids() == []
