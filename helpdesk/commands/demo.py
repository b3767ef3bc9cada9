"""`helpdesk demo`: watch the whole help desk work on loopback, with no accounts anywhere."""

from __future__ import annotations

import argparse
import logging
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo", help="run the help desk against local Telegram, IMAP and SMTP stand-ins and show the result"
    )
    demo.set_defaults(handler=_demo)


async def _demo(args: argparse.Namespace) -> int:
    if not args.verbose:
        # The demo's story is on stdout; the stand-ins' and libraries' chatter would bury it.
        logging.getLogger().setLevel(logging.WARNING)
    # Imported here: every `helpdesk` command builds the parser, and only the demo needs the stand-ins.
    from helpdesk.demo import run_demo

    return await run_demo(sys.stdout)
