"""Reports: figures against a hand-counted fixture on SQLite and PostgreSQL, every format, the monthly mail.

The fixture (the Centre's zone is Asia/Tashkent, UTC+5; October 2026 runs from 30 Sep 19:00 to 31 Oct 19:00
UTC). Tickets, with what counts in October:
  A  30 Sep 20:00 UTC = 1 Oct local: received in October (crosses the UTC month boundary). Telegram, UZ,
     target 3 / function 2, answered after 2 h, resolved after 48 h; 2 resources sent.
  B  31 Oct 20:00 UTC = 1 Nov local: not October (November).
  C  10 Oct: email, KZ, target 3 / function 5, answered after 10 h, open, assigned to a proposed expert.
  D  15 Oct: Telegram, no Party, unclassified, never answered: waiting past the 48 h target.
  E  20 Sep (September), resolved 5 Oct after 370 h: resolved in October, received in September.
  F  20 Oct: email, UZ, target 1 / function 2, answered after 60 h (late), closed 2 Nov: open at
     October's end.
  G  31 Oct 18:00 UTC = 23:00 local: October; email, AM, target 3 / function 2; not answered, not yet due.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from helpdesk.config import Secret, Settings, SmtpSettings, TelegramSettings
from helpdesk.db.models import Base, Message, OutboxItem, ReportDelivery, Requester, StaffAccount, Ticket
from helpdesk.desk import Desk
from helpdesk.reports import Period, build_report
from helpdesk.reports.anonymise import anonymise
from helpdesk.reports.monthly import deliver_monthly_report
from helpdesk.reports.render import FORMATS, render_report, render_report_async
from helpdesk.service import standard_composers

NOW = datetime(2026, 12, 1, tzinfo=UTC)
PERSONAL = (
    "Aziza",
    "Karimova",
    "aziza.karimova@mail.uz",
    "+998",
    "90 123",
    "drive.google",
    "@aziza_k",
    "Rustam",
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def classified(target: int, core_function: int) -> dict[str, Any]:
    return {
        "language": "en",
        "targets": [{"target": target, "score": 0.9, "evidence": []}],
        "core_functions": [{"core_function": core_function, "score": 0.8, "evidence": []}],
        "party": None,
        "unclassified": False,
        "source": "classifier",
    }


UNCLASSIFIED = {"language": "ru", "targets": [], "core_functions": [], "party": None, "unclassified": True}


def experts(*ids: str) -> dict[str, Any]:
    return {"experts": [{"expert": i, "name": i, "score": 0.5, "reasons": []} for i in ids], "resources": []}


async def seed(desk: Desk) -> None:
    async with desk.sessions.begin() as session:
        aziza = Requester(name="Aziza Karimova", email="aziza.karimova@mail.uz", party="UZ")
        other = Requester(name="Rustam", telegram_user_id=501, telegram_chat_id=501)
        session.add_all([aziza, other])
        await session.flush()

        def ticket(ref: str, created: datetime, **kw: Any) -> Ticket:
            values: dict[str, Any] = {
                "reference": f"TSCC-2026-{ref}",
                "subject": f"Request {ref}",
                "channel": "email",
                "status": "open",
                "requester_id": aziza.id,
                "created_at": created,
                "updated_at": created,
                "tags": [],
            }
            values.update(kw)
            return Ticket(**values)

        a = ticket(
            "0001", utc(2026, 9, 30, 20), channel="telegram", party="UZ", status="resolved",
            requester_id=other.id, classification=classified(3, 2), matches=experts("expert-2"),
            first_response_at=utc(2026, 9, 30, 22), resolved_at=utc(2026, 10, 2, 20),
        )  # fmt: skip
        b = ticket("0002", utc(2026, 10, 31, 20), party="UZ", classification=classified(3, 2))
        c = ticket(
            "0003", utc(2026, 10, 10, 6), party="KZ", classification=classified(3, 5),
            matches=experts("expert-1", "expert-2"), assignee="expert-1",
            first_response_at=utc(2026, 10, 10, 16),
        )  # fmt: skip
        d = ticket("0004", utc(2026, 10, 15), channel="telegram", status="new", classification=UNCLASSIFIED)
        e = ticket(
            "0005", utc(2026, 9, 20), party="UZ", status="resolved", classification=classified(1, 2),
            first_response_at=utc(2026, 9, 20, 5), resolved_at=utc(2026, 10, 5, 10),
        )  # fmt: skip
        f = ticket(
            "0006", utc(2026, 10, 20), party="UZ", status="closed", classification=classified(1, 2),
            first_response_at=utc(2026, 10, 22, 12), resolved_at=utc(2026, 11, 2), closed_at=utc(2026, 11, 2),
        )  # fmt: skip
        g = ticket("0007", utc(2026, 10, 31, 18), party="AM", status="new", classification=classified(3, 2))
        session.add_all([a, b, c, d, e, f, g])
        await session.flush()
        session.add(
            Message(
                ticket_id=a.id, kind="inbound", channel="telegram", author="Aziza Karimova",
                body="Dear colleagues,\nMy name is Aziza Karimova, I coordinate OECM work in Karakalpakstan. "
                "We need the criteria for other effective area-based conservation measures. Call me on "
                "+998 90 123 45 67, write to aziza.karimova@mail.uz or @aziza_k, the draft is at "
                "https://drive.google.com/file/d/1x?usp=aziza\nBest regards,\nAziza Karimova",
                created_at=a.created_at,
            )
        )  # fmt: skip
        session.add(
            Message(ticket_id=c.id, kind="inbound", channel="email", author="aziza.karimova@mail.uz",
                    body="Здравствуйте, Азиза! Нужна помощь с картой ООПТ. С уважением, Rustam",
                    created_at=c.created_at)
        )  # fmt: skip
        sent = [{"title": "OECM guidance", "url": "https://example.org/oecm"}]
        for ticket_row, when, resources in (
            (a, a.created_at, [*sent, {"title": "PA toolkit", "url": "https://example.org/pa"}]),
            (c, c.created_at, sent),
            (e, e.created_at, sent),
        ):
            payload = {"channel": "email", "recipient": "x", "text": "ack", "extra": {"resources": resources}}
            session.add(
                OutboxItem(
                    ticket_id=ticket_row.id, channel="email", payload=payload, status="sent", created_at=when
                )
            )
        # Queued in October but never delivered: not counted.
        failed = {"channel": "email", "recipient": "x", "text": "ack", "extra": {"resources": sent}}
        session.add(
            OutboxItem(
                ticket_id=g.id, channel="email", status="failed", created_at=g.created_at, payload=failed
            )
        )


def counts(rows: list[dict[str, Any]]) -> dict[Any, int]:
    return {row["key"]: row["count"] for row in rows}


async def test_october_figures_hand_counted(desk: Desk) -> None:
    await seed(desk)
    report = await build_report(desk.sessions, Period.month("2026-10"), now=NOW)

    assert report["totals"] == {
        "received": 5, "resolved": 2, "open_at_end": 4, "unclassified": 1, "unclassified_share": 0.2,
        "parties_served": 3,
    }  # fmt: skip
    assert counts(report["by_channel"]) == {"email": 3, "telegram": 2}
    assert counts(report["by_party"]) == {"UZ": 2, "KZ": 1, "AM": 1, None: 1}
    assert counts(report["by_target"]) == {3: 3, 1: 1, None: 1}
    assert report["by_target"][0]["label"].startswith("Target 3 — Conserve 30")
    assert counts(report["by_core_function"]) == {2: 3, 5: 1, None: 1}
    assert counts(report["by_status"]) == {"new": 2, "open": 1, "resolved": 1, "closed": 1}
    assert counts(report["by_assignee"]) == {None: 4, "expert-1": 1}
    assert report["times"] == {
        "first_response": {"count": 3, "median_hours": 10.0, "p90_hours": 50.0},
        "resolution": {"count": 2, "median_hours": 209.0, "p90_hours": 337.8},
    }
    assert report["response_target"] == {
        "hours": 48.0, "within": 2, "answered_late": 1, "waiting_past_target": 1, "past_target": 2,
        "within_share": 0.5,
    }  # fmt: skip
    assert report["experts"] == {
        "proposed": 2, "tickets_with_proposals": 2, "engaged": 1, "tickets_with_engaged_expert": 1,
    }  # fmt: skip
    assert report["resources"] == {"links_sent": 3, "distinct": 2, "tickets": 2}
    months = counts(report["by_month"])
    assert list(months)[-1] == "2026-10" and len(months) == 12
    assert months["2026-10"] == 5 and months["2026-09"] == 1 and sum(months.values()) == 6
    # September: E only (A is October in Tashkent though September in UTC).
    assert report["previous"]["totals"]["received"] == 1
    assert report["previous"]["totals"]["open_at_end"] == 1
    assert report["previous"]["totals"]["resolved"] == 0
    comparison = {row["key"]: row for row in report["comparison"]}
    assert comparison["received"] == {"key": "received", "current": 5, "previous": 1, "change": 4}
    assert report["summary"]["status"] == "Completed"
    assert "5 requests from 3 of the 9 Parties" in report["summary"]["details"]
    assert [e["target"] for e in report["examples"]] == [3, 1]


async def test_boundary_month_and_empty_month(desk: Desk) -> None:
    await seed(desk)
    november = await build_report(desk.sessions, Period.month("2026-11"), now=NOW)
    assert november["totals"]["received"] == 1  # B: 31 Oct 20:00 UTC is 1 November in Tashkent
    assert november["totals"]["resolved"] == 1  # F closed 2 Nov
    assert november["totals"]["open_at_end"] == 4  # B, C, D, G
    empty = await build_report(desk.sessions, Period.month("2026-06"), now=NOW, language="ru")
    assert empty["totals"] == {
        "received": 0, "resolved": 0, "open_at_end": 0, "unclassified": 0, "unclassified_share": None,
        "parties_served": 0,
    }  # fmt: skip
    assert empty["times"]["first_response"] == {"count": 0, "median_hours": None, "p90_hours": None}
    assert empty["by_target"] == [] and empty["examples"] == []
    assert empty["summary"]["status"] == "В процессе"
    for fmt in FORMATS:
        assert render_report(empty, fmt)  # every format copes with nothing to show
    # Another time zone moves the boundary: in UTC, A belongs to September.
    utc_october = await build_report(desk.sessions, Period.month("2026-10", "UTC"), now=NOW)
    assert utc_october["totals"]["received"] == 5  # C, D, F, G and B (31 Oct 20:00 UTC); not A


async def test_period_and_previous_period(desk: Desk) -> None:
    await seed(desk)
    from datetime import date

    period = Period(date(2026, 9, 1), date(2026, 11, 30))
    report = await build_report(desk.sessions, period, now=NOW)
    assert report["totals"]["received"] == 7
    assert report["previous_period"]["from"] == "2026-06-02"  # the same 91 days just before
    assert [m["key"] for m in report["by_month"]][-3:] == ["2026-09", "2026-10", "2026-11"]


async def test_no_personal_data_in_any_format(desk: Desk) -> None:
    await seed(desk)
    for language in ("en", "ru"):
        report = await build_report(desk.sessions, Period.month("2026-10"), now=NOW, language=language)
        examples = [text for e in report["examples"] for text in e["requests"]]
        assert any("criteria for other effective area-based conservation measures" in t for t in examples)
        for fmt in FORMATS:
            content = await render_report_async(report, fmt)
            text = docx_text(content) if fmt == "docx" else str(content)
            for needle in PERSONAL:
                assert needle.lower() not in text.lower(), (fmt, needle)
            assert "Азиза" not in text


def test_anonymise_rules() -> None:
    text = anonymise(
        "Hello Mr Petrov, this is Dr. Ivanova. My phone 8 (712) 200-00-00, "
        "site www.example.uz/people/ivanova. "
        "Targets for 2024-2030 and 30 % coverage. Спасибо, Иванова",
        ["Elena Ivanova"],
    )
    assert "Petrov" not in text and "Ivanova" not in text and "Иванова" not in text
    assert "200-00-00" not in text and "example.uz" not in text
    assert "2024-2030" in text and "30 %" in text


def docx_text(content: bytes | str) -> str:
    from docx import Document

    assert isinstance(content, bytes)
    document = Document(io.BytesIO(content))
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        parts.extend(cell.text for row in table.rows for cell in row.cells)
    return "\n".join(parts)


async def test_docx_has_headings_and_real_tables(desk: Desk) -> None:
    from docx import Document

    await seed(desk)
    report = await build_report(desk.sessions, Period.month("2026-10"), now=NOW)
    document = Document(io.BytesIO(await render_report_async(report, "docx")))
    headings = [p.text for p in document.paragraphs if p.style.name.startswith(("Heading", "Title"))]
    assert headings[0] == "TSCC Help Desk report: October 2026"
    assert "By KM-GBF target (primary)" in headings and "Summary for the activity report" in headings
    summary = document.tables[0]
    assert summary.rows[1].cells[0].text == "Help desk/One-stop service centre established"
    assert summary.rows[1].cells[1].text == "Completed"
    by_target = next(t for t in document.tables if t.rows[0].cells[0].text == "Item" and
                     t.rows[1].cells[0].text.startswith("Target 3"))  # fmt: skip
    assert [c.text for c in by_target.rows[1].cells] == [report["by_target"][0]["label"], "3", "60.0 %"]
    assert len(document.tables) >= 12


async def test_csv_and_json(desk: Desk) -> None:
    import csv

    await seed(desk)
    report = await build_report(desk.sessions, Period.month("2026-10"), now=NOW)
    rows = list(csv.DictReader(io.StringIO(render_report(report, "csv"))))
    value = {(r["section"], r["key"], r["measure"]): r["value"] for r in rows}
    assert value[("totals", "received", "received")] == "5"
    assert value[("by_target", "3", "count")] == "3"
    assert value[("times", "first_response", "p90_hours")] == "50.0"
    assert json.loads(render_report(report, "json"))["totals"]["received"] == 5


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium package (installed by .ci/run)")
async def test_html_charts_render_in_headless_chromium(desk: Desk, tmp_path: Path) -> None:
    await seed(desk)
    report = await build_report(desk.sessions, Period.month("2026-10"), now=NOW)
    page = tmp_path / "report.html"
    page.write_text(render_report(report, "html"), encoding="utf-8")
    assert "<script" not in page.read_text() and "http" not in re.sub(r'xmlns="[^"]+"', "", page.read_text())
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'p'}",
        "--dump-dom", page.as_uri(),
    ]  # fmt: skip
    result = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=90)
    dom = result.stdout
    for chart in ("chart-by-target", "chart-by-party", "chart-by-month"):
        figure = re.search(rf'<figure id="{chart}">(.*?)</figure>', dom, re.S)
        assert figure is not None, chart
        assert "<svg" in figure.group(1) and len(re.findall(r'<rect class="bar"', figure.group(1))) >= 3
    assert "Target 3 — Conserve 30" in dom


def staff_settings(url: str) -> Settings:
    return Settings(
        database_url=url,
        smtp=SmtpSettings(host="127.0.0.1", port=2525, user=None, password=None, tls=False),
        mail_from="helpdesk@tscc.example.org",
        staff_emails=frozenset({"lead@tscc.example.org", "staff@tscc.example.org"}),
        telegram=TelegramSettings(token=Secret("1:x"), api_url="http://127.0.0.1/bot", staff_chat_id=-1001),
    )


async def test_monthly_delivery_once_early_in_the_month(desk: Desk, database_url: str) -> None:
    await seed(desk)
    settings = staff_settings(database_url)
    desk = dataclasses.replace(desk, staff_emails=settings.staff_emails)
    # Staff are the accounts, the settings' addresses their seed: an account-only member gets the report,
    # a disabled account does not, even when the seed names it.
    async with desk.sessions.begin() as session:
        session.add(StaffAccount(email="boss@tscc.example.org", name="Boss", role="admin"))
        session.add(
            StaffAccount(
                email="staff@tscc.example.org", name="Gone", role="agent", disabled_at=utc(2026, 9, 1)
            )
        )
    # 07:59 in Tashkent on 1 November: not yet (the default hour is 08).
    assert not await deliver_monthly_report(desk, settings, now=utc(2026, 11, 1, 2, 59))
    assert await deliver_monthly_report(desk, settings, now=utc(2026, 11, 1, 3, 0))
    # A restart later that day, or the next hourly check, finds it recorded.
    assert not await deliver_monthly_report(desk, settings, now=utc(2026, 11, 1, 4, 0))
    assert not await deliver_monthly_report(desk, settings, now=utc(2026, 11, 20))
    async with desk.sessions() as session:
        reports = select(OutboxItem).where(OutboxItem.ticket_id.is_(None)).order_by(OutboxItem.id)
        items = list(await session.scalars(reports))
        delivery = await session.get(ReportDelivery, "monthly:2026-10")
    assert delivery is not None and delivery.detail["totals"]["received"] == 5
    emails = [i for i in items if i.channel == "email"]
    assert sorted(i.payload["recipient"] for i in emails) == [
        "boss@tscc.example.org",
        "lead@tscc.example.org",
    ]
    assert emails[0].payload["subject"] == "Отчёт службы поддержки TSCC: октябрь 2026"
    assert "<svg" in emails[0].payload["html"] and "Получено запросов" in emails[0].payload["text"]
    (telegram,) = [i for i in items if i.channel == "telegram"]
    assert telegram.payload["recipient"] == "-1001"
    assert telegram.payload["text"].startswith("Служба поддержки TSCC — октябрь 2026\nПолучено: 5 (ранее: 1)")
    # December's turn comes a month later.
    assert await deliver_monthly_report(desk, settings, now=utc(2026, 12, 1, 3))
    async with desk.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(ReportDelivery)) == 2


async def test_monthly_delivery_skips_months_before_the_desk_existed(desk: Desk, database_url: str) -> None:
    settings = staff_settings(database_url)
    assert not await deliver_monthly_report(desk, settings, now=utc(2026, 11, 1, 3))
    async with desk.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(ReportDelivery)) == 0


def test_report_command(database_url: str, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from helpdesk.cli import main
    from helpdesk.db.engine import make_engine, make_sessions

    async def prepare() -> None:
        engine = make_engine(database_url)
        async with engine.begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                await connection.exec_driver_sql(f"DELETE FROM {table.name}")
        await seed(Desk(sessions=make_sessions(engine), composers=standard_composers()))
        await engine.dispose()

    asyncio.run(prepare())
    monkeypatch.setenv("HELPDESK_DATABASE_URL", database_url)
    for fmt in FORMATS:
        out = workdir / f"october.{fmt}"
        assert main(["report", "--month", "2026-10", "--format", fmt, "--lang", "ru", "--out", str(out)]) == 0
        assert out.stat().st_size > 500
    data = json.loads((workdir / "october.json").read_text(encoding="utf-8"))
    assert data["totals"]["received"] == 5 and data["language"] == "ru"
    assert (workdir / "october.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert main(["report", "--from", "2026-10-01", "--to", "2026-10-31", "--format", "json", "--out",
                 str(workdir / "p.json")]) == 0  # fmt: skip
    assert json.loads((workdir / "p.json").read_text())["totals"] == data["totals"]
    assert main(["report", "--from", "2026-10-01"]) == 2
