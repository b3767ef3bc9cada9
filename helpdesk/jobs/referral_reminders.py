"""Referral reminders in `helpdesk run`: checked on start and then every hour (see the use-case)."""

from __future__ import annotations

import asyncio
import logging

from helpdesk.desk import Desk
from helpdesk.jobs.periodic import every
from helpdesk.usecases.referral_reminders import remind_referrals

log = logging.getLogger(__name__)

CHECK_INTERVAL = 3600.0


async def run_referral_reminders(
    desk: Desk, days: int, stop: asyncio.Event, *, interval: float = CHECK_INTERVAL
) -> None:
    async def check() -> None:
        run = await remind_referrals(desk, days)
        if run.reminded or run.no_answer:
            log.info("referrals: %d reminded, %d without answer", len(run.reminded), len(run.no_answer))

    await every(interval, stop, check, log=log, failure="referral reminder run failed")
