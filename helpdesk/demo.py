"""`helpdesk demo`: the real service against local stand-ins, end to end, on a machine with no accounts.

Starts the Bot API stand-in, a pymap IMAP server and an aiosmtpd SMTP server on loopback, runs the help desk
against them, sends requests in Russian and English by Telegram and by email, answers two of them as staff,
and prints what each requester received and the ticket list.
"""

from __future__ import annotations

import asyncio
import secrets
import shlex
import signal
import time
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import TextIO

from helpdesk.config import (
    ConfigError,
    ImapSettings,
    Secret,
    Settings,
    SmtpSettings,
    TelegramSettings,
    WebSettings,
)
from helpdesk.db.reachable import sqlite_path
from helpdesk.db.types import utcnow
from helpdesk.demo_database import claim_demo_database
from helpdesk.service import Runtime, open_runtime, serve
from helpdesk.usecases.listing import TicketFilter, list_tickets
from helpdesk.usecases.reply import reply
from helpdesk.usecases.staff_accounts import add_account
from helpdesk.worker import RetryPolicy
from standins.imap_server import ImapStandIn
from standins.smtp_server import SmtpStandIn
from standins.telegram_api import TelegramApiStandIn

MAIL_FROM = "helpdesk@tscc-demo.example"
TOKEN = "7000000001:DEMO-not-a-real-token"
DEMO_STAFF = "staff@tscc-demo.example"

TELEGRAM_REQUESTS = [
    (
        7101,
        {"first_name": "Dilnoza", "language_code": "ru"},
        "Здравствуйте! Нам нужна методика оценки эффективности управления ООПТ (METT) на русском языке. "
        "Готовим отчёт по заповедникам Каракалпакстана.",
    ),
    (
        7102,
        {"first_name": "Arman", "language_code": "en"},
        "Hello, we are looking for an expert on OECMs who could advise our ministry on identification "
        "criteria.",
    ),
]

EMAIL_REQUESTS = [
    (
        "Aigul Sadykova",
        "a.sadykova@biodiversity-ngo.example.kg",
        "Семинар по инвазивным видам",
        "Добрый день!\n\nНаша организация планирует семинар по инвазивным чужеродным видам в бассейне "
        "Иссык-Куля. Подскажите, пожалуйста, есть ли у Центра специалисты и учебные материалы "
        "на русском языке?\n\n"
        "С уважением,\nАйгуль Садыкова",
        "windows-1251",
    ),
    (
        "Rustam Nazarov",
        "r.nazarov@ecology.example.uz",
        "Funding for NBSAP update",
        "Dear colleagues,\n\nThe Ministry is preparing the update of our NBSAP and is looking for funding "
        "opportunities and examples of resource mobilisation plans from other Parties.\n\nBest regards,\n"
        "Rustam Nazarov",
        "utf-8",
    ),
]

STAFF_REPLIES = {
    "telegram": "Методика METT и руководство на русском языке: https://www.protectedplanet.net/en/thematic-areas/"
    "protected-areas-management-effectiveness-pame. Пришлём также контакт эксперта.",
    "email": "Dear Rustam, the GBF Fund and the BIOFIN workbook are good starting points; we will send "
    "examples of resource mobilisation plans from two Parties this week.",
}


def _email(name: str, address: str, subject: str, body: str, charset: str) -> bytes:
    message = EmailMessage()
    message["From"] = f"{name} <{address}>"
    message["To"] = MAIL_FROM
    message["Subject"] = subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(domain=address.rpartition("@")[2])
    message.set_content(body, charset=charset)
    return message.as_bytes()


async def _until(what: str, check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"demo: timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def run_demo(out: TextIO, directory: Path, *, serve_port: int | None = None) -> int:
    """Run the demo against stand-ins, keeping its tickets in DIRECTORY/helpdesk.db for the staff commands.

    With ``serve_port`` it then keeps running with the web workspace on 127.0.0.1:PORT until SIGINT/SIGTERM.
    """
    database, replaced = await claim_demo_database(directory)
    async with (
        TelegramApiStandIn(TOKEN) as bot_api,
        SmtpStandIn() as smtp,
        ImapStandIn(user=MAIL_FROM, password="demo-imap-password") as imap,
    ):
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{database}",
            telegram=TelegramSettings(token=Secret(TOKEN), api_url=bot_api.base_url, staff_chat_id=None),
            imap=ImapSettings(
                host=imap.host,
                port=imap.port,
                user=imap.user,
                password=Secret(imap.password),
                tls=False,
                mailbox="INBOX",
                poll_interval=0.5,
            ),
            smtp=SmtpSettings(host=smtp.host, port=smtp.port, user=None, password=None, tls=False),
            mail_from=MAIL_FROM,
            web=WebSettings(port=serve_port) if serve_port else None,
        )
        print(
            f"{'Replaced the previous demo database' if replaced else 'Demo database'}: {database}", file=out
        )
        print(
            f"Stand-ins on loopback: Bot API :{bot_api.port}, IMAP :{imap.port}, SMTP :{smtp.port}",
            file=out,
        )
        async with open_runtime(
            settings, create=True, retry_policy=RetryPolicy(base_delay=0.5, max_delay=2)
        ) as runtime:
            stop = asyncio.Event()
            service = asyncio.create_task(serve(runtime, stop))
            try:
                await _exchange(runtime, bot_api, smtp, imap, out)
                if settings.web is not None:
                    await _serve_until_stopped(runtime, settings.web, out)
            finally:
                stop.set()
                await service
            await _print_tickets(runtime, out)
    print("\nDemo finished: every request was ticketed, acknowledged and answered.", file=out)
    how_to_look = await asyncio.to_thread(_how_to_look, database)
    print(f"The demo's tickets are in {database}; try {how_to_look}", file=out)
    return 0


