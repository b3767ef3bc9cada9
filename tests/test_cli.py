"""The staff CLI, run in-process through its real entry point against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from helpdesk.cli import main
from helpdesk.db.engine import make_engine, make_sessions
from helpdesk.db.models import Base, OutboxItem, Ticket
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage, Sender
from helpdesk.service import standard_composers
from helpdesk.usecases.receive import receive
from knowledge import load_knowledge_base
from standins.smtp_server import SmtpStandIn

YEAR = datetime.now(UTC).year


async def _seed(url: str) -> None:
    engine = make_engine(url)
    async with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.exec_driver_sql(f"DELETE FROM {table.name}")
    desk = Desk(
        sessions=make_sessions(engine), mail_from="helpdesk@tscc.example.org", composers=standard_composers()
    )
    await receive(
        desk,
        InboundMessage(
            channel="email",
            channel_message_id="<1@eco.gov.kz>",
            sender=Sender(name="Aliya", email="aliya@eco.gov.kz"),
            subject="OECM guidance",
            text="We need guidance on OECMs.",
        ),
    )
    await receive(
        desk,
        InboundMessage(
            channel="telegram",
            channel_message_id="77:1",
            sender=Sender(name="Farrukh", telegram_user_id=77, telegram_chat_id=77),
            text="Нужен эксперт по ДМСО",
        ),
    )
    await engine.dispose()


async def _outbox(url: str) -> list[OutboxItem]:
    engine = make_engine(url)
    async with make_sessions(engine)() as session:
        items = list(await session.scalars(select(OutboxItem).order_by(OutboxItem.id)))
    await engine.dispose()
    return items


@pytest.fixture
def cli_db(database_url: str, workdir, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("HELPDESK_SMTP_HOST", "HELPDESK_IMAP_HOST", "HELPDESK_TELEGRAM_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HELPDESK_DATABASE_URL", database_url)
    asyncio.run(_seed(database_url))
    return database_url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_filters_and_json(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "tickets", "list")
    assert code == 0
    assert f"TSCC-{YEAR}-0001" in out and f"TSCC-{YEAR}-0002" in out and "OECM guidance" in out

    code, out, _ = run(capsys, "tickets", "list", "--channel", "telegram", "--format", "json")
    rows = json.loads(out)
    assert [r["reference"] for r in rows] == [f"TSCC-{YEAR}-0002"]
    assert rows[0]["status"] == "new"
    assert rows[0]["classification"]["targets"][0]["target"] == 3  # ДМСО = OECM
    assert rows[0]["classification"]["core_functions"][0]["core_function"] == 5  # an expert

    run(capsys, "tickets", "assign", f"TSCC-{YEAR}-0001", "dilnoza", "--as", "aziza")
    _, out, _ = run(capsys, "tickets", "list", "--assignee", "dilnoza", "--format", "json")
    assert [r["reference"] for r in json.loads(out)] == [f"TSCC-{YEAR}-0001"]
    _, out, _ = run(capsys, "tickets", "list", "--assignee", "none", "--format", "json")
    assert [r["reference"] for r in json.loads(out)] == [f"TSCC-{YEAR}-0002"]
    _, out, _ = run(capsys, "tickets", "list", "--status", "open", "--format", "json")
    assert [r["reference"] for r in json.loads(out)] == [f"TSCC-{YEAR}-0001"]
    _, out, _ = run(capsys, "tickets", "list", "--party", "UZ")
    assert out.strip() == "no tickets"


def test_note_close_show_and_history(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    ref = f"tscc-{YEAR}-0002"  # references are accepted in any case
    assert run(capsys, "tickets", "note", ref, "Call her back", "--as", "aziza")[0] == 0
    code, out, _ = run(capsys, "tickets", "close", ref, "--as", "aziza")
    assert code == 0 and out.strip() == f"TSCC-{YEAR}-0002: closed"
    code, out, _ = run(capsys, "tickets", "show", ref, "--format", "json")
    ticket = json.loads(out)
    assert ticket["status"] == "closed"
    assert [m["kind"] for m in ticket["messages"]] == ["inbound", "outbound", "note"]
    assert [e["action"] for e in ticket["audit"]] == ["created", "classified", "received", "noted", "status"]
    code, out, _ = run(capsys, "tickets", "show", ref)
    assert "Call her back" in out and "history:" in out and "Нужен эксперт по ДМСО" in out


def test_bad_paths_exit_non_zero_with_one_line(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "tickets", "show", f"TSCC-{YEAR}-0404")
    assert code == 1 and err.strip() == f"helpdesk: no ticket TSCC-{YEAR}-0404"
    run(capsys, "tickets", "close", f"TSCC-{YEAR}-0001")
    code, _, err = run(capsys, "tickets", "close", f"TSCC-{YEAR}-0001")
    assert code == 1 and err.strip() == f"helpdesk: TSCC-{YEAR}-0001 is already closed"
    with pytest.raises(SystemExit):
        main(["tickets", "frobnicate"])


def test_reply_without_channel_is_queued(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "tickets", "reply", f"TSCC-{YEAR}-0002", "Вот контакт эксперта", "--as", "aziza"
    )
    assert code == 0 and "telegram is not configured here" in out
    items = asyncio.run(_outbox(cli_db))
    assert items[-1].status == "pending" and "Вот контакт эксперта" in items[-1].payload["text"]


def test_reply_by_email_is_delivered_at_once(
    cli_db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    smtp = SmtpStandIn()
    asyncio.run(smtp.start())
    try:
        monkeypatch.setenv("HELPDESK_SMTP_HOST", smtp.host)
        monkeypatch.setenv("HELPDESK_SMTP_PORT", str(smtp.port))
        monkeypatch.setenv("HELPDESK_SMTP_TLS", "off")
        monkeypatch.setenv("HELPDESK_MAIL_FROM", "helpdesk@tscc.example.org")
        code, out, _ = run(capsys, "tickets", "reply", f"TSCC-{YEAR}-0001", "See the IUCN OECM guidance.")
        assert code == 0 and f"TSCC-{YEAR}-0001: delivered" in out
        subjects = [m.message["Subject"] for m in smtp.messages]
        # The pending acknowledgement went out too, then the reply.
        assert subjects == [f"[TSCC-{YEAR}-0001] Re: OECM guidance"] * 2
        assert "See the IUCN OECM guidance." in smtp.messages[1].message.get_body(("plain",)).get_content()
    finally:
        asyncio.run(smtp.stop())


def test_kb_load_stores_the_roster(cli_db: str, capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    roster = tmp_path / "roster.yaml"
    roster.write_text(
        "experts:\n"
        "  - {id: am-01, name: Expert A, languages: [ru, en], countries: [AM], targets: [4, 9]}\n"
        "  - {id: am-02, name: Expert B, languages: [en], countries: [AM], targets: [20]}\n",
        encoding="utf-8",
    )
    code, out, _ = run(capsys, "kb", "load", str(roster))
    assert code == 0 and out.startswith("loaded 2 experts")
    bad = tmp_path / "bad.yaml"
    bad.write_text("experts:\n  - {id: x, name: X, languages: [ru], targets: [99]}\n", encoding="utf-8")
    code, _, err = run(capsys, "kb", "load", str(bad))
    assert code == 1 and "targets" in err and "bad.yaml" in err


def test_reclassify_and_show(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    ref = f"TSCC-{YEAR}-0001"
    code, out, _ = run(capsys, "tickets", "reclassify", ref, "--targets", "3,1", "--core-functions", "5")
    assert code == 0
    assert out.splitlines()[0] == f"{ref}: targets T3 1.00, T1 0.90; core functions CF5 1.00 (set by staff)"
    assert out.splitlines()[1].startswith("experts: ")
    code, out, _ = run(capsys, "tickets", "show", ref)
    assert "classification: targets T3 1.00, T1 0.90" in out and "  expert " in out
    code, _, err = run(capsys, "tickets", "reclassify", ref, "--targets", "30")
    assert code == 1 and "no such KM-GBF target: 30" in err


def test_list_rejects_an_unknown_party_naming_the_knowledge_base_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    codes = sorted(load_knowledge_base().parties)
    for argv, wrong in ((["--party", "XX"], "unknown Party 'XX'"), (["--limit", "0"], "got '0'")):
        with pytest.raises(SystemExit) as exited:
            main(["tickets", "list", *argv])
        assert exited.value.code == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
        assert len(errors) == 1 and wrong in errors[0]
    with pytest.raises(SystemExit):
        main(["tickets", "list", "--party", "XX"])
    assert f"(choose from {', '.join(codes)})" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["tickets", "list", "--channel", "fax"])
    assert "argument --channel: invalid choice: 'fax'" in capsys.readouterr().err


async def _set_party(url: str, reference: str, party: str) -> None:
    engine = make_engine(url)
    async with engine.begin() as connection:
        await connection.execute(update(Ticket).where(Ticket.reference == reference).values(party=party))
    await engine.dispose()


def test_list_takes_a_party_in_any_case(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(_set_party(cli_db, f"TSCC-{YEAR}-0001", "KZ"))
    code, out, _ = run(capsys, "tickets", "list", "--party", "kz", "--format", "json")
    rows = json.loads(out)
    assert code == 0 and [(r["reference"], r["party"]) for r in rows] == [(f"TSCC-{YEAR}-0001", "KZ")]


def test_merge_refuses_another_requester_then_merges(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "tickets", "merge", f"TSCC-{YEAR}-0002", f"TSCC-{YEAR}-0001")
    assert code == 1 and "different requesters" in err and len(err.strip().splitlines()) == 1
    asyncio.run(_follow_up_ticket(cli_db))
    code, out, _ = run(capsys, "tickets", "merge", f"tscc-{YEAR}-0003", f"TSCC-{YEAR}-0001", "--as", "aziza")
    assert code == 0 and out.strip() == f"TSCC-{YEAR}-0003: merged into TSCC-{YEAR}-0001 and closed"
    _, out, _ = run(capsys, "tickets", "show", f"TSCC-{YEAR}-0001", "--format", "json")
    assert any("mangroves" in m["text"] for m in json.loads(out)["messages"])


async def _follow_up_ticket(url: str) -> None:
    engine = make_engine(url)
    desk = Desk(
        sessions=make_sessions(engine), mail_from="helpdesk@tscc.example.org", composers=standard_composers()
    )
    message = InboundMessage(
        channel="email",
        channel_message_id="<3@eco.gov.kz>",
        sender=Sender(name="Aliya", email="aliya@eco.gov.kz"),
        subject="Another question",
        text="And what about mangroves?",
    )
    await receive(desk, message)
    await engine.dispose()
