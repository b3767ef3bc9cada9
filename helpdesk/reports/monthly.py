"""The monthly summary for staff: emailed (full report) and posted to the staff group (headline figures).

Early each month the previous month's report is sent once (`helpdesk.jobs.monthly_report` asks hourly).
The delivery is recorded in `report_deliveries` in the same transaction that queues the messages in the
outbox, so a restart, a crash after the commit or a second running service never sends it twice (the key is
the primary key).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from helpdesk.config import Settings
from helpdesk.db.models import OutboxItem, ReportDelivery, Ticket
from helpdesk.desk import Desk
from helpdesk.messages import OutboundMessage
from helpdesk.outbox import new_message_id
from helpdesk.rendering import render
from helpdesk.reports.build import build_report, format_hours, format_percent
from helpdesk.reports.period import Period, add_months
from helpdesk.reports.render import to_html, to_markdown
from helpdesk.usecases.staff_directory import staff_emails

log = logging.getLogger(__name__)


def due_period(settings: Settings, now: datetime) -> Period | None:
    """The month whose report is due at `now` (the previous one), or None before the configured day/hour."""
    if settings.report_day == 0:
        return None
    local = now.astimezone(ZoneInfo(settings.timezone))
    if (local.day, local.hour) < (settings.report_day, settings.report_hour):
        return None
    previous = add_months(local.date().replace(day=1), -1)
    return Period.month(previous.strftime("%Y-%m"), settings.timezone)


def headline(report: dict[str, Any], *, emailed: bool) -> str:
    return render(
        "reports/headline.{lang}.txt.j2",
        report["language"],
        r=report,
        top_targets=[t for t in report["by_target"] if t["key"] is not None][:3],
        hours=format_hours,
        pct=format_percent,
        emailed=emailed,
    )


async def deliver_monthly_report(desk: Desk, settings: Settings, *, now: datetime | None = None) -> bool:
    """Queue last month's report for staff if it is due and not yet sent; True when this call queued it."""
    now = now or datetime.now(UTC)
    period = due_period(settings, now)
    if period is None:
        return False
    chat_id = settings.telegram.staff_chat_id if settings.telegram is not None else None
    key = f"monthly:{period.key}"
    async with desk.sessions() as session:
        # Staff are the enabled accounts (with HELPDESK_STAFF_EMAILS as their seed): the one answer.
        mailable = settings.smtp is not None and settings.mail_from
        emails = sorted(await staff_emails(desk, session)) if mailable else []
        if not emails and chat_id is None:
            return False  # nobody to send to: nothing recorded, so configuring staff later still gets it
        if await session.get(ReportDelivery, key) is not None:
            return False
        # A desk that started after that month (a new installation, the demo) has nothing to report for it.
        first_ticket = await session.scalar(select(func.min(Ticket.created_at)))
        if first_ticket is None or first_ticket >= period.end:
            return False
    report = await build_report(
        desk.sessions,
        period,
        language=settings.report_language,
        response_target_hours=settings.response_target_hours,
        now=now,
    )
    # Jinja rendering of a few hundred rows is quick; the DOCX (the slow format) is not part of the mail.
    text, html = to_markdown(report), to_html(report)
    subject = f"{report['title']}: {report['period']['label']}"
    try:
        async with desk.sessions.begin() as session:
            session.add(
                ReportDelivery(key=key, detail={"totals": report["totals"], "recipients": len(emails)})
            )
            await session.flush()
            for address in emails:
                outbound = OutboundMessage(
                    channel="email",
                    recipient=address,
                    subject=subject,
                    text=text,
                    html=html,
                    message_id=new_message_id(desk.mail_domain),
                    extra={"auto_submitted": "auto-generated"},
                )
                session.add(OutboxItem(channel="email", payload=outbound.to_json()))
            if chat_id is not None:
                outbound = OutboundMessage(
                    channel="telegram", recipient=str(chat_id), text=headline(report, emailed=bool(emails))
                )
                session.add(OutboxItem(channel="telegram", payload=outbound.to_json()))
    except IntegrityError:
        return False  # another process recorded it between our check and our commit
    log.info("monthly report for %s queued for %d staff addresses", period.key, len(emails))
    desk.outbox_written()
    return True
