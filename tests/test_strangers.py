"""Strangers (issue 7, item 4): every staff command and button is refused to non-staff (enumerated from the
registered handlers, so a new one without a guard fails here); a requester sees only their own tickets; a
forged ticket tag does not join someone else's ticket; HTML from requesters is escaped in emails, cards
and reports; secrets never reach the logs."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from telegram import User
from telegram.ext import CallbackQueryHandler, CommandHandler
from telegram_harness import STAFF_CHAT, STAFF_USER, Harness, open_harness

from bot.staff import StaffHandlers, _picker, staff_name
from helpdesk.db.models import AuditEvent, Message, OutboxItem, Ticket
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage, Sender
from helpdesk.rendering import render
from helpdesk.reports import Period, build_report
from helpdesk.reports.render import render_report
from helpdesk.usecases.assign import assign
from helpdesk.usecases.cards import card_markup, staff_language
from helpdesk.usecases.receive import receive
from helpdesk.usecases.reply import reply

STRANGER = {"id": 999, "first_name": "Mallory", "username": "mallory", "language_code": "en"}
# What requesters may do; every other command and button prefix the bot registers is staff-only.
REQUESTER_COMMANDS = {"start", "lang", "new", "status"}
# A requester's own buttons, and an expert's answer to an offer (a stranger's press of either:
# tests/test_consent_buttons.py, tests/test_expert_buttons.py).
REQUESTER_PREFIXES = {"lang", "party", "pick", "tk", "cs", "ex"}


@pytest.fixture
async def harness(desk: Desk) -> AsyncIterator[Harness]:
    async with open_harness(desk) as opened:
        yield opened


# ----------------------------------------------------------------------------------- enumeration


def registered_commands(app: Any) -> set[str]:
    return {
        command
        for handlers in app.handlers.values()
        for handler in handlers
        if isinstance(handler, CommandHandler)
        for command in handler.commands
    }


def registered_prefixes(app: Any) -> set[str]:
    """Button prefixes from the CallbackQueryHandler patterns (``^(st|rc):`` → st, rc)."""
    prefixes: set[str] = set()
    for handlers in app.handlers.values():
        for handler in handlers:
            if isinstance(handler, CallbackQueryHandler) and handler.pattern is not None:
                pattern = getattr(handler.pattern, "pattern", handler.pattern)
                match = re.fullmatch(r"\^\(?([\w|]+)\)?:", str(pattern))
                assert match, f"cannot read the prefixes of button pattern {pattern!r}"
                prefixes |= set(match.group(1).split("|"))
    return prefixes


def staff_buttons(reference: str) -> set[str]:
    """Every kind of staff button: the card's for each status, the pickers, and every op ``_press`` knows."""
    data: set[str] = set()
    for status in ("new", "open", "waiting", "resolved", "closed"):
        data |= _callback_data(card_markup(reference, status))
    data |= _callback_data(_picker(reference, [3], [2], "T")) | _callback_data(
        _picker(reference, [3], [2], "C")
    )
    for op in re.findall(r'op == "(\w+)"', inspect.getsource(StaffHandlers._press)):
        data.add(f"st:{op}:{reference}:open" if op in ("set", "to") else f"st:{op}:{reference}")
    return data


def _to(chat: int) -> Any:
    return lambda call: call.params["chat_id"] == chat


def _callback_data(markup: dict[str, Any]) -> set[str]:
    return {button["callback_data"] for row in markup["inline_keyboard"] for button in row}


async def _tickets(desk: Desk) -> list[Ticket]:
    async with desk.sessions() as session:
        return list(await session.scalars(select(Ticket).order_by(Ticket.id)))


async def _state(harness: Harness) -> tuple[Any, ...]:
    async with harness.desk.sessions() as session:
        tickets = [
            (t.status, t.assignee, repr(t.classification))
            for t in await session.scalars(select(Ticket).order_by(Ticket.id))
        ]
        messages = await session.scalar(select(func.count()).select_from(Message))
        audits = list(await session.scalars(select(AuditEvent.action).where(AuditEvent.action != "refused")))
    return tickets, messages, sorted(audits)


async def _ticket_with_card(harness: Harness, chat: int = 5801) -> tuple[Ticket, dict[str, Any]]:
    await harness.api.push_message(chat, "Request on protected areas financing", user={"language_code": "en"})
    await harness.sent_to(chat, 1)
    ticket = (await harness.tickets())[-1]
    card = await harness.card(ticket.reference)

    async def carded() -> bool:
        return bool((await harness.tickets())[-1].telegram_card_message_id)

    await harness.until(carded)
    return ticket, card


