"""Retention on SQLite and PostgreSQL: only tickets closed longer ago than the period are anonymised, the
report figures stay, a requester with a newer ticket is kept; the setting. The job is in ``test_jobs``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from personal_data_people import BOB, requester_ticket, set_ticket, this_month, traces

from helpdesk.config import ConfigError, Settings
from helpdesk.desk import Desk
from helpdesk.messages import Sender
from helpdesk.reports import Period, build_report
from helpdesk.usecases.personal_data.retention import apply_retention


async def test_retention_anonymises_only_old_closed_tickets(desk: Desk) -> None:
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=500), now - timedelta(days=30)
    gone = Sender(name="Gulnara Old", email="gulnara@old.example")
    kept = Sender(name="Kamila Both", email="kamila@both.example")
    g1 = await requester_ticket(desk, gone, 1, "old request rhino-lynx-1111")
    k1 = await requester_ticket(desk, kept, 2, "old request ibex-crane-2222")
    k2 = await requester_ticket(desk, kept, 3, "new request ibex-crane-3333")
    o1 = await requester_ticket(desk, BOB, 4, "still open saiga-4444")
    await set_ticket(desk, g1, status="closed", closed=old, created=old - timedelta(days=3))
    await set_ticket(desk, k1, status="closed", closed=old, created=old - timedelta(days=3))
    await set_ticket(desk, k2, status="closed", closed=recent, created=recent - timedelta(days=3))
    await set_ticket(desk, o1, status="open", closed=None, created=old)
    old_month = Period.month(old.astimezone(this_month().zone).strftime("%Y-%m"), "Asia/Tashkent")
    before = await build_report(desk.sessions, old_month, now=now)

    dry = await apply_retention(desk, 12, apply=False)
    assert sorted(dry.tickets) == sorted([g1, k1]) and len(dry.requesters) == 1
    assert await traces(desk, ["rhino-lynx-1111", "ibex-crane-2222"])  # nothing changed yet

    applied = await apply_retention(desk, 12, apply=True)
    assert sorted(applied.tickets) == sorted([g1, k1])
    assert await traces(desk, ["rhino-lynx-1111", "ibex-crane-2222", "Gulnara", "gulnara@old.example"]) == []
    # Newer and open tickets, and a requester with a newer ticket, are kept.
    assert await traces(desk, ["ibex-crane-3333"]) and await traces(desk, ["saiga-4444"])
    assert any(t.startswith("requesters.") for t in await traces(desk, ["kamila@both.example"]))
    after = await build_report(desk.sessions, old_month, now=now)
    before.pop("examples"), after.pop("examples")
    assert after == before

    again = await apply_retention(desk, 12, apply=True)
    assert again.tickets == [] and again.requesters == []


def test_retention_setting(workdir: Path) -> None:
    assert Settings.from_env({}).retention_months == 0
    assert Settings.from_env({"HELPDESK_RETENTION_MONTHS": "24"}).retention_months == 24
    with pytest.raises(ConfigError, match="HELPDESK_RETENTION_MONTHS"):
        Settings.from_env({"HELPDESK_RETENTION_MONTHS": "two years"})
    with pytest.raises(ConfigError, match="HELPDESK_RETENTION_MONTHS"):
        Settings.from_env({"HELPDESK_RETENTION_MONTHS": "-1"})
