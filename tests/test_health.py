"""`helpdesk health` against real peers: a working setup passes, a broken one names what is wrong."""

from __future__ import annotations

import socket

from helpdesk.config import ImapSettings, Secret, Settings, SmtpSettings, TelegramSettings
from helpdesk.db.migrate import current_revision_heads, upgrade
from helpdesk.health import run_checks
from standins.imap_server import ImapStandIn
from standins.smtp_server import SmtpStandIn
from standins.telegram_api import TelegramApiStandIn


async def test_all_parts_reachable(database_url: str) -> None:
    async with TelegramApiStandIn() as bot_api, SmtpStandIn() as smtp, ImapStandIn() as imap:
        await imap.append(b"From: a@b.example\r\nSubject: x\r\nMessage-ID: <h@b>\r\n\r\nhello\r\n")
        settings = Settings(
            database_url=database_url,
            telegram=TelegramSettings(Secret(bot_api.token), bot_api.base_url, None),
            imap=ImapSettings(imap.host, imap.port, imap.user, Secret(imap.password), False, "INBOX", 60),
            smtp=SmtpSettings(smtp.host, smtp.port, None, None, False),
            mail_from="helpdesk@tscc.example.org",
        )
        checks = {c.name: c for c in await run_checks(settings)}
    assert all(c.ok for c in checks.values()), checks
    [head] = current_revision_heads(database_url)
    assert f"schema {head}" in checks["database"].detail
    assert "@tscc_helpdesk_bot" in checks["telegram"].detail and "long polling" in checks["telegram"].detail
    assert "1 unseen" in checks["imap"].detail


async def test_failures_are_named(tmp_path) -> None:
    fresh = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    async with TelegramApiStandIn() as bot_api:
        bot_api.fail_next("getMe", 401, "Unauthorized")
        settings = Settings(
            database_url=fresh,
            telegram=TelegramSettings(Secret(bot_api.token), bot_api.base_url, None),
            smtp=SmtpSettings("127.0.0.1", 1, None, None, False),
            mail_from="helpdesk@tscc.example.org",
        )
        checks = {c.name: c for c in await run_checks(settings)}
    assert not checks["database"].ok and "helpdesk db upgrade" in checks["database"].detail
    assert not checks["telegram"].ok
    assert bot_api.token not in checks["telegram"].detail
    assert not checks["smtp"].ok and "127.0.0.1:1" in checks["smtp"].detail
    assert checks["imap"].ok and checks["imap"].detail.startswith("off")
    await upgrade(fresh)
    assert (await run_checks(Settings(database_url=fresh)))[0].ok


async def test_an_unreachable_database_is_one_line_without_the_password() -> None:
    with socket.socket() as probe:  # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql+asyncpg://postgres:Hidden-pw@127.0.0.1:{port}/helpdesk"
    [database, *_] = await run_checks(Settings(database_url=url))
    assert not database.ok
    assert database.detail == (
        f"HELPDESK_DATABASE_URL: connection refused at 127.0.0.1:{port} (is PostgreSQL running there?)"
    )
