"""The one `helpdesk` entry point."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import logging
import sys
from collections.abc import Sequence

from helpdesk.channels import ChannelStartError
from helpdesk.config import ConfigError
from helpdesk.db.reachable import DatabaseUnavailable
from helpdesk.usecases.errors import DeskError

# Each module registers its own sub-command(s); a module that is not there yet is simply not offered.
COMMAND_MODULES = (
    "run",
    "demo",
    "db",
    "tickets",
    "mail",
    "health",
    "classify",
    "kb",
    "report",
    "requester",
    "staff",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="helpdesk",
        description="TSCC Help Desk: Telegram and email requests to the Centre, tracked as tickets.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more (debug level)")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"helpdesk.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"helpdesk.commands.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # httpx logs every request URL at INFO, and a Bot API URL carries the bot token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if not args.verbose:
        logging.getLogger("alembic").setLevel(logging.WARNING)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        result = asyncio.run(handler(args)) if inspect.iscoroutinefunction(handler) else handler(args)
    except ConfigError as exc:
        print(f"helpdesk: configuration: {exc}", file=sys.stderr)
        return 2
    except DatabaseUnavailable as exc:
        print(f"helpdesk: {exc}", file=sys.stderr)
        return 2
    except ChannelStartError as exc:
        print(f"helpdesk: {exc}", file=sys.stderr)
        return 1
    except DeskError as exc:
        print(f"helpdesk: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
