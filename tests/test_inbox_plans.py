"""The inbox's statements are served by indexes on SQLite and PostgreSQL: no full scan of tickets or messages.

As in tests/test_intake_indexes.py the statements are captured while the real inbox runs (every view, every
filter, searches, a next page), then each is explained; on PostgreSQL the plans only tiny tables get
(sequential scans, hash and merge joins that read a table whole) are forbidden, so the plan shows whether
indexes *can* serve the statement, as they must at 100,000 tickets. Beyond bench/plans.py's rule, three
shapes are bounded and allowed:
- a page read in (updated_at, id) order from one of the paging indexes: every page statement has a LIMIT,
  so the walk stops after the page (a status or a channel is a range of that index, not a filter);
- the full-text index answering MATCH (FTS5 reports its virtual table as a "SCAN");
- the count walking a covering index (nothing filters) or a channel's range: it stops at TOTAL_CAP + 1 rows;
- a large id set tested per walked ticket (EXISTS on PostgreSQL): it stops with the page.
"""

from __future__ import annotations

import re
from typing import Any

import bench_modules
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage, Sender
from helpdesk.usecases import inbox as inbox_module
from helpdesk.usecases.inbox import VIEWS, InboxCriteria, inbox
from helpdesk.usecases.receive import receive

_PAGING_WALK = re.compile(
    r"^(SCAN|SEARCH) tickets USING (COVERING )?INDEX ix_tickets_(status_|channel_)?updated_at_id\b"
    r"|^Index (Only )?Scan Backward using ix_tickets_(status_|channel_)?updated_at_id on tickets"
    r"|^Index Cond: \(\(channel\)::text = '[^']*'::text\)$"
)
# FTS5 answering MATCH; SQLite's one-row table standing for an empty id list (a search that found nothing).
_FTS_MATCH = re.compile(r"^SCAN ticket_search VIRTUAL TABLE INDEX \d+:M|^SCAN CONSTANT ROW$")
_BY_CHANNEL = re.compile(
    r"^SEARCH tickets USING (COVERING )?INDEX \w+ \(channel=\?\)$|^Index Cond: \(\(channel\)"
)
_COUNT_WALK = re.compile(r"^SCAN tickets USING COVERING INDEX \w+$|^Index Only Scan using \w+ on tickets")


async def _plans(engine: AsyncEngine, statements: dict[str, Any]) -> dict[str, list[str]]:
    plans = {}
    async with engine.connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        for statement, parameters in statements.items():
            if engine.dialect.name == "postgresql":
                async with raw.transaction():
                    for plan in ("seqscan", "hashjoin", "mergejoin"):
                        await raw.execute(f"SET LOCAL enable_{plan} = off")
                    rows = await raw.fetch("EXPLAIN " + statement, *(parameters or ()))
                plans[statement] = [row[0] for row in rows]
            else:
                cursor = await raw.execute("EXPLAIN QUERY PLAN " + statement, parameters or ())
                plans[statement] = [row[3] for row in await cursor.fetchall()]
    return plans


def _unserved(statement: str, plan: list[str]) -> list[str]:
    assert "LIMIT" in statement  # every inbox statement is bounded
    # The count reads at most TOTAL_CAP + 1 rows through whichever index its filter has.
    counting = statement.lstrip().startswith("SELECT count(*)")
    return [
        line
        for line in bench_modules.load("plans").unserved(plan)
        if not (
            _PAGING_WALK.match(line)
            or _FTS_MATCH.match(line)
            or (counting and (_COUNT_WALK.match(line) or _BY_CHANNEL.match(line)))
        )
    ]


async def test_inbox_views_filters_and_search_are_served_by_indexes(
    desk: Desk, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n, (subject, text) in enumerate(
        [("Wetlands", "Сохранение водно-болотных угодий"), ("Invasive species", "Eradication guidance")]
    ):
        await receive(
            desk,
            InboundMessage(
                channel="email",
                channel_message_id=f"<p{n}@x>",
                sender=Sender(name=f"Person {n}", email=f"p{n}@x.org"),
                subject=subject,
                text=text,
            ),
        )
    criteria = [InboxCriteria(view=view, viewer="staff-a") for view in VIEWS]
    criteria += [
        InboxCriteria(party="KZ"),
        InboxCriteria(target=3),
        InboxCriteria(core_function=5),
        InboxCriteria(channel="telegram"),
        InboxCriteria(status="waiting"),
        InboxCriteria(assignee="staff-a"),
        InboxCriteria(assignee="none"),
        InboxCriteria(q="угодья"),
        InboxCriteria(q="invasive guidance", view="unassigned"),
        InboxCriteria(per_page=1),
    ]
    statements: dict[str, Any] = {}

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.setdefault(statement, parameters)

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        for where in criteria:
            first = await inbox(desk, where, response_target_hours=48)
        # A search or a target with many tickets (as at 100,000 tickets) takes the other plan on SQLite.
        monkeypatch.setattr(inbox_module, "MANY", 1)
        await inbox(desk, InboxCriteria(q="guidance"), response_target_hours=48)
        await inbox(desk, InboxCriteria(target=3, party="KZ"), response_target_hours=48)
        monkeypatch.undo()
        second = await inbox(desk, InboxCriteria(after=first.next_after), response_target_hours=48)
        assert first.has_next and len(second.rows) == 1
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)

    assert any("ticket_search" in s for s in statements) and any("ticket_targets" in s for s in statements)
    plans = await _plans(engine, statements)
    unserved = {s: bad for s, plan in plans.items() if (bad := _unserved(s, plan))}
    assert unserved == {}
