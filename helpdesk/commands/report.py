"""`helpdesk report`: a month's or a period's figures for the Centre's activity report, in five formats."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import date
from pathlib import Path

from helpdesk.config import Settings
from helpdesk.reports.build import build_report
from helpdesk.reports.period import Period
from helpdesk.reports.render import FORMATS, render_report_async
from helpdesk.service import open_runtime


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="monthly or period summary: figures, charts, the activity report's text",
        description="Figures for a month (--month 2026-10) or a period (--from 2025-01-01 --to 2026-04-30), "
        "counted in the Centre's time zone (HELPDESK_TIMEZONE): requests by channel, Party, KM-GBF target, "
        "core function, status and assignee, response and resolution times, the comparison with the "
        "previous period, anonymised examples, and the summary for the activity report.",
    )
    when = parser.add_mutually_exclusive_group(required=True)
    when.add_argument("--month", help="a calendar month, YYYY-MM")
    when.add_argument("--from", dest="first", type=_day, help="first day of a period, YYYY-MM-DD")
    parser.add_argument("--to", dest="last", type=_day, help="last day of the period (included), YYYY-MM-DD")
    parser.add_argument("--format", choices=FORMATS, default="md", help="default: md")
    parser.add_argument("--lang", choices=("en", "ru"), default="en", help="language of the report")
    parser.add_argument("--out", type=Path, help="write to this file (required for docx unless piped)")
    parser.set_defaults(handler=_report)


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a day as YYYY-MM-DD, got {value!r}") from None


async def _report(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    try:
        if args.month:
            if args.last:
                raise ValueError("--to goes with --from, not with --month")
            period = Period.month(args.month, settings.timezone)
        else:
            if args.last is None:
                raise ValueError("--from needs --to (the last day of the period)")
            period = Period(args.first, args.last, settings.timezone)
    except ValueError as exc:
        print(f"helpdesk report: {exc}", file=sys.stderr)
        return 2
    if args.format == "docx" and args.out is None and sys.stdout.isatty():
        print("helpdesk report: a DOCX goes to a file: add --out report.docx", file=sys.stderr)
        return 2
    async with open_runtime(settings) as runtime:
        report = await build_report(
            runtime.desk.sessions,
            period,
            language=args.lang,
            response_target_hours=settings.response_target_hours,
        )
    content = await render_report_async(report, args.format)
    if args.out is not None:
        await asyncio.to_thread(_write, args.out, content, args.format)
        print(f"wrote {args.out}", file=sys.stderr)
    elif isinstance(content, bytes):
        sys.stdout.buffer.write(content)
        sys.stdout.flush()
    else:
        sys.stdout.write(content)
    return 0


def _write(path: Path, content: str | bytes, fmt: str) -> None:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        # A byte-order mark lets Excel open the Cyrillic of a CSV as UTF-8.
        path.write_text(content, encoding="utf-8-sig" if fmt == "csv" else "utf-8")
