"""`helpdesk tickets search [Q]`: the inbox on the command line (views, filters, full-text search, pages)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from helpdesk import lifecycle
from helpdesk.config import Settings
from helpdesk.service import open_runtime
from helpdesk.usecases.inbox import ACTIVE_STATUS, MAX_PER_PAGE, VIEWS, InboxCriteria, inbox


def register(actions: argparse._SubParsersAction) -> None:
    search = actions.add_parser(
        "search",
        help="the inbox: a view, filters and full-text search, newest activity first",
        description="Search subject, messages and requester (every word, any form of it); the last line "
        "gives the --after value of the next page.",
    )
    search.add_argument("q", nargs="?", default="", help="words to find (optional)")
    search.add_argument("--view", choices=list(VIEWS), default="all")
    search.add_argument("--as", dest="viewer", help="the staff handle 'mine' means")
    search.add_argument("--party", help="ISO code of the Party, e.g. UZ")
    search.add_argument("--target", type=int, help="KM-GBF target, 1–23")
    search.add_argument("--core-function", type=int, help="core function, 1–11")
    search.add_argument("--channel", choices=("telegram", "email"))
    search.add_argument("--status", choices=(*lifecycle.Status, ACTIVE_STATUS))
    search.add_argument("--assignee", help="staff handle, or 'none' for unassigned")
    search.add_argument("--per-page", type=int, default=50, help=f"1–{MAX_PER_PAGE}")
    search.add_argument("--after", help="the cursor the previous page ended with")
    search.add_argument("--format", choices=("table", "json"), default="table")
    search.set_defaults(handler=_search)


async def _search(args: argparse.Namespace) -> int:
    criteria = InboxCriteria(
        view=args.view,
        party=args.party,
        target=args.target,
        core_function=args.core_function,
        channel=args.channel,
        status=args.status,
        assignee=args.assignee,
        q=args.q,
        after=args.after,
        per_page=args.per_page,
        viewer=args.viewer,
    )
    settings = Settings.from_env()
    async with open_runtime(settings) as runtime:
        page = await inbox(runtime.desk, criteria, response_target_hours=settings.response_target_hours)
    total = f"{page.total:,}{'+' if page.total_capped else ''}"
    if args.format == "json":
        rows = [
            {**asdict(r), "created_at": r.created_at.isoformat(), "updated_at": r.updated_at.isoformat()}
            for r in page.rows
        ]
        print(json.dumps({"total": total, "next_after": page.next_after, "rows": rows}, ensure_ascii=False))
        return 0
    print(f"{'REFERENCE':<16} {'STATUS':<9} {'PARTY':<5} {'TARGET':<6} {'ASSIGNEE':<12} SUBJECT")
    for row in page.rows:
        subject = row.subject if len(row.subject) <= 50 else row.subject[:49] + "…"
        late = "!" if row.overdue else " "
        print(
            f"{row.reference:<16} {row.status:<8}{late} {row.party or '-':<5} {row.top_target or '-'!s:<6} "
            f"{row.assignee or '-':<12} {subject}"
        )
    more = f"; next page: --after {page.next_after}" if page.next_after else ""
    print(f"{len(page.rows)} of {total} tickets (! past the response target){more}")
    return 0
