"""Personal data on SQLite and PostgreSQL: a person's export, their erasure (no trace left in any table),
and both from the command line. The people and the trace finder are in ``personal_data_people``.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from personal_data_people import (
    AZIZA,
    AZIZA_NEEDLES,
    AZIZA_PHRASE,
    BOB,
    BOB_NEEDLES,
    BOB_PHRASE,
    FARRUKH,
    FARRUKH_NEEDLES,
    STAFF,
    figures,
    seed,
    traces,
)
from sqlalchemy import select

from helpdesk.cli import main
from helpdesk.db.engine import make_engine, make_sessions
from helpdesk.db.models import AuditEvent, Base, OutboxItem, Ticket
from helpdesk.desk import Desk
from helpdesk.service import standard_composers
from helpdesk.usecases.personal_data.export import export_person
from helpdesk.usecases.personal_data.forget import forget_person
from helpdesk.usecases.personal_data.person import Person


async def test_export_holds_everything_on_the_person_and_nothing_on_others(desk: Desk) -> None:
    refs = await seed(desk)
    data = await export_person(desk, Person(email="Aziza.Karimova@mail.uz"), include_attachment_data=True)
    assert [r["email"] for r in data["requesters"]] == [AZIZA.email]
    assert [t["reference"] for t in data["tickets"]] == [refs["a1"], refs["a2"]]
    first = data["tickets"][0]
    assert [m["kind"] for m in first["messages"]] == ["inbound", "outbound", "outbound", "note"]
    assert AZIZA_PHRASE in first["messages"][0]["body"]
    attachment = first["messages"][0]["attachments"][0]
    assert attachment["filename"] == "karimova-cv.pdf" and attachment["size"] == 22
    assert attachment["data_base64"]
    assert [m["ticket"] for m in data["messages_on_other_tickets"]] == [refs["b1"]]
    assert [p["ticket"] for p in data["participations"]] == [refs["b1"]]
    assert {e["action"] for e in data["audit_events"]} >= {"created", "received"}
    assert all(e["actor"] == f"email:{AZIZA.email}" for e in data["audit_events"])
    assert data["outbox"] and all(o["recipient"] == AZIZA.email for o in data["outbox"])
    assert len(data["dead_letters"]) == 1 and AZIZA_PHRASE in data["dead_letters"][0]["raw"]
    assert [x["ticket"] for x in data["labelled_examples"]] == [refs["a1"]]
    text = json.dumps(data, ensure_ascii=False)
    for needle in [*BOB_NEEDLES, *FARRUKH_NEEDLES, "colleague@example.org"]:
        assert needle not in text, needle

    without = await export_person(desk, Person(email=AZIZA.email), include_notes=False)
    kinds = {m["kind"] for t in without["tickets"] for m in t["messages"]}
    assert "note" not in kinds and "data_base64" not in json.dumps(without)

    telegram = await export_person(desk, Person(telegram_id=FARRUKH.telegram_user_id))
    assert [t["reference"] for t in telegram["tickets"]] == [refs["f1"]]
    assert {e["action"] for e in telegram["audit_events"]} >= {"created", "blocked_bot"}
    assert not any(n in json.dumps(telegram, ensure_ascii=False) for n in [*AZIZA_NEEDLES, *BOB_NEEDLES])


async def test_forget_leaves_no_trace_and_keeps_the_report_figures(desk: Desk) -> None:
    refs = await seed(desk)
    now = datetime.now(UTC) + timedelta(minutes=1)
    before = await figures(desk, now)
    assert await traces(desk, AZIZA_NEEDLES)  # the check can see her

    result = await forget_person(desk, Person(email=AZIZA.email), actor=STAFF)
    assert result.pseudonym is not None and result.pseudonym.startswith("forgotten-")
    assert result.tickets == 2 and result.dead_letters == 1 and result.participations == 1
    assert await traces(desk, AZIZA_NEEDLES) == []
    assert await figures(desk, now) == before

    # Bob and Farrukh are untouched.
    bob = await traces(desk, BOB_NEEDLES)
    assert any(t.startswith("requesters.") for t in bob) and any(t.startswith("dead_letters.") for t in bob)
    assert any("messages.body" in t for t in bob)
    assert any("messages.body" in t for t in await traces(desk, FARRUKH_NEEDLES))

    async with desk.sessions() as session:
        tickets = {
            t.reference: t
            for t in await session.scalars(select(Ticket).where(Ticket.reference.in_(refs.values())))
        }
        assert tickets[refs["a1"]].status == "closed" and tickets[refs["a1"]].classification is not None
        assert tickets[refs["b1"]].subject == "OECM guidance"
        pending = list(await session.scalars(select(OutboxItem).where(OutboxItem.status == "pending")))
        assert all((p.payload.get("extra") or {}).get("card_ticket_id") for p in pending)
        events = list(
            await session.scalars(select(AuditEvent).where(AuditEvent.action == "requester_forgotten"))
        )
        assert len(events) == 1 and events[0].actor == STAFF
        assert events[0].detail["pseudonym"] == result.pseudonym

    # Again: nothing left to change, nothing recorded twice.
    again = await forget_person(desk, Person(email=AZIZA.email), actor=STAFF)
    assert not again.found
    by_id = await forget_person(desk, Person(requester_id=int(result.pseudonym.split("-")[1])), actor=STAFF)
    assert not by_id.found and by_id.pseudonym == result.pseudonym
    async with desk.sessions() as session:
        count = len(
            list(await session.scalars(select(AuditEvent).where(AuditEvent.action == "requester_forgotten")))
        )
    assert count == 1
    assert await figures(desk, now) == before

    # A Telegram requester the same way.
    telegram = await forget_person(desk, Person(telegram_id=FARRUKH.telegram_user_id), actor=STAFF)
    assert telegram.found
    assert await traces(desk, FARRUKH_NEEDLES) == []
    assert await figures(desk, now) == before
    assert await traces(desk, [BOB_PHRASE, BOB.email or ""])


# --- the command line -----------------------------------------------------------------------------------


@pytest.fixture
def cli_db(database_url: str, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in (
        "HELPDESK_SMTP_HOST",
        "HELPDESK_IMAP_HOST",
        "HELPDESK_TELEGRAM_TOKEN",
        "HELPDESK_RETENTION_MONTHS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HELPDESK_DATABASE_URL", database_url)

    async def prepare() -> None:
        engine = make_engine(database_url)
        async with engine.begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                await connection.exec_driver_sql(f"DELETE FROM {table.name}")
        await seed(
            Desk(
                sessions=make_sessions(engine),
                mail_from="helpdesk@tscc.example.org",
                composers=standard_composers(),
            )
        )
        await engine.dispose()

    asyncio.run(prepare())
    return database_url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_export_forget_and_retention(
    cli_db: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "requester", "export", "--email", AZIZA.email or "")
    assert code == 0 and AZIZA_PHRASE in json.loads(out)["tickets"][0]["messages"][0]["body"]
    code, _, err = run(capsys, "requester", "export", "--telegram-id", "987654321", "--out", "f.json")
    assert code == 0 and "wrote f.json" in err
    assert (
        json.loads((workdir / "f.json").read_text(encoding="utf-8"))["requesters"][0]["name"] == FARRUKH.name
    )

    code, _, err = run(capsys, "requester", "forget", "--email", AZIZA.email or "")
    assert code == 2 and "--yes" in err
    code, out, _ = run(
        capsys, "requester", "forget", "--email", AZIZA.email or "", "--yes", "--as", "dilnoza"
    )
    assert code == 0 and "as forgotten-" in out
    code, out, _ = run(capsys, "requester", "forget", "--email", AZIZA.email or "", "--yes")
    assert code == 0 and "nothing held" in out
    code, out, _ = run(capsys, "requester", "export", "--email", AZIZA.email or "")
    assert code == 0 and json.loads(out)["tickets"] == []

    code, _, err = run(capsys, "requester", "retention", "--dry-run")
    assert code == 2 and "HELPDESK_RETENTION_MONTHS" in err
    code, out, _ = run(capsys, "requester", "retention", "--dry-run", "--months", "1", "--format", "json")
    assert code == 0 and json.loads(out)["tickets"] == []  # everything here was closed just now
