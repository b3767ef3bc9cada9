"""`helpdesk run` with the web workspace on, as a real process against the stand-ins, for the HTTP and
browser tests: a SQLite database seeded with an email and a Telegram ticket and staff accounts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from helpdesk.db.engine import make_engine, make_sessions
from helpdesk.db.migrate import upgrade
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage, Sender
from helpdesk.service import standard_composers
from helpdesk.usecases.receive import receive
from helpdesk.usecases.staff_accounts import add_account
from standins.environment import standin_environment
from standins.smtp_server import SmtpStandIn
from standins.telegram_api import TelegramApiStandIn

PASSWORD = "correct horse battery staple"
AGENT = "agent@tscc.example"
VIEWER = "viewer@tscc.example"
MAIL_FROM = "helpdesk@tscc.example.org"
REQUESTER_EMAIL = "aliya@eco.gov.kz"
REQUESTER_CHAT = 5801
HOSTILE_SUBJECT = '<script>document.title="pwned"</script><img src=x onerror="document.title=\'pwned\'">'


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Workspace:
    base_url: str
    url: str
    bot_api: TelegramApiStandIn
    smtp: SmtpStandIn
    references: dict[str, str]
    log: list[str] = field(default_factory=list)


async def seed(url: str) -> dict[str, str]:
    await upgrade(url)
    engine = make_engine(url)
    desk = Desk(sessions=make_sessions(engine), mail_from=MAIL_FROM, composers=standard_composers())
    try:
        await add_account(desk, AGENT, name="Aida Agent", role="agent", password=PASSWORD)
        await add_account(desk, VIEWER, name="Viktor Viewer", role="viewer", password=PASSWORD)
        email = await receive(
            desk,
            InboundMessage(
                channel="email",
                channel_message_id="<req-1@eco.gov.kz>",
                sender=Sender(name="Aliya", email=REQUESTER_EMAIL),
                subject="Guidance on OECMs",
                text="We need guidance on other effective area-based conservation measures.",
            ),
        )
        telegram = await receive(
            desk,
            InboundMessage(
                channel="telegram",
                channel_message_id=f"{REQUESTER_CHAT}:1",
                sender=Sender(
                    name="Farrukh", telegram_user_id=REQUESTER_CHAT, telegram_chat_id=REQUESTER_CHAT
                ),
                text="Нужен эксперт по охраняемым природным территориям",
            ),
        )
        hostile = await receive(
            desk,
            InboundMessage(
                channel="email",
                channel_message_id="<req-2@evil.example>",
                sender=Sender(name="<b>Mallory</b>", email="mallory@evil.example"),
                subject=HOSTILE_SUBJECT,
                text='<script>document.title="pwned"</script> please help',
            ),
        )
    finally:
        await engine.dispose()
    return {"email": email.reference, "telegram": telegram.reference, "hostile": hostile.reference}


async def _line(stream: asyncio.StreamReader, needle: str, seen: list[str]) -> None:
    while True:
        line = (await stream.readline()).decode()
        if not line:
            raise AssertionError(f"process ended before logging {needle!r}: {''.join(seen)}")
        seen.append(line)
        if needle in line:
            return


@contextlib.asynccontextmanager
async def running_workspace(tmp_path: Path, *, with_base_url: bool = False) -> AsyncIterator[Workspace]:
    """``with_base_url``: HELPDESK_WEB_BASE_URL names the workspace (letters then carry links to it)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'web.db'}"
    references = await seed(url)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    async with TelegramApiStandIn() as bot_api, SmtpStandIn() as smtp:
        unset = {name: "" for name in os.environ if name.startswith("HELPDESK_") and "TEST" not in name}
        env = {
            **os.environ,
            **unset,
            "HELPDESK_DATABASE_URL": url,
            **standin_environment(bot_api=bot_api, smtp=smtp),
            "HELPDESK_MAIL_FROM": MAIL_FROM,
            "HELPDESK_WEB_PORT": str(port),
            "HELPDESK_DELIVERY_RETRY_BASE_SECONDS": "0.2",
            "HELPDESK_WEB_BASE_URL": base_url if with_base_url else "",
        }
        env = {k: v for k, v in env.items() if v != "" or not k.startswith("HELPDESK_")}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "helpdesk.cli", "run",
            env=env, cwd=tmp_path, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert process.stderr is not None
        seen: list[str] = []
        workspace = Workspace(base_url, url, bot_api, smtp, references, seen)
        drain: asyncio.Task[None] | None = None
        try:
            await asyncio.wait_for(_line(process.stderr, "web workspace on", seen), 120)
            drain = asyncio.create_task(_drain(process.stderr, seen))
            yield workspace
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), 60)
            if drain is not None:
                await drain
        workspace.log.append(f"exit {code}\n")


async def _drain(stream: asyncio.StreamReader, seen: list[str]) -> None:
    while line := await stream.readline():
        seen.append(line.decode())
