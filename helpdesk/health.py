"""`helpdesk health`: is each part reachable and working? One line per check, for operators and probes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass

from sqlalchemy import func, select, text

from helpdesk.config import Settings
from helpdesk.db.engine import make_engine
from helpdesk.db.migrate import current_revision_heads
from helpdesk.db.models import OutboxItem
from helpdesk.db.reachable import describe, missing_database, sqlite_path
from helpdesk.spool import backlog
from helpdesk.usecases.load import load_drift

TIMEOUT = 15.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


async def check_database(settings: Settings) -> Check:
    path = sqlite_path(settings.database_url)
    # Connecting to a SQLite file that is not there would create it: a health check leaves no trace.
    if path is not None and not await asyncio.to_thread(path.exists):
        return Check("database", False, missing_database(path))
    engine = make_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            try:
                version = await connection.scalar(text("SELECT version_num FROM alembic_version"))
            except Exception:
                return Check("database", False, "reachable, but no schema yet: run `helpdesk db upgrade`")
            heads = await asyncio.to_thread(current_revision_heads, settings.database_url)
            if version not in heads:
                return Check(
                    "database", False, f"schema {version} is behind {heads[0]}: run `helpdesk db upgrade`"
                )
            pending = await connection.scalar(
                select(func.count(OutboxItem.id)).where(OutboxItem.status == "pending")
            )
            failed = await connection.scalar(
                select(func.count(OutboxItem.id)).where(OutboxItem.status == "failed")
            )
            drift = await load_drift(connection)
        detail = f"{engine.dialect.name}, schema {version}; outbox {pending} pending, {failed} failed"
        if drift:
            first = list(drift.items())[:3]
            shown = ", ".join(f"{name} kept {kept}, counted {n}" for name, (kept, n) in first)
            return Check(
                "database", False, f"{detail}; expert load differs from the tickets ({shown}): "
                "run `helpdesk db recount-load`",
            )  # fmt: skip
        return Check("database", True, detail)
    except Exception as exc:
        return Check("database", False, describe(exc, settings.database_url))
    finally:
        await engine.dispose()


def _step_timeout(settings: Settings) -> float:
    # Each step within the whole check's budget, so a stalled server fails the check, not the probe.
    return min(settings.mail_timeout_seconds, TIMEOUT)


async def check_smtp(settings: Settings) -> Check:
    import aiosmtplib

    smtp = settings.smtp
    assert smtp is not None
    client = aiosmtplib.SMTP(
        hostname=smtp.host, port=smtp.port, use_tls=smtp.tls and smtp.port == 465,
        start_tls=smtp.tls and smtp.port != 465, timeout=_step_timeout(settings),
    )  # fmt: skip
    try:
        await client.connect()
        if smtp.user and smtp.password:
            await client.login(smtp.user, smtp.password.reveal())
        await client.quit()
        return Check(
            "smtp", True, f"{smtp.host}:{smtp.port} accepts connections" + (" and login" if smtp.user else "")
        )
    except Exception as exc:
        return Check("smtp", False, f"{smtp.host}:{smtp.port}: {type(exc).__name__}: {exc}")


async def check_imap(settings: Settings) -> Check:
    from helpdesk.email.imap_mailbox import ImapMailbox

    imap = settings.imap
    assert imap is not None
    try:
        async with ImapMailbox(
            imap.host, imap.port, imap.user, imap.password.reveal(), tls=imap.tls, mailbox=imap.mailbox,
            timeout=_step_timeout(settings),
        ) as mailbox:  # fmt: skip
            unseen = len(await mailbox.unseen_uids())
            idle = "IDLE" if mailbox.supports_idle else "no IDLE"
        return Check("imap", True, f"{imap.host}:{imap.port} {imap.mailbox}: {unseen} unseen, {idle}")
    except Exception as exc:
        return Check("imap", False, f"{imap.host}:{imap.port}: {type(exc).__name__}: {exc}")


async def check_telegram(settings: Settings) -> Check:
    from bot.health import telegram_health

    assert settings.telegram is not None
    ok, detail = await telegram_health(settings.telegram.token.reveal(), settings.telegram.api_url)
    return Check("telegram", ok, detail)


# A running service replays the spool every second and gives a chat up after the grace period; a message
# kept this much longer than that is waiting for a service that is not running (or cannot reach Telegram).
STUCK_MARGIN_SECONDS = 60.0
FULL_SHARE = 0.8  # past this share of HELPDESK_SPOOL_MAX_MB new messages are close to being refused


async def check_spool(settings: Settings) -> Check:
    """Telegram messages the database could not take, waiting on disk to be replayed."""
    waiting = await asyncio.to_thread(backlog, settings.spool_dir)
    cap = settings.spool_max_mb * 1024 * 1024
    if not waiting.files and not waiting.unreadable:
        return Check("spool", True, f"{settings.spool_dir}: empty")
    age = time.time() - waiting.oldest if waiting.oldest is not None else 0.0
    detail = (
        f"{settings.spool_dir}: {waiting.files} message(s) waiting for the database, "
        f"{waiting.bytes / 1024 / 1024:.1f} of {settings.spool_max_mb} MB, oldest kept {age:.0f} s ago"
    )
    problems = []
    if waiting.files and age > settings.telegram_outage_grace_seconds + STUCK_MARGIN_SECONDS:
        problems.append("not replayed: is `helpdesk run` running and the database reachable?")
    if waiting.bytes > FULL_SHARE * cap:
        problems.append(f"over {FULL_SHARE:.0%} full: new messages will soon be refused")
    if waiting.unreadable:
        problems.append(f"{waiting.unreadable} unreadable file(s) set aside as .bad: look at them")
    return Check("spool", not problems, "; ".join([detail, *problems]))


async def _within(check: Awaitable[Check], name: str) -> Check:
    """The check's own answer, or a failure once TIMEOUT has passed: a stalled peer never hangs the probe."""
    try:
        return await asyncio.wait_for(check, TIMEOUT)
    except TimeoutError:
        return Check(name, False, f"no answer within {TIMEOUT:g} s")


async def run_checks(settings: Settings) -> list[Check]:
    checks: list[Awaitable[Check]] = [_within(check_database(settings), "database")]
    if settings.telegram is not None:
        checks.append(_within(check_telegram(settings), "telegram"))
        checks.append(_within(check_spool(settings), "spool"))
    if settings.imap is not None:
        checks.append(_within(check_imap(settings), "imap"))
    if settings.smtp is not None:
        checks.append(_within(check_smtp(settings), "smtp"))
    results = list(await asyncio.gather(*checks))
    configured = {c.name for c in results}
    switches = {
        "telegram": "HELPDESK_TELEGRAM_TOKEN",
        "imap": "HELPDESK_IMAP_HOST",
        "smtp": "HELPDESK_SMTP_HOST",
    }
    results.extend(
        Check(name, True, f"off ({variable} not set)")
        for name, variable in switches.items()
        if name not in configured
    )
    return results
