"""The composition root: builds the desk, the channels and the delivery worker from Settings, and runs them.

The desk itself knows no channel library; only this module wires the adapters in (imported lazily, so a
`helpdesk tickets list` never loads python-telegram-bot).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from helpdesk.composer import ChannelComposer
from helpdesk.config import Settings
from helpdesk.db.engine import make_engine, make_sessions
from helpdesk.db.migrate import upgrade
from helpdesk.db.reachable import ensure_database
from helpdesk.delivery import ChannelSender
from helpdesk.desk import Desk
from helpdesk.flood import FloodLimits
from helpdesk.safe_intake import SafeIntake
from helpdesk.spool import InboundSpool
from helpdesk.usecases.cards import queue_card_for
from helpdesk.worker import DeliveryWorker, RetryPolicy

if TYPE_CHECKING:
    from helpdesk.email.imap_mailbox import ImapMailbox
    from helpdesk.email.imap_polling import PollResult
    from helpdesk.email.intake import MailIntake

log = logging.getLogger(__name__)

# Backing off while the database restarts: about half a minute in all, then the error is reported.
RECEIVE_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    desk: Desk
    worker: DeliveryWorker
    intake: SafeIntake
    senders: dict[str, ChannelSender] = field(default_factory=dict)
    # Email intake's dependencies, made on first use (`mail`); its parser worker starts with the first mail.
    _mail: MailIntake | None = None

    @property
    def mail(self) -> MailIntake:
        """What email intake needs, given explicitly: the desk, the parser, the limits, the settings."""
        if self._mail is None:
            from helpdesk.email.intake import MailIntake
            from helpdesk.email.limits import MailLimits
            from helpdesk.email.parser_process import GuardedParser

            settings = self.settings
            self._mail = MailIntake(
                desk=self.desk,
                parser=GuardedParser(),
                limits=MailLimits.with_max_message_mb(settings.mail_max_message_mb),
                retry_delays=RECEIVE_RETRY_DELAYS,
                max_attachment_bytes=int(settings.mail_max_attachment_mb * 1024 * 1024),
                trusted_authserv_id=settings.mail_trusted_authserv_id,
            )
        return self._mail

    def mailbox(self) -> Callable[[], ImapMailbox]:
        """Opens a fresh connection to the configured mailbox (one per (re)connection)."""
        from helpdesk.email.intake import mailbox_factory

        if self.settings.imap is None:
            raise RuntimeError("email intake needs HELPDESK_IMAP_HOST")
        return mailbox_factory(self.settings.imap, timeout=self.settings.mail_timeout_seconds)

    async def poll_mail_once(self) -> PollResult:
        from helpdesk.email.intake import poll_email_once

        return await poll_email_once(self.mail, self.mailbox())

    async def run_mail(self, stop: asyncio.Event) -> None:
        from helpdesk.email.intake import run_email_intake

        assert self.settings.imap is not None
        await run_email_intake(
            self.mail, self.mailbox(), interval=self.settings.imap.poll_interval, stop=stop
        )


def standard_composers() -> dict[str, ChannelComposer]:
    """How the desk words and addresses what it says on each channel: the one registry of channels (each
    sender is built beside it in ``build_senders``). Every channel the desk may hold tickets on has one,
    configured here or not: a reply written by the CLI is queued for the `helpdesk run` that has the
    sender. The adapters render templates only, so importing them loads no channel library."""
    from bot.composer import TelegramComposer
    from helpdesk.email.composer import EmailComposer

    return {"email": EmailComposer(), "telegram": TelegramComposer()}


def build_senders(settings: Settings) -> dict[str, ChannelSender]:
    senders: dict[str, ChannelSender] = {}
    if settings.smtp is not None and settings.mail_from:
        from helpdesk.email.smtp_sender import SmtpSender

        smtp = settings.smtp
        senders["email"] = SmtpSender(
            smtp.host,
            smtp.port,
            username=smtp.user,
            password=smtp.password.reveal() if smtp.password else None,
            tls=smtp.tls,
            mail_from=settings.mail_from,
            timeout=settings.mail_timeout_seconds,
        )
    if settings.telegram is not None:
        from bot.sender import TelegramSender

        senders["telegram"] = TelegramSender(settings.telegram.token.reveal(), settings.telegram.api_url)
    return senders


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    migrate: bool = True,
    create: bool = False,
    retry_policy: RetryPolicy | None = None,
) -> AsyncIterator[Runtime]:
    """The desk, its senders and its worker over the configured database.

    A database that cannot be used raises DatabaseUnavailable (one line naming HELPDESK_DATABASE_URL);
    a SQLite file that is not there is created only with `create` (run, demo), never by a command that reads.
    """
    await ensure_database(settings.database_url, create=create)
    if migrate:
        await upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    sessions = make_sessions(engine)
    senders = build_senders(settings)
    if retry_policy is None:
        retry_policy = RetryPolicy(
            base_delay=settings.delivery_retry_base_seconds, lease=settings.delivery_lease_seconds
        )
    limits = FloodLimits(
        max_open_tickets=settings.telegram_max_open_tickets,
        receipts_per_minute=settings.telegram_receipts_per_minute,
    )
    worker = DeliveryWorker(sessions, senders, policy=retry_policy, per_recipient=limits.outbox_per_recipient)
    desk = Desk(
        sessions=sessions,
        mail_from=settings.mail_from,
        staff_emails=settings.staff_emails,
        staff_mail_language=settings.report_language,
        mail_ack_limit_per_hour=settings.mail_ack_limit_per_hour,
        timezone=ZoneInfo(settings.timezone),
        staff_telegram_chat_id=settings.telegram.staff_chat_id if settings.telegram is not None else None,
        limits=limits,
        composers=standard_composers(),
        web_base_url=settings.web_base_url,
    )
    connect(desk, worker)
    spool = InboundSpool(settings.spool_dir, max_bytes=settings.spool_max_mb * 1024 * 1024)
    intake = SafeIntake(
        desk, spool, sender=senders.get("telegram"), grace_seconds=settings.telegram_outage_grace_seconds
    )
    # An answer that cannot be delivered (e.g. the requester blocked the bot) shows on the staff card.
    worker.on_give_up = lambda session, ticket_id: queue_card_for(desk, session, ticket_id)
    runtime = Runtime(
        settings=settings, engine=engine, desk=desk, worker=worker, intake=intake, senders=senders
    )
    try:
        yield runtime
    finally:
        if runtime._mail is not None:
            await runtime._mail.parser.close()
        for sender in senders.values():
            closer = getattr(sender, "close", None)
            if closer is not None:
                await closer()
        await engine.dispose()


def connect(desk: Desk, worker: DeliveryWorker) -> None:
    """The delivery worker of this process serves the desk's intake: woken when a transaction queued
    something, and handed a receipt straight from the intake that wrote it (``helpdesk/handoff.py``)."""
    desk.outbox_written = worker.wake
    desk.hand_off = worker.hand_off
    desk.carry_marks = worker.ride_marks()


async def serve(runtime: Runtime, stop: asyncio.Event) -> None:
    """Run every configured channel and the delivery worker until `stop` is set."""
    tasks: list[asyncio.Task[None]] = [asyncio.create_task(runtime.worker.run(stop), name="delivery")]
    try:
        await _serve_channels(runtime, stop, tasks)
    except BaseException:
        # A channel that cannot start (or a crash) ends the tasks already running, not just this coroutine.
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _serve_channels(runtime: Runtime, stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    settings = runtime.settings
    async with contextlib.AsyncExitStack() as stack:
        if settings.telegram is not None:
            from bot.application import build_application, start_polling, start_webhook, stop_application

            telegram = settings.telegram
            # Replays what a previous run kept in the spool, then whatever the database cannot take now.
            tasks.append(asyncio.create_task(runtime.intake.run(stop), name="telegram-spool"))
            application = build_application(
                telegram.token.reveal(),
                telegram.api_url,
                runtime.intake.take,
                desk=runtime.desk,
                staff_chat_id=telegram.staff_chat_id,
                staff_ids=settings.staff_telegram_ids,
            )
            if telegram.webhook_url:
                # Settings refuse webhook mode without a secret; start_webhook refuses it too.
                secret = telegram.webhook_secret.reveal() if telegram.webhook_secret else ""
                await start_webhook(
                    application,
                    webhook_url=telegram.webhook_url,
                    listen=telegram.webhook_listen,
                    port=telegram.webhook_port,
                    url_path=urlsplit(telegram.webhook_url).path.strip("/"),
                    secret_token=secret,
                    bootstrap_retries=-1,
                )
                log.info(
                    "Telegram channel receiving by webhook on %s:%s",
                    telegram.webhook_listen,
                    telegram.webhook_port,
                )
            else:
                await start_polling(application, bootstrap_retries=-1)
                log.info("Telegram channel polling")
            stack.push_async_callback(stop_application, application)
        if settings.web is not None:
            from helpdesk.web.server import start_web

            tasks.append(
                await start_web(
                    runtime.desk,
                    settings.web,
                    stop,
                    settings,
                    response_target_hours=settings.response_target_hours,
                )
            )
        if settings.imap is not None:
            tasks.append(asyncio.create_task(runtime.run_mail(stop), name="email-intake"))
            log.info("email channel polling %s every %.0f s", settings.imap.host, settings.imap.poll_interval)
        if settings.report_day:
            from helpdesk.jobs.monthly_report import run_monthly_reports

            tasks.append(
                asyncio.create_task(run_monthly_reports(runtime.desk, settings, stop), name="monthly-report")
            )
        if settings.retention_months:
            from helpdesk.jobs.retention import run_retention

            tasks.append(
                asyncio.create_task(
                    run_retention(runtime.desk, settings.retention_months, stop), name="retention"
                )
            )
        from helpdesk.jobs.referral_reminders import run_referral_reminders

        tasks.append(
            asyncio.create_task(
                run_referral_reminders(runtime.desk, settings.referral_reminder_days, stop),
                name="referral-reminders",
            )
        )
        await stop.wait()
        log.info("stopping: finishing work in hand")
        # The worker finishes the items it is sending; the leases of those it holds and has not started are
        # released, so the next start sends them at once.
        await asyncio.gather(*tasks, return_exceptions=True)