async def _settled(harness: Harness) -> None:
    """Let the worker send what the desk queued (card refreshes), so before/after states compare fairly."""

    async def idle() -> bool:
        async with harness.desk.sessions() as session:
            pending = await session.scalar(
                select(func.count()).select_from(OutboxItem).where(OutboxItem.status == "pending")
            )
        return pending == 0

    await harness.until(idle)


async def test_every_staff_command_and_button_is_refused_to_strangers(harness: Harness) -> None:
    api, app = harness.api, harness.app
    commands = registered_commands(app) - REQUESTER_COMMANDS
    prefixes = registered_prefixes(app) - REQUESTER_PREFIXES
    # The enumeration sees at least what the staff module declares (a sanity check on the introspection).
    assert {"reply", "note", "queue", "mine", "ticket"} <= commands and {"st", "rc"} <= prefixes
    ticket, card = await _ticket_with_card(harness)
    ref = ticket.reference
    buttons = staff_buttons(ref)
    assert {b.split(":")[0] for b in buttons} == prefixes, "a button prefix without a known button, or back"
    await _settled(harness)
    before = await _state(harness)

    refused = 0
    for chat, chat_type in ((STAFF_CHAT, "supergroup"), (STRANGER["id"], "private")):
        for command in sorted(commands):
            calls = len(api.calls)
            await api.push_message(
                chat, f"/{command} {ref} drop the ticket", chat_type=chat_type, user=STRANGER
            )
            answer = await api.wait_for_call("sendMessage", _to(chat), since=calls)
            assert "staff" in answer.params["text"] or "сотрудник" in answer.params["text"], (command, answer)
            refused += 1
    for data in sorted(buttons):
        calls = len(api.calls)
        await api.push_callback_query(STAFF_CHAT, data, message_id=card["message_id"], user=STRANGER)
        answer = await api.wait_for_call("answerCallbackQuery", since=calls)
        assert answer.params.get("show_alert") is True and answer.params.get("text"), (data, answer.params)
        refused += 1
    # A stranger in the staff group answering a card (that would reach the requester).
    calls = len(api.calls)
    await api.push_message(
        STAFF_CHAT,
        "Your request is rejected, send your password",
        chat_type="supergroup",
        user=STRANGER,
        reply_to_message_id=card["message_id"],
    )
    await api.wait_for_call("sendMessage", _to(STAFF_CHAT), since=calls)
    refused += 1

    await _settled(harness)
    assert await _state(harness) == before
    assert len(api.sent_messages(5801)) == 1  # only the acknowledgement ever reached the requester
    assert len(await harness.audit("refused")) == refused
    print(f"refused to strangers: {len(commands)} commands x 2 chats, {len(buttons)} buttons, 1 card reply")


# ---------------------------------------------------------------------------------- staff's place

FOCAL_GROUP = -1005870  # a focal points' group the staff member is in, like the requesters
REQUEST = "Request on protected areas financing"


async def _staff_tickets(harness: Harness) -> tuple[str, str]:
    """Two tickets: one in the queue (unassigned), one assigned to the staff member (theirs)."""
    queued, _ = await _ticket_with_card(harness, 5861)
    mine, _ = await _ticket_with_card(harness, 5862)
    await assign(harness.desk, mine.reference, staff_name(User(**STAFF_USER, is_bot=False)), actor="cli:test")
    await _settled(harness)
    return queued.reference, mine.reference


