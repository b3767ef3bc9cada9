"""Stand-ins for the fault scenarios, and the figures every scenario recorded, printed at the end."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from faults.helpers import FIGURES
from helpdesk.db.engine import make_sessions
from helpdesk.standins.imap_server import ImapStandIn
from helpdesk.standins.smtp_server import SmtpStandIn
from helpdesk.standins.telegram_api import TelegramApiStandIn


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpStandIn]:
    async with SmtpStandIn() as server:
        yield server


@pytest.fixture
async def imap() -> AsyncIterator[ImapStandIn]:
    async with ImapStandIn(user="helpdesk@tscc.example", password="imap-fault-pw") as server:
        yield server


@pytest.fixture
async def bot_api() -> AsyncIterator[TelegramApiStandIn]:
    async with TelegramApiStandIn() as api:
        yield api


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessions(engine)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("fault and load figures")
    for entry in FIGURES:
        terminalreporter.write_line(json.dumps(entry, ensure_ascii=False))
