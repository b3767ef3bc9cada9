"""Fixtures shared by the suite: a migrated database on SQLite and on PostgreSQL for every DB test.

PostgreSQL is required, not optional: when it cannot be reached the DB tests error instead of skipping,
so CI goes red rather than silently testing only SQLite.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from playwright.async_api import Browser, async_playwright
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from web_browser import CHROMIUM, CHROMIUM_ARGS

from helpdesk.classification import build_classifier
from helpdesk.classification.classifier import LexiconClassifier
from helpdesk.db.engine import make_engine, make_sessions
from helpdesk.db.migrate import upgrade
from helpdesk.db.models import Base
from helpdesk.desk import Desk
from helpdesk.service import standard_composers
from knowledge import load_knowledge_base
from standins.imap_server import ImapStandIn
from standins.smtp_server import SmtpStandIn
from standins.telegram_api import TelegramApiStandIn

# Tests talk to stand-ins on loopback; a proxy from the environment must not intercept them.
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

POSTGRES_ADMIN_DSN = os.environ.get("HELPDESK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def _postgres_database() -> Iterator[str]:
    name = f"helpdesk_test_{os.getpid()}_{secrets.token_hex(3)}"

    async def admin(sql: str) -> None:
        try:
            connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            raise RuntimeError(
                f"PostgreSQL is required for the tests and is not reachable at {POSTGRES_ADMIN_DSN} ({exc}); "
                "start it or point HELPDESK_TEST_POSTGRES at one"
            ) from exc
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database migrated to the newest schema, once per backend per test session."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'helpdesk.db'}"
        asyncio.run(upgrade(url))
        yield url
        return
    generator = _postgres_database()
    url = next(generator)
    asyncio.run(upgrade(url))
    yield url
    generator.close()


async def _empty(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.execute(text(f"DELETE FROM {table.name}"))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_url)
    await _empty(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def desk(engine: AsyncEngine) -> Desk:
    return Desk(
        sessions=make_sessions(engine), mail_from="helpdesk@tscc.example.org", composers=standard_composers()
    )


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpStandIn]:
    async with SmtpStandIn() as server:
        yield server


@pytest.fixture
async def imap() -> AsyncIterator[ImapStandIn]:
    async with ImapStandIn(user="helpdesk@tscc.example", password="imap-test-pw") as server:
        yield server


@pytest.fixture
async def bot_api() -> AsyncIterator[TelegramApiStandIn]:
    async with TelegramApiStandIn() as api:
        yield api


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, so no helpdesk.toml or .env from the checkout leaks into a test."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's chromium driven by Playwright (its own browser download is not reachable here)."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture(scope="session")
def packaged_classifier() -> LexiconClassifier:
    """The desk's classifier over the packaged knowledge base, built once per worker (a third of a second
    each time): it is read-only, and with_examples() clones rather than changes it."""
    built = build_classifier(load_knowledge_base())
    assert isinstance(built, LexiconClassifier)
    return built