async def test_staff_commands_show_tickets_only_in_staff_places(harness: Harness) -> None:
    """A staff member's /ticket, /queue and /mine: content in the staff group and in their private chat;
    in a requesters' group only a short refusal (and every other staff command and button the same)."""
    api = harness.api
    queued, mine = await _staff_tickets(harness)
    shows = {"/queue": queued, "/mine": mine, f"/ticket {queued}": REQUEST}

    for chat, chat_type in ((STAFF_CHAT, "supergroup"), (STAFF_USER["id"], "private")):
        for command, content in shows.items():
            calls = len(api.calls)
            await api.push_message(chat, command, chat_type=chat_type, user=STAFF_USER)
            answer = await api.wait_for_call("sendMessage", _to(chat), since=calls)
            assert content in answer.params["text"], (chat, command, answer.params["text"])
    await _settled(harness)
    before = await _state(harness)
    refused_before = len(await harness.audit("refused"))

    # In the focal points' group: every staff command (enumerated from the registered handlers, so a new
    # one that skips the rule fails here) and every staff button.
    commands = registered_commands(harness.app) - REQUESTER_COMMANDS
    assert {"reply", "note", "queue", "mine", "ticket"} <= commands
    await api.push_message(FOCAL_GROUP, "/start", chat_type="supergroup", chat_title="FP Kazakhstan")
    await api.wait_for_call("sendMessage", _to(FOCAL_GROUP))
    answers = []
    for command in sorted(commands):
        for args in (f" {queued} Answer typed in the wrong chat", f" {mine}", ""):
            calls = len(api.calls)
            await api.push_message(FOCAL_GROUP, f"/{command}{args}", chat_type="supergroup", user=STAFF_USER)
            answers.append((await api.wait_for_call("sendMessage", _to(FOCAL_GROUP), since=calls)).params)
    group_message = api.sent_messages(FOCAL_GROUP)[-1]["message_id"]
    for data in sorted(staff_buttons(queued)):
        calls = len(api.calls)
        await api.push_callback_query(FOCAL_GROUP, data, message_id=group_message, user=STAFF_USER)
        answer = await api.wait_for_call("answerCallbackQuery", since=calls)
        assert answer.params.get("show_alert") is True, (data, answer.params)
        answers.append(answer.params)

    wrong_place = render("bot/staff_wrong_place.{lang}.txt.j2", staff_language()).strip()
    for answer in answers:
        assert answer["text"] == wrong_place and "reply_markup" not in answer, answer
    for sent in api.sent_messages(FOCAL_GROUP):
        assert queued not in sent["text"] and mine not in sent["text"] and REQUEST not in sent["text"]
    assert not api.calls_to("editMessageReplyMarkup")  # no picker drawn on a message in the group
    await _settled(harness)
    assert await _state(harness) == before  # no reply, note, assignment or status change
    refusals = await harness.audit("refused")
    # Audited on the ticket when a reference was given (3 of each command's 3 tries name none).
    assert len(refusals) - refused_before == 2 * len(commands) + len(staff_buttons(queued))
    assert {r.detail["reason"] for r in refusals[refused_before:]} == {
        "not a staff chat: in a supergroup chat"
    }


# ------------------------------------------------------------------------------- own tickets only


async def test_a_requester_sees_and_joins_only_their_own_tickets(harness: Harness) -> None:
    api = harness.api
    alice, bob = 5811, 5812
    await api.push_message(alice, "Alice: confidential request about our NBSAP", user={"language_code": "en"})
    await harness.sent_to(alice, 1)
    [theirs] = await harness.tickets()
    ref = theirs.reference

    await api.push_message(bob, "/status", user={"language_code": "en"})
    listing = (await harness.sent_to(bob, 1))[-1]
    assert ref not in listing["text"] and "reply_markup" not in listing
    await api.push_message(bob, ref, user={"language_code": "en"})
    assert "found no request" in (await harness.sent_to(bob, 2))[-1]["text"]
    await api.push_callback_query(bob, f"tk:{ref}", message_id=listing["message_id"])
    shown = (await harness.sent_to(bob, 3))[-1]
    assert "found no request" in shown["text"] and "NBSAP" not in shown["text"]

    # A forged tag in a message opens Bob's own ticket; Alice's is untouched.
    await api.push_message(bob, f"[{ref}] Re: please add this to that request", user={"language_code": "en"})
    await harness.sent_to(bob, 4)
    tickets = await harness.tickets()
    assert len(tickets) == 2 and tickets[1].requester_id != theirs.requester_id

    # A forged choice button: Bob's own pending question, answered with Alice's reference.
    await api.push_message(bob, "/new", user={"language_code": "en"})
    await harness.sent_to(bob, 5)
    await api.push_message(bob, "Bob: second request on wetlands", user={"language_code": "en"})
    await harness.sent_to(bob, 6)
    await api.push_message(bob, "and another thing", user={"language_code": "en"})
    question = (await harness.sent_to(bob, 7))[-1]
    token = next(v for v in _callback_data(question["reply_markup"]) if v.startswith("pick:")).split(":")[1]
    await api.push_callback_query(bob, f"pick:{token}:{ref}", message_id=question["message_id"])
    await harness.sent_to(bob, 8)
    async with harness.desk.sessions() as session:
        bodies = list(
            await session.scalars(
                select(Message.body).where(Message.ticket_id == theirs.id, Message.kind == "inbound")
            )
        )
    assert bodies == ["Alice: confidential request about our NBSAP"]
    assert all(ref not in m["text"] for m in api.sent_messages(bob) if "NBSAP" in m["text"])


def _email(sender: str, subject: str, body: str, n: int) -> InboundMessage:
    return InboundMessage(
        channel="email",
        channel_message_id=f"<m{n}@example.org>",
        sender=Sender(name=sender.split("@")[0], email=sender),
        text=body,
        subject=subject,
        received_at=datetime.now(UTC),
    )


