"""Email intake in batches (issue #12): one transaction per batch, one bad mail never blocks the rest, and
nothing is marked on the server before its batch is committed (pymap, both databases)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine
from test_mail_limits import OWN, plain_mail

from helpdesk.config import Settings
from helpdesk.db.models import DeadLetter, IntakeAttempt, Message, OutboxItem, Requester, Ticket
from helpdesk.email.imap_polling import batches
from helpdesk.email.intake import MailIntake, receive_mail
from helpdesk.service import Runtime, open_runtime
from standins.environment import standin_environment
from standins.imap_server import ImapStandIn
from standins.smtp_server import SmtpStandIn


@pytest.fixture
async def runtime(engine: AsyncEngine, database_url: str) -> AsyncIterator[Runtime]:
    async with open_runtime(Settings(database_url=database_url, mail_from=OWN), migrate=False) as rt:
        yield rt


async def _count(rt: Runtime, model: type, *where: object) -> int:
    async with rt.desk.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _poisoned(intake: MailIntake, poison: str, error: Exception, *, times: int = 1_000) -> list[str]:
    """Make the desk fail on the mail with Message-ID ``poison`` after it wrote everything (so only a real
    rollback undoes it), ``times`` times; returns the Message-IDs the desk was asked to receive."""
    real = intake.receive_in_session
    asked: list[str] = []
    left = [times]

    async def receive(desk: Any, session: Any, inbound: Any) -> Any:
        asked.append(inbound.channel_message_id)
        result = await real(desk, session, inbound)
        if inbound.channel_message_id == poison and left[0] > 0:
            left[0] -= 1
            await session.flush()
            raise error
        return result

    intake.receive_in_session = receive
    return asked


async def test_a_poison_mail_in_the_middle_of_a_batch_rolls_back_alone(runtime: Runtime) -> None:
    intake = runtime.mail
    batch = [(uid, plain_mail(uid)) for uid in range(1, 8)]
    asked = _poisoned(intake, "<plain-4@ngo.example.org>", ValueError("a bug on odd input"))

    handled = await receive_mail(intake, batch, source="test")

    # Every mail is safe in the database: six tickets and the poison as a dead letter; all may be marked.
    assert sorted(handled.committed) == [1, 2, 3, 4, 5, 6, 7] and not handled.failed
    assert await _count(runtime, Ticket) == 6
    [letter] = await _count_rows(runtime, DeadLetter)
    assert letter.reason.startswith("cannot be received: ValueError: a bug on odd input")
    assert letter.raw == plain_mail(4)
    # Its savepoint took back what it had written (requester, ticket, message, receipt) ...
    assert await _count(runtime, Requester, Requester.email == "s4@ngo.example.org") == 0
    assert await _count(runtime, Message, Message.channel_message_id == "<plain-4@ngo.example.org>") == 0
    # ... the others committed together, each with its receipt: the batch went first without savepoints
    # (1-4, rolled back whole at the poison), then again with one each (1-7), and the poison once more alone.
    assert await _count(runtime, OutboxItem) == 6
    assert asked.count("<plain-4@ngo.example.org>") == 3 and len(asked) == 4 + 7 + 1


async def test_a_clean_batch_sends_no_savepoint_and_a_refusal_once_reruns_it_with_them(
    runtime: Runtime,
) -> None:
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        statements.append(statement.lstrip().upper())

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", seen)
    try:
        clean = await receive_mail(runtime.mail, [(uid, plain_mail(uid)) for uid in range(1, 4)], source="t")
        clean_statements, statements[:] = list(statements), []
        # Refused once, in the batch without savepoints: the rerun with one each takes it in; nothing alone.
        asked = _poisoned(runtime.mail, "<plain-5@ngo.example.org>", ValueError("odd input"), times=1)
        rerun = await receive_mail(runtime.mail, [(uid, plain_mail(uid)) for uid in range(4, 7)], source="t")
    finally:
        event.remove(runtime.engine.sync_engine, "before_cursor_execute", seen)

    assert sorted(clean.committed) == [1, 2, 3] and sorted(rerun.committed) == [4, 5, 6]
    assert not any(s.startswith(("SAVEPOINT", "RELEASE")) for s in clean_statements)
    assert sum(s.startswith("SAVEPOINT") for s in statements) == 3
    assert asked == [f"<plain-{n}@ngo.example.org>" for n in (4, 5, 4, 5, 6)]
    assert await _count(runtime, Ticket) == 6 and await _count(runtime, DeadLetter) == 0


async def test_a_failure_that_ends_the_transaction_falls_back_to_one_at_a_time(runtime: Runtime) -> None:
    intake = runtime.mail
    intake.retry_delays = (0.01,)
    batch = [(uid, plain_mail(uid)) for uid in range(1, 6)]
    lost = sa_exc.OperationalError("INSERT", {}, Exception("server closed the connection unexpectedly"))
    _poisoned(intake, "<plain-3@ngo.example.org>", lost, times=1)

    handled = await receive_mail(intake, batch, source="test")

    # Nothing of the failed batch stayed; each mail then went in alone, once.
    assert sorted(handled.committed) == [1, 2, 3, 4, 5] and not handled.failed
    assert await _count(runtime, Ticket) == 5
    assert await _count(runtime, Message, Message.kind == "inbound") == 5
    assert await _count(runtime, OutboxItem) == 5
    assert await _count(runtime, DeadLetter) == 0


async def test_a_mail_the_database_keeps_refusing_waits_on_the_server_and_the_rest_go_on(
    runtime: Runtime,
) -> None:
    intake = runtime.mail
    intake.retry_delays = ()
    batch = [(uid, plain_mail(uid)) for uid in range(1, 5)]
    refused = sa_exc.OperationalError("INSERT", {}, Exception("too many parameters"))
    _poisoned(intake, "<plain-2@ngo.example.org>", refused)

    handled = await receive_mail(intake, batch, source="test")

    assert sorted(handled.committed) == [1, 3, 4] and list(handled.failed) == [2]
    assert await _count(runtime, Ticket) == 3


async def _count_rows(rt: Runtime, model: type) -> list[Any]:
    async with rt.desk.sessions() as session:
        return list(await session.scalars(select(model)))


def test_batches_cut_by_count_and_by_bytes() -> None:
    uids = list(range(1, 121))
    assert [len(b) for b in batches(uids, {})] == [50, 50, 20]
    sizes = {1: 20, 2: 20, 3: 50, 4: 1}
    assert list(batches([1, 2, 3, 4], sizes, max_bytes=45)) == [[1, 2], [3], [4]]


async def test_120_mails_are_three_transactions_and_one_poison_waits_alone(
    engine: AsyncEngine, database_url: str, imap: ImapStandIn, smtp: SmtpStandIn
) -> None:
    uids = [await imap.append(plain_mail(n)) for n in range(120)]
    settings = Settings.from_env(
        {
            "HELPDESK_DATABASE_URL": database_url,
            **standin_environment(imap=imap, smtp=smtp),
            "HELPDESK_MAIL_FROM": OWN,
            "HELPDESK_MAIL_ACK_LIMIT_PER_HOUR": "1000",
        }
    )
    async with open_runtime(settings, migrate=False) as rt:
        commits: list[int] = []
        event.listen(rt.engine.sync_engine, "commit", lambda _: commits.append(1))
        rt.mail.retry_delays = ()
        refused = sa_exc.OperationalError("INSERT", {}, Exception("too many parameters"))
        _poisoned(rt.mail, "<plain-60@ngo.example.org>", refused)

        result = await rt.poll_mail_once()

        assert (result.fetched, result.committed, result.failed_uids) == (120, 119, [uids[60]])
        assert await imap.unseen_uids() == [uids[60]]
        assert await _count(rt, Ticket) == 119
        # Three batch transactions, the poison's own attempt and its count, the checkpoint's load and
        # three saves: not 120 commits.
        assert len(commits) <= 10, len(commits)


async def test_sqlite_keeps_synchronous_full(runtime: Runtime, database_url: str) -> None:
    """A committed batch whose mail is then marked \\Seen must survive a power cut: the commit is fsync'd
    (WAL with synchronous=FULL), never traded for speed (NORMAL may lose the last commits)."""
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL: fsync and synchronous_commit are the server's settings")
    async with runtime.desk.sessions() as session:
        assert (await session.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await session.execute(text("PRAGMA synchronous"))).scalar() == 2  # FULL


async def test_a_mail_received_alone_is_retried_while_the_database_is_briefly_away(runtime: Runtime) -> None:
    intake = runtime.mail
    intake.retry_delays = (0.01, 0.01)
    lost = sa_exc.OperationalError("INSERT", {}, Exception("server closed the connection unexpectedly"))
    # Fails in the batch, then in its own first attempt; the retry gets it in.
    _poisoned(intake, "<plain-2@ngo.example.org>", lost, times=2)

    handled = await receive_mail(intake, [(uid, plain_mail(uid)) for uid in range(1, 4)], source="test")

    assert sorted(handled.committed) == [1, 2, 3] and not handled.failed
    assert await _count(runtime, Ticket) == 3
    assert await _count(runtime, IntakeAttempt) == 0  # no temporary failure was counted against it


async def test_a_batch_rolled_back_logs_no_statement_parameters(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLAlchemy's errors carry the statement's parameters (addresses, request text): the batch's
    fallback logs only the error's first line."""
    intake = runtime.mail
    intake.retry_delays = ()
    secret = "aliya.private@example.org"
    lost = sa_exc.OperationalError("INSERT INTO requesters", {"email": secret}, Exception("connection lost"))
    _poisoned(intake, "<plain-2@ngo.example.org>", lost, times=1)
    caplog.set_level(logging.DEBUG, logger="helpdesk")

    handled = await receive_mail(intake, [(uid, plain_mail(uid)) for uid in range(1, 4)], source="test")

    assert sorted(handled.committed) == [1, 2, 3]
    assert any("was not committed" in record.getMessage() for record in caplog.records)
    assert not [record.getMessage() for record in caplog.records if secret in record.getMessage()]
