"""The monthly report in `helpdesk run`: checked on start and hourly, sent once when last month's is due.

Whether it is due and the sending-once rule are ``helpdesk.reports.monthly.deliver_monthly_report``; this
job only decides when to ask.
"""

from __future__ import annotations

import asyncio
import logging

from helpdesk.config import Settings
from helpdesk.desk import Desk
from helpdesk.jobs.periodic import every
from helpdesk.reports.monthly import deliver_monthly_report

log = logging.getLogger(__name__)

CHECK_INTERVAL = 3600.0


async def run_monthly_reports(
    desk: Desk, settings: Settings, stop: asyncio.Event, *, interval: float = CHECK_INTERVAL
) -> None:
    """Check hourly (and on start) whether last month's report is due; until `stop` is set."""
    await every(
        interval,
        stop,
        lambda: deliver_monthly_report(desk, settings),
        log=log,
        failure="monthly report failed",
    )