async def test_forged_tag_by_email_does_not_join(desk: Desk) -> None:
    first = await receive(desk, _email("aliya@eco.gov.kz", "PAME tools", "Need PAME tools", 1))
    forged = await receive(
        desk, _email("mallory@evil.example", f"[{first.reference}] Re: PAME tools", "Add me", 2)
    )
    assert forged.created and forged.reference != first.reference
    # Tagged by its owner it does join (the rule is ownership, not the tag).
    own = await receive(desk, _email("aliya@eco.gov.kz", f"[{first.reference}] Re: PAME tools", "More", 3))
    assert own.reference == first.reference and not own.created


# --------------------------------------------------------------------------------------- HTML


HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


async def test_html_from_requesters_is_escaped_in_emails_cards_and_reports(desk: Desk) -> None:
    desk.staff_telegram_chat_id = STAFF_CHAT
    result = await receive(desk, _email("aliya@eco.gov.kz", f"Subject {HOSTILE}", f"Body {HOSTILE}", 10))
    await reply(desk, result.reference, f"Staff quoting {HOSTILE}", actor="cli:test")
    async with desk.sessions() as session:
        items = list(await session.scalars(select(OutboxItem).order_by(OutboxItem.id)))
    emails = [i.payload for i in items if i.channel == "email"]
    assert len(emails) == 2 and all(e.get("html") for e in emails)
    for payload in emails:
        assert "<script" not in payload["html"] and "<img" not in payload["html"]
    assert any("&lt;script&gt;" in e["html"] for e in emails)  # kept, as text
    # Staff cards are sent as plain text (no parse_mode): nothing is interpreted, so nothing to escape.
    for item in items:
        if item.channel == "telegram":
            assert not item.payload.get("extra", {}).get("parse_mode")
    now = datetime.now(UTC)
    period = Period.month(f"{now.year}-{now.month:02d}", "UTC")
    page = render_report(await build_report(desk.sessions, period, now=now), "html")
    assert isinstance(page, str) and "<script" not in page and "onerror=alert" not in page.replace("&", "")


async def test_html_in_telegram_text_reaches_the_card_as_plain_text(harness: Harness) -> None:
    await harness.api.push_message(5821, f"Help {HOSTILE}", user={"language_code": "en"})
    [ticket] = await harness.until(harness.tickets)
    await harness.card(ticket.reference, "<script>")
    for call in harness.api.calls_to("sendMessage"):
        if call.params["chat_id"] == STAFF_CHAT:
            assert "parse_mode" not in call.params  # Telegram shows the text as it is, markup and all


# ------------------------------------------------------------------------------------- secrets


def test_every_staff_handler_goes_through_the_admission_rule() -> None:
    """Every handler the staff module registers checks who and where through ``_admit`` (via the source)."""
    source = inspect.getsource(StaffHandlers)
    names = re.findall(r"Handler\((?:[^()]|\([^()]*\))*?self\.(\w+)", source)
    assert {"command", "button", "reply_to_card"} <= set(names), names
    for name in names:
        assert "await self._admit(" in inspect.getsource(getattr(StaffHandlers, name)), name


BOT_TOKEN = "4242424242:SECRETbotTOKENxxxxxxxxxxxxxxxxxxxxxxxx"
IMAP_PASSWORD = "imapSECRETpw-81723"
SMTP_PASSWORD = "smtpSECRETpw-55120"
DB_PASSWORD = "dbSECRETpw-90311"
SECRETS = (BOT_TOKEN, BOT_TOKEN.split(":")[1], IMAP_PASSWORD, SMTP_PASSWORD, DB_PASSWORD)


class _Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    async def wait_for(
        self, pattern: str, *, since: int = 0, unless: asyncio.Task[None] | None = None, within: float = 120
    ) -> None:
        """Until a line from ``lines[since:]`` matches: the service's own word that it got there.

        Bounded generously (a loaded 2-core machine is slow, not stuck); fails at once if ``unless`` ends.
        """
        deadline = asyncio.get_running_loop().time() + within
        checked = since
        while True:
            lines = self.lines[checked:]
            if any(re.search(pattern, line) for line in lines):
                return
            checked += len(lines)
            if unless is not None and unless.done():
                unless.result()  # its exception, if it failed
                raise AssertionError(f"the service ended before logging {pattern!r}")
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no log line matching {pattern!r} within {within} s")
            await asyncio.sleep(0.05)


