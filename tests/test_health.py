"""`helpdesk health` against real peers: a working setup passes, a broken one names what is wrong."""

from __future__ import annotations

import socket
import time

from test_spool import message

from helpdesk.config import ImapSettings, Secret, Settings, SmtpSettings, TelegramSettings
from helpdesk.db.migrate import current_revision_heads, upgrade
from helpdesk.health import run_checks
from helpdesk.spool import InboundSpool
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


async def test_the_spool_backlog_is_reported_and_a_stuck_or_full_spool_fails(
    database_url: str, tmp_path
) -> None:
    spool_dir = tmp_path / "spool"
    async with TelegramApiStandIn() as bot_api:
        settings = Settings(
            database_url=database_url,
            telegram=TelegramSettings(Secret(bot_api.token), bot_api.base_url, None),
            spool_dir=spool_dir,
            spool_max_mb=1,
        )

        async def spool_check():
            return {c.name: c for c in await run_checks(settings)}["spool"]

        empty = await spool_check()
        assert empty.ok and empty.detail.endswith("empty"), empty
        spool = InboundSpool(spool_dir)
        first = await spool.put(message(1))
        await spool.put(message(2))
        waiting = await spool_check()
        # Kept a moment ago: a running service is replaying it, nothing to alarm about yet.
        assert waiting.ok and "2 message(s) waiting for the database" in waiting.detail, waiting
        # What a run killed an hour ago left behind (the file name is the time it was kept).
        hour_ago = time.time_ns() - 3600 * 10**9
        first.path.rename(first.path.with_name(f"{hour_ago:020d}-{first.path.name.partition('-')[2]}"))
        stuck = await spool_check()
        assert not stuck.ok and "oldest kept 3600 s ago" in stuck.detail and "not replayed" in stuck.detail
        (spool_dir / "00000000000000000001-1-000001.bad").write_text("not ours")
        await spool.put(message(3, data=b"x" * 700_000))  # base64 makes it about 0.9 MB of the 1 MB cap
        full = await spool_check()
    assert "over 80% full" in full.detail and "1 unreadable file(s)" in full.detail, full
    assert "Гульнара" not in full.detail  # nothing of the requesters' messages leaves the spool
