"""`helpdesk demo`: watch the whole help desk work on loopback, with no accounts anywhere."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from pathlib import Path

# The servers the stand-ins run (standins/): the `demo` extra, which a plain install leaves out.
DEMO_LIBRARIES = ("aiohttp", "aiosmtpd", "pymap")
INSTALL_DEMO = "pip install 'tscc-helpdesk[demo]'"


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="run the help desk against local Telegram, IMAP and SMTP stand-ins and show the result",
        description="Run the help desk against local stand-ins and keep its tickets in helpdesk.db in the "
        "working folder (or DIR), where `helpdesk tickets list` finds them. It writes only into a database "
        "it made itself: a helpdesk.db made otherwise is left alone, a previous demo's is replaced.",
    )
    demo.add_argument("--dir", type=Path, default=Path(), help="folder for the demo's helpdesk.db")
    demo.add_argument(
        "--serve",
        action="store_true",
        help="then keep running with the staff web workspace on 127.0.0.1 (prints a login) until Ctrl-C",
    )
    demo.add_argument("--port", type=int, default=8080, help="the workspace's port with --serve")
    demo.set_defaults(handler=_demo)


def missing_demo_libraries() -> list[str]:
    """The demo extra's libraries this Python cannot import (pymap runs as a subprocess, so look them up
    rather than wait for the demo to fail halfway)."""
    missing = []
    for name in DEMO_LIBRARIES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ImportError:
            found = False
        if not found:
            missing.append(name)
    return missing


async def _demo(args: argparse.Namespace) -> int:
    if missing := missing_demo_libraries():
        print(f"helpdesk demo needs {', '.join(missing)} (the demo extra): {INSTALL_DEMO}", file=sys.stderr)
        return 2
    if not args.verbose:
        # The demo's story is on stdout; the stand-ins' and libraries' chatter would bury it.
        logging.getLogger().setLevel(logging.WARNING)
    # Imported here: every `helpdesk` command builds the parser, and only the demo needs the stand-ins.
    from helpdesk.demo import run_demo

    return await run_demo(sys.stdout, args.dir, serve_port=args.port if args.serve else None)
