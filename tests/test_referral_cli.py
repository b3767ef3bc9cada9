"""`helpdesk tickets refer|introduce|cooperation|outcome` through the real entry point, on both databases."""

# The CLI tests' database fixture is reused by name, so test parameters shadow its import.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import re

import pytest
from sqlalchemy import select
from test_cli import YEAR, cli_db, run  # noqa: F401 - cli_db is a fixture

from helpdesk.db.engine import make_engine, make_sessions
from helpdesk.db.models import Message


def test_refer_queues_the_offer_and_show_lists_the_referral(
    cli_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = f"TSCC-{YEAR}-0002"
    code, out, _ = run(
        capsys, "tickets", "refer", ref, "--expert", "ex-003", "--message", "Could you?", "--as", "aziza"
    )
    # Referral numbers come from the database's sequence, which the tests' clean-up does not reset.
    assert code == 0 and re.fullmatch(rf"{ref}: offered to ex-003 by email \(R\d+\)", out.strip())
    code, out, _ = run(capsys, "tickets", "show", ref)
    assert re.search(r"referrals:\n  R\d+ ex-003 \(email\): offered", out)
    assert "referred" in out  # the history names it


def test_refusals_are_one_line(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    ref = f"TSCC-{YEAR}-0002"
    code, _, err = run(capsys, "tickets", "refer", ref, "--expert", "nobody")
    assert code == 1 and err.strip() == "helpdesk: no expert 'nobody' in the roster"
    run(capsys, "tickets", "refer", ref, "--expert", "ex-003")
    code, _, err = run(capsys, "tickets", "refer", ref, "--expert", "ex-003")
    assert code == 1 and err.strip() == f"helpdesk: {ref} is already referred to expert ex-003"
    code, _, err = run(capsys, "tickets", "introduce", ref, "--expert", "ex-003")
    assert code == 1 and err.strip() == "helpdesk: expert ex-003 has not accepted (offered)"
    code, _, err = run(capsys, "tickets", "outcome", ref, "--type", "advice", "--text", "x")
    assert code == 1 and "introduced expert" in err
    with pytest.raises(SystemExit):
        run(capsys, "tickets", "outcome", ref, "--type", "bribe")


def test_refer_to_a_provider_organisation_offers_each_of_its_experts(
    cli_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = f"TSCC-{YEAR}-0001"
    code, out, err = run(capsys, "tickets", "refer", ref, "--organisation", "example restoration network")
    assert code == 0, err
    assert re.fullmatch(rf"{ref}: offered to ex-002 by email \(R\d+\)", out.strip())
    code, _, err = run(capsys, "tickets", "refer", ref, "--organisation", "Nobody Inc")
    assert code == 1 and err.strip() == "helpdesk: no available expert of 'Nobody Inc' in the roster"
    code, _, err = run(capsys, "tickets", "refer", ref)
    assert code == 1 and err.strip() == "helpdesk: name an expert or an organisation to refer to"


def test_refer_with_the_web_configured_puts_one_click_links_in_the_offer(
    cli_db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HELPDESK_WEB_BASE_URL", "https://desk.tscc.example")
    ref = f"TSCC-{YEAR}-0002"
    code, _, err = run(capsys, "tickets", "refer", ref, "--expert", "ex-003", "--as", "aziza")
    assert code == 0, err

    async def offer(url: str) -> str:
        engine = make_engine(url)
        try:
            async with make_sessions(engine)() as session:
                query = select(Message.body).where(Message.kind == "to_expert")
                return (await session.scalars(query)).one()
        finally:
            await engine.dispose()

    text = asyncio.run(offer(cli_db))
    assert re.search(r"https://desk\.tscc\.example/referrals/answer/\d+\.yes\.\d+\.[a-z2-7]{16}", text)
    assert re.search(r"https://desk\.tscc\.example/referrals/answer/\d+\.no\.\d+\.[a-z2-7]{16}", text)