def _all_loggers_at_debug() -> None:
    logging.getLogger().setLevel(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        logging.getLogger(name).setLevel(logging.DEBUG)


async def test_secrets_never_appear_in_logs(database_url: str, engine: Any) -> None:
    from helpdesk.config import ImapSettings, Secret, Settings, SmtpSettings, TelegramSettings
    from helpdesk.service import open_runtime, serve
    from standins.imap_server import ImapStandIn
    from standins.smtp_server import SmtpStandIn
    from standins.telegram_api import TelegramApiStandIn

    if database_url.startswith("postgresql"):
        # The test server trusts loopback, so a password in the URL is accepted and ignored.
        database_url = database_url.replace("://postgres@", f"://postgres:{DB_PASSWORD}@", 1)
    capture = _Everything()
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in [*logging.root.manager.loggerDict, ""]}
    root.addHandler(capture)
    _all_loggers_at_debug()
    try:
        async with (
            TelegramApiStandIn(token=BOT_TOKEN) as api,
            ImapStandIn(password=IMAP_PASSWORD) as imap,
            SmtpStandIn(username="helpdesk", password=SMTP_PASSWORD) as smtp,
        ):

            def settings(token: str, imap_pw: str, smtp_pw: str) -> Settings:
                return Settings(
                    database_url=database_url,
                    telegram=TelegramSettings(Secret(token), api.base_url, STAFF_CHAT),
                    imap=ImapSettings(imap.host, imap.port, imap.user, Secret(imap_pw), False, "INBOX", 0.2),
                    smtp=SmtpSettings(smtp.host, smtp.port, "helpdesk", Secret(smtp_pw), False),
                    mail_from="helpdesk@tscc.example.org",
                    staff_telegram_ids=frozenset({STAFF_USER["id"]}),
                )

            # Start, traffic on both channels, delivery, shutdown.
            async with open_runtime(settings(BOT_TOKEN, IMAP_PASSWORD, SMTP_PASSWORD)) as runtime:
                stop = asyncio.Event()
                service = asyncio.create_task(serve(runtime, stop))
                # Not the first getUpdates: the stand-in records a long poll when it ends (10 s later).
                await capture.wait_for("Telegram channel polling", unless=service)
                _all_loggers_at_debug()  # the bot quiets httpx on start; listen to it anyway
                await api.push_message(5901, "Need PAME tools", user={"language_code": "en"})
                await imap.append(
                    b"From: Aliya <aliya@eco.gov.kz>\r\nTo: helpdesk@tscc.example.org\r\n"
                    b"Subject: PAME\r\nMessage-ID: <s1@eco.gov.kz>\r\n\r\nNeed PAME tools\r\n"
                )
                await smtp.wait_for_messages(1, timeout=120)
                await api.wait_for_call("sendMessage", _to(5901), timeout=120)
                stop.set()
                await asyncio.wait_for(service, 120)

            # Errors: the Bot API answering 401 to a wrong token stops the start with a reason.
            async with open_runtime(
                settings(BOT_TOKEN[:-4] + "XXXX", IMAP_PASSWORD, SMTP_PASSWORD)
            ) as runtime:
                try:
                    await asyncio.wait_for(serve(runtime, asyncio.Event()), 120)
                except Exception as exc:  # what `helpdesk run` would print
                    logging.getLogger("test").error("service stopped: %s", exc, exc_info=exc)
            # A wrong IMAP password (intake retries) and a wrong SMTP password (a staff reply to send).
            wrong = dataclasses.replace(
                settings(BOT_TOKEN, IMAP_PASSWORD + "-no", SMTP_PASSWORD + "-no"), telegram=None
            )
            async with open_runtime(wrong) as runtime:
                [email_ticket] = [t for t in await _tickets(runtime.desk) if t.channel == "email"]
                await reply(runtime.desk, email_ticket.reference, "Here you are", actor="cli:test")
                stop = asyncio.Event()
                since = len(capture.lines)
                service = asyncio.create_task(serve(runtime, stop))
                await capture.wait_for("IMAP login refused", since=since, unless=service)
                await capture.wait_for(r"(?i)SMTP delivery of .*(auth|535)", since=since, unless=service)
                stop.set()
                await asyncio.wait_for(service, 120)
    finally:
        root.removeHandler(capture)
        for name, level in levels.items():
            logging.getLogger(name or None).setLevel(level)
    text = "\n".join(capture.lines)
    assert len(capture.lines) > 20 and "DEBUG" in text  # the capture did hear the service
    assert "401 Unauthorized" in text and "rejected" in text  # the error paths did run
    assert re.search(r"(?i)imap.*(login|authenticat)", text) and re.search(r"(?i)smtp.*(auth|535)", text)
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, [line for line in capture.lines if any(s in line for s in leaked)][:5]
