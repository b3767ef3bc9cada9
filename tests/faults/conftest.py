"""Stand-ins for the fault scenarios, and the figures every scenario recorded, printed at the end."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from faults.helpers import FIGURES
from helpdesk.db.engine import make_sessions


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessions(engine)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("fault and load figures")
    for entry in FIGURES:
        terminalreporter.write_line(json.dumps(entry, ensure_ascii=False))
