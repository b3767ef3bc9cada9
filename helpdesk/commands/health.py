"""`helpdesk health`: check the database and every configured channel; exit 1 when any check fails."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from helpdesk.config import Settings
from helpdesk.health import run_checks


def register(subparsers: argparse._SubParsersAction) -> None:
    health = subparsers.add_parser("health", help="check the database and the configured channels")
    health.add_argument("--format", choices=("text", "json"), default="text")
    health.set_defaults(handler=_health)


async def _health(args: argparse.Namespace) -> int:
    checks = await run_checks(Settings.from_env())
    if args.format == "json":
        print(json.dumps([asdict(c) for c in checks], ensure_ascii=False, indent=2))
    else:
        for check in checks:
            print(f"{'ok  ' if check.ok else 'FAIL'} {check.name:<9} {check.detail}")
    return 0 if all(c.ok for c in checks) else 1
