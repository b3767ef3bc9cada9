"""`helpdesk run`: every configured channel and the delivery worker, until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from helpdesk.config import Settings
from helpdesk.service import open_runtime, serve
from helpdesk.warm_start import warm_start

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser("run", help="run the help desk: channels and delivery, until stopped")
    run.set_defaults(handler=_run)


async def _run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Before "help desk running" below: a supervisor (or a test) may SIGTERM as soon as it reads that line.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with open_runtime(settings, create=True) as runtime:
        # Said once the database is open: a database that cannot be used is the one line an operator sees.
        if settings.telegram is None and settings.imap is None:
            log.warning(
                "no channel configured (HELPDESK_TELEGRAM_TOKEN, HELPDESK_IMAP_HOST): "
                "delivering the outbox only"
            )
        await warm_start(runtime.desk)
        log.info("help desk running; channels: %s", ", ".join(runtime.senders) or "none")
        await serve(runtime, stop)
    log.info("stopped")
    return 0
