"""`helpdesk demo`: watch the whole help desk work on loopback, with no accounts anywhere."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="run the help desk against local Telegram, IMAP and SMTP stand-ins and show the result",
        description="Run the help desk against local stand-ins and keep its tickets in helpdesk.db in the "
        "working folder (or DIR), where `helpdesk tickets list` finds them. It writes only into a database "
        "it made itself: a helpdesk.db made otherwise is left alone, a previous demo's is replaced.",
    )
    demo.add_argument("--dir", type=Path, default=Path(), help="folder for the demo's helpdesk.db")
    demo.set_defaults(handler=_demo)


async def _demo(args: argparse.Namespace) -> int:
    if not args.verbose:
        # The demo's story is on stdout; the stand-ins' and libraries' chatter would bury it.
        logging.getLogger().setLevel(logging.WARNING)
    # Imported here: every `helpdesk` command builds the parser, and only the demo needs the stand-ins.
    from helpdesk.demo import run_demo

    return await run_demo(sys.stdout, args.dir)
