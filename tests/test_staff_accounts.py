"""Staff accounts: the `helpdesk staff` commands, and accounts as the one source of who is staff."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import pytest
from sqlalchemy import select

from helpdesk.cli import main
from helpdesk.db.engine import make_engine, make_sessions
from helpdesk.db.models import AuditEvent, Base, StaffAccount
from helpdesk.desk import Desk
from helpdesk.messages import Authenticity, InboundMessage, Sender
from helpdesk.usecases.receive import receive
from helpdesk.usecases.staff_accounts import add_account, disable_account
from helpdesk.usecases.staff_directory import staff_emails, staff_telegram_ids

PASSWORD = "a long enough password"


async def _empty(url: str) -> None:
    engine = make_engine(url)
    async with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.exec_driver_sql(f"DELETE FROM {table.name}")
    await engine.dispose()


async def _accounts(url: str) -> dict[str, StaffAccount]:
    engine = make_engine(url)
    async with make_sessions(engine)() as session:
        rows = {a.email: a for a in await session.scalars(select(StaffAccount))}
    await engine.dispose()
    return rows


@pytest.fixture
def cli_db(database_url: str, workdir: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("HELPDESK_SMTP_HOST", "HELPDESK_IMAP_HOST", "HELPDESK_TELEGRAM_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HELPDESK_DATABASE_URL", database_url)
    asyncio.run(_empty(database_url))
    return database_url


def _run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *argv: str, stdin: str = ""
) -> Any:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_staff_commands_add_list_password_disable(
    cli_db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = _run(
        capsys,
        monkeypatch,
        "staff",
        "add",
        "Aida@TSCC.example",
        "--name",
        "Aida",
        "--role",
        "agent",
        "--telegram-id",
        "4242",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert code == 0 and "aida@tscc.example" in out
    code, out, _ = _run(
        capsys, monkeypatch, "staff", "add", "viewer@tscc.example", "--name", "V", "--role", "viewer"
    )
    assert code == 0 and "no web password" in out
    code, out, _ = _run(capsys, monkeypatch, "staff", "list", "--format", "json")
    listed = {a["email"]: a for a in json.loads(out)}
    assert listed["aida@tscc.example"]["role"] == "agent" and listed["aida@tscc.example"]["has_password"]
    assert listed["aida@tscc.example"]["telegram_user_id"] == 4242
    assert not listed["viewer@tscc.example"]["has_password"]
    # The hash is argon2id, never the password.
    stored = asyncio.run(_accounts(cli_db))["aida@tscc.example"]
    assert stored.password_hash and stored.password_hash.startswith("$argon2id$")
    assert PASSWORD not in stored.password_hash
    version = stored.session_version

    code, _, _ = _run(
        capsys,
        monkeypatch,
        "staff",
        "password",
        "aida@tscc.example",
        "--password-stdin",
        stdin="another long password\n",
    )
    assert code == 0
    assert asyncio.run(_accounts(cli_db))["aida@tscc.example"].session_version == version + 1
    code, _, _ = _run(capsys, monkeypatch, "staff", "disable", "aida@tscc.example")
    assert code == 0
    disabled = asyncio.run(_accounts(cli_db))["aida@tscc.example"]
    assert disabled.disabled_at is not None and disabled.session_version == version + 2
    code, out, _ = _run(capsys, monkeypatch, "staff", "list")
    assert "DISABLED" in out


def test_staff_commands_refuse_bad_input_with_one_line(
    cli_db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    add = ("staff", "add", "a@tscc.example", "--name", "A", "--role", "agent", "--password-stdin")
    assert _run(capsys, monkeypatch, *add, stdin="short\n")[0] == 1
    assert _run(capsys, monkeypatch, *add, stdin=PASSWORD + "\n")[0] == 0
    code, _, err = _run(capsys, monkeypatch, *add, stdin=PASSWORD + "\n")
    assert code == 1 and err.strip().count("\n") == 0 and "exists already" in err
    code, _, err = _run(
        capsys, monkeypatch, "staff", "add", "not-an-address", "--name", "A", "--role", "agent"
    )
    assert code == 1 and "not an email address" in err
    code, _, err = _run(
        capsys,
        monkeypatch,
        "staff",
        "password",
        "nobody@tscc.example",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert code == 1 and "no staff account" in err
    # Not a terminal and no --password-stdin: nothing to read a password from.
    code, _, err = _run(capsys, monkeypatch, "staff", "password", "a@tscc.example")
    assert code == 1 and "--password-stdin" in err
    with pytest.raises(SystemExit):
        main(["staff", "add", "b@tscc.example", "--name", "B", "--role", "root"])


async def test_accounts_and_the_seed_say_who_is_staff_and_disabling_wins(desk: Desk) -> None:
    desk.staff_emails = frozenset({"seed@tscc.example", "both@tscc.example"})
    await add_account(desk, "acct@tscc.example", name="Acct", role="agent", telegram_user_id=11)
    await add_account(desk, "both@tscc.example", name="Both", role="agent", telegram_user_id=12)
    async with desk.sessions() as session:
        assert await staff_emails(desk, session) == {
            "seed@tscc.example",
            "both@tscc.example",
            "acct@tscc.example",
        }
        assert await staff_telegram_ids(session, frozenset({12, 13})) == {11, 12, 13}
    await disable_account(desk, "both@tscc.example")
    await disable_account(desk, "acct@tscc.example")
    async with desk.sessions() as session:
        assert await staff_emails(desk, session) == {"seed@tscc.example"}
        assert await staff_telegram_ids(session, frozenset({12, 13})) == {13}


def _staff_mail(reference: str, n: int) -> InboundMessage:
    return InboundMessage(
        channel="email",
        channel_message_id=f"<staff-{n}@tscc.example>",
        sender=Sender(name="Staff", email="staff@tscc.example"),
        subject=f"Re: [{reference}] Support",
        text="Here is the answer.",
        # The Centre's server vouches for the domain: proof enough for an enabled staff member.
        authenticity=Authenticity(verdict="verified", domains=("tscc.example",)),
    )


async def test_a_disabled_account_is_not_staff_by_mail(desk: Desk) -> None:
    first = await receive(
        desk,
        InboundMessage(
            channel="email",
            channel_message_id="<req-1@eco.gov.kz>",
            sender=Sender(name="Aliya", email="aliya@eco.gov.kz"),
            subject="Support",
            text="We need guidance on OECMs.",
        ),
    )
    await add_account(desk, "staff@tscc.example", name="Staff", role="agent")
    relayed = await receive(desk, _staff_mail(first.reference, 1))
    assert relayed.reference == first.reference and not relayed.created
    await disable_account(desk, "staff@tscc.example")
    stranger = await receive(desk, _staff_mail(first.reference, 2))
    # Now a stranger's mail: a new ticket, not a reply on the requester's one.
    assert stranger.created and stranger.reference != first.reference
    async with desk.sessions() as session:
        actions = list(await session.scalars(select(AuditEvent.action)))
    assert "possible_followup" in actions


async def test_a_disabled_account_is_not_staff_in_telegram_even_when_seeded(desk: Desk) -> None:
    from telegram_harness import STAFF, STAFF_CHAT, STAFF_USER, open_harness

    async with open_harness(desk) as harness:
        api = harness.api

        async def queue_answer() -> str:
            calls = len(api.calls)
            await api.push_message(STAFF_CHAT, "/queue", chat_type="supergroup", user=STAFF_USER)
            answer = await api.wait_for_call(
                "sendMessage", lambda call: call.params["chat_id"] == STAFF_CHAT, since=calls
            )
            return str(answer.params["text"])

        refusal_marks = ("staff", "сотрудник")
        # Seeded by HELPDESK_STAFF_TELEGRAM_IDS: staff.
        answer = await queue_answer()
        assert not any(mark in answer for mark in refusal_marks), answer
        await add_account(desk, "aziza@tscc.example", name="Aziza", role="agent", telegram_user_id=STAFF)
        answer = await queue_answer()
        assert not any(mark in answer for mark in refusal_marks), answer
        await disable_account(desk, "aziza@tscc.example")
        refused = await queue_answer()
        assert any(mark in refused for mark in refusal_marks), refused
