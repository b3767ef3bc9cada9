"""The retention period in `helpdesk run`: closed tickets older than HELPDESK_RETENTION_MONTHS anonymised.

Checked on start and then every few hours; each run only touches tickets not yet anonymised (their
``anonymised`` audit event marks them), so a restart or a second service repeats nothing.
"""

from __future__ import annotations

import asyncio
import logging

from helpdesk.desk import Desk
from helpdesk.jobs.periodic import every
from helpdesk.usecases.personal_data.retention import apply_retention

log = logging.getLogger(__name__)

CHECK_INTERVAL = 6 * 3600.0


async def run_retention(
    desk: Desk, months: int, stop: asyncio.Event, *, interval: float = CHECK_INTERVAL
) -> None:
    """Anonymise what has passed the retention period, now and every `interval` seconds, until `stop`."""

    async def check() -> None:
        result = await apply_retention(desk, months, apply=True)
        if result.tickets or result.requesters:
            log.info(
                "retention: anonymised %d tickets closed before %s and forgot %d requesters",
                len(result.tickets),
                result.cutoff.date().isoformat(),
                len(result.requesters),
            )

    await every(interval, stop, check, log=log, failure="retention run failed")
