"""`helpdesk mail poll [--once]`: fetch waiting mail into tickets (for cron, or to check a mailbox)."""

from __future__ import annotations

import argparse
import asyncio
import signal

from helpdesk.config import ConfigError, Settings
from helpdesk.email.intake import poll_email_once, run_email_intake
from helpdesk.service import open_runtime


def register(subparsers: argparse._SubParsersAction) -> None:
    mail = subparsers.add_parser("mail", help="the email channel")
    actions = mail.add_subparsers(title="mail commands", metavar="ACTION", required=True)
    poll = actions.add_parser("poll", help="fetch waiting mail into tickets")
    poll.add_argument(
        "--once", action="store_true", help="fetch everything waiting, send the receipts, and exit"
    )
    poll.set_defaults(handler=_poll)


async def _poll(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if settings.imap is None:
        raise ConfigError("HELPDESK_IMAP_HOST is not set; the email channel is off")
    async with open_runtime(settings) as runtime:
        if args.once:
            result = await poll_email_once(runtime)
            # Deliver the receipts now too: a cron job has no `helpdesk run` beside it to do it.
            while await runtime.worker.deliver_due():
                pass
            print(
                f"fetched {result.fetched}, ticketed {result.committed}, "
                f"left on the server {result.declined + result.failed}"
            )
            return 0 if not result.failed else 1
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        worker = asyncio.create_task(runtime.worker.run(stop))
        await run_email_intake(runtime, stop)
        await worker
    return 0
