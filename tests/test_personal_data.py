"""Personal data on SQLite and PostgreSQL: export, forget (no trace left in any table), retention.

The people: Aziza (email; also Cc'd on Bob's ticket, where she writes too; a dead letter from her), Farrukh
(Telegram), and Bob (email), whose data must come through untouched. Forgetting is checked by reading every
text, JSON and binary column of every table in ``Base.metadata`` (new tables are covered by themselves) for
the person's name, address, Telegram id and a phrase only they wrote.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from helpdesk.cli import main
from helpdesk.config import ConfigError, Settings
from helpdesk.db.engine import make_engine, make_sessions
from helpdesk.db.models import AuditEvent, Base, Message, OutboxItem, Ticket
from helpdesk.desk import Desk
from helpdesk.messages import Attachment, InboundMessage, Sender
from helpdesk.reports import Period, build_report
from helpdesk.retention import run_retention
from helpdesk.usecases.dead_letters import store_dead_letter
from helpdesk.usecases.note import add_note
from helpdesk.usecases.personal_data import Person, apply_retention, export_person, forget_person
from helpdesk.usecases.receive import receive
from helpdesk.usecases.reclassify import reclassify
from helpdesk.usecases.reply import reply
from helpdesk.usecases.self_service import requester_blocked
from helpdesk.usecases.status import close

AZIZA = Sender(name="Aziza Karimova", email="aziza.karimova@mail.uz")
AZIZA_PHRASE = "quokka-zebra-7781"
FARRUKH = Sender(name="Farrukh Tashkentov", telegram_user_id=987654321, telegram_chat_id=987654321)
FARRUKH_PHRASE = "walrus-okapi-4412"
BOB = Sender(name="Bob Builder", email="bob@ngo.example.org")
BOB_PHRASE = "pangolin-heron-3390"
STAFF = "cli:dilnoza"


def mail(message_id: str, sender: Sender, text: str, subject: str, **kw: Any) -> InboundMessage:
    return InboundMessage(
        channel="email", channel_message_id=message_id, sender=sender, text=text, subject=subject, **kw
    )


async def seed(desk: Desk) -> dict[str, str]:
    """Tickets made by the real use-cases; returns the references."""
    a1 = await receive(
        desk,
        mail(
            "<a1@mail.uz>",
            AZIZA,
            f"Dear Centre, I am Aziza Karimova. We need help with wetland monitoring ({AZIZA_PHRASE}).",
            f"Wetland monitoring {AZIZA_PHRASE}",
            html=f"<p>Aziza Karimova: {AZIZA_PHRASE}</p>",
            attachments=(Attachment("karimova-cv.pdf", "application/pdf", b"%PDF Aziza Karimova CV"),),
            cc=("colleague@example.org",),
        ),
    )
    await reply(desk, a1.reference, "Dear Aziza Karimova, here is our guidance.", actor=STAFF)
    await add_note(desk, a1.reference, f"Aziza called about {AZIZA_PHRASE}", actor=STAFF)
    await reclassify(desk, a1.reference, [11], [2], actor=STAFF)
    await close(desk, a1.reference, actor=STAFF)
    a2 = await receive(
        desk, mail("<a2@mail.uz>", AZIZA, f"Second question {AZIZA_PHRASE} on protected areas", "Protected")
    )
    b1 = await receive(
        desk,
        mail(
            "<b1@ngo>",
            BOB,
            f"We need guidance on OECMs {BOB_PHRASE}",
            "OECM guidance",
            cc=(AZIZA.email,),
        ),
    )
    # Aziza, in Cc, writes on Bob's ticket: a participant's follow-up.
    joined = await receive(
        desk, mail("<a3@mail.uz>", AZIZA, f"Adding to Bob: {AZIZA_PHRASE}", f"Re: [{b1.reference}] OECM")
    )
    assert joined.reference == b1.reference
    await reply(desk, b1.reference, "Dear Bob, see the attached.", actor=STAFF)
    f1 = await receive(
        desk,
        InboundMessage(
            channel="telegram",
            channel_message_id="987654321:10",
            sender=FARRUKH,
            text=f"Нужен эксперт по ДМСО {FARRUKH_PHRASE}",
        ),
    )
    await reply(desk, f1.reference, "Farrukh, an expert will call you.", actor=STAFF)
    await requester_blocked(desk, FARRUKH.telegram_user_id or 0, blocked=True)
    await store_dead_letter(
        desk,
        f"From: Aziza Karimova <{AZIZA.email}>\r\nSubject: {AZIZA_PHRASE}\r\n\r\nbroken".encode(),
        "no text part",
    )
    await store_dead_letter(desk, f"From: {BOB.email}\r\n\r\n{BOB_PHRASE}".encode(), "no text part")
    async with desk.sessions.begin() as session:
        # A suppressed receipt on Bob's ticket names her address (as allow_auto_reply records it).
        bob_ticket = await session.scalar(select(Ticket).where(Ticket.reference == b1.reference))
        assert bob_ticket is not None
        session.add(
            AuditEvent(
                ticket_id=bob_ticket.id,
                actor="helpdesk",
                action="auto_reply_suppressed",
                detail={"kind": "ack", "recipient": AZIZA.email},
            )
        )
        # The delivery worker's part: sent, with Telegram's ids recorded on the messages.
        for item in await session.scalars(select(OutboxItem)):
            item.status = "sent"
            item.sent_at = datetime.now(UTC)
            if item.channel == "telegram":
                item.sent_id = f"{item.payload['recipient']}:{500 + item.id}"
                if item.message_id is not None:
                    await session.execute(
                        update(Message)
                        .where(Message.id == item.message_id, Message.channel_message_id.is_(None))
                        .values(channel_message_id=item.sent_id)
                    )
    # A reply still waiting when she is forgotten: it must never go out.
    await reply(desk, a2.reference, f"Aziza, about {AZIZA_PHRASE}: yes.", actor=STAFF)
    return {"a1": a1.reference, "a2": a2.reference, "b1": b1.reference, "f1": f1.reference}


async def traces(desk: Desk, needles: list[str]) -> list[str]:
    """Every (table.column #row) holding one of `needles`, in any table the models define."""
    found: list[str] = []
    lowered = [n.lower() for n in needles]
    async with desk.sessions() as session:
        connection = await session.connection()
        for table in Base.metadata.sorted_tables:
            for row in (await connection.execute(table.select())).mappings():
                for column, value in row.items():
                    if value is None:
                        continue
                    if isinstance(value, bytes | bytearray | memoryview):
                        text = bytes(value).decode("utf-8", "replace").lower()
                    elif isinstance(value, dict | list):
                        text = json.dumps(value, ensure_ascii=False).lower()
                    else:
                        text = str(value).lower()
                    for needle in lowered:
                        if needle in text:
                            found.append(f"{table.name}.{column} {dict(row).get('id')}: {needle}")
    return found


def this_month() -> Period:
    now = datetime.now(UTC).astimezone(Period.month("2026-01", "Asia/Tashkent").zone)
    return Period.month(now.strftime("%Y-%m"), "Asia/Tashkent")


async def figures(desk: Desk, now: datetime) -> dict[str, Any]:
    report = await build_report(desk.sessions, this_month(), now=now)
    report.pop("examples")  # quotes of requests: the one part meant to change
    return report


AZIZA_NEEDLES = ["Aziza", "Karimova", AZIZA.email or "", AZIZA_PHRASE]
FARRUKH_NEEDLES = ["Farrukh", "Tashkentov", str(FARRUKH.telegram_user_id), FARRUKH_PHRASE]
BOB_NEEDLES = ["Bob Builder", BOB.email or "", BOB_PHRASE]


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


async def _requester_ticket(desk: Desk, sender: Sender, n: int, text: str) -> str:
    result = await receive(desk, mail(f"<r{n}@x>", sender, text, f"Question {n}"))
    return result.reference


async def _set(
    desk: Desk, reference: str, *, status: str, closed: datetime | None, created: datetime
) -> None:
    async with desk.sessions.begin() as session:
        await session.execute(
            update(Ticket)
            .where(Ticket.reference == reference)
            .values(status=status, closed_at=closed, resolved_at=closed, created_at=created)
        )


async def test_retention_anonymises_only_old_closed_tickets(desk: Desk) -> None:
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=500), now - timedelta(days=30)
    gone = Sender(name="Gulnara Old", email="gulnara@old.example")
    kept = Sender(name="Kamila Both", email="kamila@both.example")
    g1 = await _requester_ticket(desk, gone, 1, "old request rhino-lynx-1111")
    k1 = await _requester_ticket(desk, kept, 2, "old request ibex-crane-2222")
    k2 = await _requester_ticket(desk, kept, 3, "new request ibex-crane-3333")
    o1 = await _requester_ticket(desk, BOB, 4, "still open saiga-4444")
    await _set(desk, g1, status="closed", closed=old, created=old - timedelta(days=3))
    await _set(desk, k1, status="closed", closed=old, created=old - timedelta(days=3))
    await _set(desk, k2, status="closed", closed=recent, created=recent - timedelta(days=3))
    await _set(desk, o1, status="open", closed=None, created=old)
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
        await seed(Desk(sessions=make_sessions(engine), mail_from="helpdesk@tscc.example.org"))
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


async def test_retention_task_of_helpdesk_run_anonymises_and_stops(desk: Desk) -> None:
    reference = await _requester_ticket(desk, BOB, 9, "old request tapir-otter-9999")
    old = datetime.now(UTC) - timedelta(days=400)
    await _set(desk, reference, status="closed", closed=old, created=old)
    stop = asyncio.Event()
    task = asyncio.create_task(run_retention(desk, 12, stop, interval=0.05))
    for _ in range(100):
        if not await traces(desk, ["tapir-otter-9999"]):
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert await traces(desk, ["tapir-otter-9999", BOB.email or ""]) == []


def test_retention_setting(workdir: Path) -> None:
    assert Settings.from_env({}).retention_months == 0
    assert Settings.from_env({"HELPDESK_RETENTION_MONTHS": "24"}).retention_months == 24
    with pytest.raises(ConfigError, match="HELPDESK_RETENTION_MONTHS"):
        Settings.from_env({"HELPDESK_RETENTION_MONTHS": "two years"})
    with pytest.raises(ConfigError, match="HELPDESK_RETENTION_MONTHS"):
        Settings.from_env({"HELPDESK_RETENTION_MONTHS": "-1"})