def _how_to_look(database: Path) -> str:
    """The staff command that shows the demo's tickets, given what `helpdesk` reads in that folder."""
    folder = database.parent
    try:
        read_there = sqlite_path(Settings.from_env(cwd=folder).database_url)
    except ConfigError:
        read_there = None
    if read_there is not None and read_there.absolute() == database:
        go = "" if folder == Path.cwd().absolute() else f"cd {shlex.quote(str(folder))} && "
        return f"`{go}helpdesk tickets list`"
    # HELPDESK_DATABASE_URL names another database, which the demo never touches.
    return f"`HELPDESK_DATABASE_URL={shlex.quote(f'sqlite:///{database}')} helpdesk tickets list`"


async def _exchange(
    runtime: Runtime, bot_api: TelegramApiStandIn, smtp: SmtpStandIn, imap: ImapStandIn, out: TextIO
) -> None:
    print("\n== Requests", file=out)
    for chat_id, user, text in TELEGRAM_REQUESTS:
        await bot_api.push_message(chat_id, text, user=user)
        print(f"Telegram  {user['first_name']:<16} {text[:70]}…", file=out)
    for name, address, subject, body, charset in EMAIL_REQUESTS:
        await imap.append(_email(name, address, subject, body, charset))
        print(f"Email     {name:<16} {subject} ({charset})", file=out)

    async def acknowledged() -> bool:
        return all(bot_api.sent_messages(c) for c, _, _ in TELEGRAM_REQUESTS) and len(smtp.messages) >= 2

    await _until("the acknowledgements", acknowledged)
    tickets = await list_tickets(runtime.desk, TicketFilter())
    # Dilnoza's Telegram request and Rustam's email get answers.
    answered_subjects = {"telegram": TELEGRAM_REQUESTS[0][2][:40], "email": EMAIL_REQUESTS[1][2]}
    by_channel = {
        channel: next(t["reference"] for t in tickets if t["subject"].startswith(subject))
        for channel, subject in answered_subjects.items()
    }

    print("\n== Staff replies (as `helpdesk tickets reply` would)", file=out)
    for channel, text in STAFF_REPLIES.items():
        await reply(runtime.desk, by_channel[channel], text, actor="demo:staff")
        print(f"{by_channel[channel]} ({channel}): {text[:60]}…", file=out)

    async def answered() -> bool:
        return len(bot_api.sent_messages(TELEGRAM_REQUESTS[0][0])) >= 2 and len(smtp.messages) >= 3

    await _until("the staff replies to be delivered", answered)

    print("\n== What each requester received", file=out)
    for chat_id, user, _ in TELEGRAM_REQUESTS:
        for sent in bot_api.sent_messages(chat_id):
            print(f"--- Telegram to {user['first_name']} (chat {chat_id})\n{sent['text']}\n", file=out)
    for captured in smtp.messages:
        message = captured.message
        body = message.get_body(("plain",))
        text = body.get_content() if body is not None else ""
        print(f"--- Email to {message['To']}\nSubject: {message['Subject']}", file=out)
        print(f"In-Reply-To: {str(message['In-Reply-To']).strip()}\n\n{text.strip()}\n", file=out)


async def _print_tickets(runtime: Runtime, out: TextIO) -> None:
    print("== Tickets", file=out)
    for ticket in reversed(await list_tickets(runtime.desk, TicketFilter())):
        print(
            f"{ticket['reference']}  {ticket['status']:<8} {ticket['channel']:<9} {ticket['language']}  "
            f"{ticket['subject'][:60]}",
            file=out,
        )


async def _serve_until_stopped(runtime: Runtime, web: WebSettings, out: TextIO) -> None:
    """A staff login for the workspace, printed, then wait for Ctrl-C or SIGTERM."""
    password = secrets.token_urlsafe(12)
    await add_account(runtime.desk, DEMO_STAFF, name="Demo Staff", role="admin", password=password)
    print(f"\n== Web workspace: http://{web.host}:{web.port}/", file=out)
    print(f"Sign in as {DEMO_STAFF} with the password {password}", file=out)
    print("Replies sent there reach the stand-ins; Ctrl-C stops the demo.", file=out, flush=True)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopped.set)
    try:
        await stopped.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
