"""The inbox query on SQLite and PostgreSQL: views, filters, full-text search, paging and bulk actions.

Tickets are made by the desk's own use-cases (receive, reply, assign, reclassify, forget, retention), so
the search index and ``ticket_targets`` are whatever the migration's triggers made of them.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from helpdesk.db.models import AuditEvent, Ticket
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage, Sender
from helpdesk.usecases.assign import assign
from helpdesk.usecases.bulk import Outcome, bulk_assign, bulk_close, bulk_status
from helpdesk.usecases.inbox import VIEWS, InboxCriteria, InboxPage, InvalidCriteria, inbox
from helpdesk.usecases.personal_data.forget import forget_person
from helpdesk.usecases.personal_data.person import Person
from helpdesk.usecases.personal_data.retention import apply_retention
from helpdesk.usecases.receive import receive
from helpdesk.usecases.reclassify import reclassify
from helpdesk.usecases.reply import reply
from helpdesk.usecases.status import close, set_status

HOURS = 48.0
ALIYA = Sender(name="Алия Нурпеисова", email="aliya.nurpeisova@eco.gov.kz")
JOHN = Sender(name="John Smith", email="john.smith@ngo.example.org")
FARRUKH = Sender(name="Farrukh Tashkentov", telegram_user_id=5001, telegram_chat_id=5001, language="ru")
_counter = iter(range(1, 10_000))


async def mail(desk: Desk, subject: str, text: str, sender: Sender = JOHN) -> str:
    n = next(_counter)
    result = await receive(
        desk,
        InboundMessage(
            channel="email", channel_message_id=f"<m{n}@x>", sender=sender, subject=subject, text=text
        ),
    )
    return result.reference


async def chat(desk: Desk, text: str, sender: Sender = FARRUKH) -> str:
    n = next(_counter)
    result = await receive(
        desk,
        InboundMessage(
            channel="telegram",
            channel_message_id=f"{sender.telegram_chat_id}:{n}",
            sender=sender,
            text=text,
            force_new=True,
        ),
    )
    return result.reference


async def page(desk: Desk, **criteria: object) -> InboxPage:
    return await inbox(desk, InboxCriteria(**criteria), response_target_hours=HOURS)  # type: ignore[arg-type]


async def refs(desk: Desk, **criteria: object) -> set[str]:
    return {row.reference for row in (await page(desk, per_page=200, **criteria)).rows}


async def set_party(desk: Desk, reference: str, party: str) -> None:
    async with desk.sessions.begin() as session:
        await session.execute(update(Ticket).where(Ticket.reference == reference).values(party=party))


async def test_every_view(desk: Desk) -> None:
    fresh = await mail(desk, "Fresh", "A new request about wetlands")
    answered = await mail(desk, "Answered", "Please advise on invasive species")
    await reply(desk, answered, "Here is our advice", actor="staff-a")  # → waiting
    mine = await mail(desk, "Mine", "Spatial planning question")
    await assign(desk, mine, "staff-a", actor="staff-b")  # → open
    theirs = await mail(desk, "Theirs", "Pollution question")
    await assign(desk, theirs, "staff-b", actor="staff-b")
    closed = await mail(desk, "Closed", "Duplicate")
    await close(desk, closed, actor="staff-a")

    assert await refs(desk, view="new") == {fresh}
    assert await refs(desk, view="unassigned") == {fresh, answered}
    assert await refs(desk, view="mine", viewer="staff-a") == {mine}
    assert await refs(desk, view="waiting") == {answered}
    assert await refs(desk, view="all") == {fresh, answered, mine, theirs, closed}
    # Nothing is past the 48-hour target yet; two days later the unanswered active ones are.
    assert await refs(desk, view="overdue") == set()
    later = await inbox(
        desk, InboxCriteria(view="overdue"), response_target_hours=HOURS, now=utcnow() + timedelta(hours=49)
    )
    assert {r.reference for r in later.rows} == {fresh, mine, theirs}
    assert all(r.overdue for r in later.rows)
    assert not any(r.overdue for r in (await page(desk, view="all")).rows)
    assert list(VIEWS) == ["new", "unassigned", "mine", "waiting", "overdue", "all"]


async def test_rows_carry_what_the_inbox_shows(desk: Desk) -> None:
    reference = await mail(desk, "OECM guidance", "We need guidance on OECM identification.", ALIYA)
    await set_party(desk, reference, "KZ")
    [row] = (await page(desk)).rows
    assert row.reference == reference and row.subject == "OECM guidance"
    assert row.requester == ALIYA.name and row.party == "KZ" and row.channel == "email"
    assert row.status == "new" and row.assignee is None and not row.overdue
    assert row.top_target == 3  # OECMs, as the classifier found
    assert row.created_at <= row.updated_at


async def test_every_filter(desk: Desk) -> None:
    kz = await mail(desk, "One", "Wetlands of Kazakhstan")
    uz = await chat(desk, "Вопрос о водно-болотных угодьях")
    other = await mail(desk, "Three", "Pollution from pesticides", ALIYA)
    await set_party(desk, kz, "KZ")
    await set_party(desk, uz, "UZ")
    await reclassify(desk, kz, [11, 2], [5], actor="staff-a")
    await reclassify(desk, uz, [2], [3], actor="staff-a")
    await reclassify(desk, other, [7], [5], actor="staff-a")
    await assign(desk, uz, "staff-b", actor="staff-a")
    await close(desk, other, actor="staff-a")

    assert await refs(desk, party="kz") == {kz}
    assert await refs(desk, target=2) == {kz, uz}  # any of its targets, not only the primary one
    assert await refs(desk, target=11) == {kz}
    assert await refs(desk, core_function=5) == {kz, other}
    assert await refs(desk, channel="telegram") == {uz}
    assert await refs(desk, status="closed") == {other}
    assert await refs(desk, status="active") == {kz, uz}
    assert await refs(desk, assignee="staff-b") == {uz}
    assert await refs(desk, assignee="none") == {kz, other}
    assert await refs(desk, target=2, party="UZ", channel="telegram", assignee="staff-b") == {uz}
    # A correction replaces the rows: the ticket is no longer under its old target.
    await reclassify(desk, kz, [4], [], actor="staff-a")
    assert await refs(desk, target=2) == {uz}
    assert await refs(desk, target=4) == {kz}
    assert {r.reference: r.top_target for r in (await page(desk)).rows}[kz] == 4


@pytest.mark.parametrize(
    ("criteria", "message"),
    [
        ({"view": "everything"}, "unknown view"),
        ({"view": "mine"}, "needs the staff member"),
        ({"party": "XX"}, "unknown Party"),
        ({"status": "deleted"}, "unknown status"),
        ({"target": 24}, "no KM-GBF target 24"),
        ({"core_function": 0}, "no core function 0"),
        ({"per_page": 0}, "per_page"),
        ({"per_page": 10_000}, "per_page"),
        ({"after": "1' OR 1=1 --"}, "page link"),
        ({"after": "9" * 41 + ".1"}, "page link"),
    ],
)
async def test_criteria_the_desk_cannot_answer_get_a_clear_refusal(
    desk: Desk, criteria: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidCriteria, match=message):
        await page(desk, **criteria)


async def test_search_finds_russian_and_english_in_subject_body_and_requester(desk: Desk) -> None:
    ru_subject = await mail(desk, "Сохранение биоразнообразия", "Просим помочь.", ALIYA)
    ru_body = await chat(desk, "Нужна методика оценки эффективности особо охраняемых территорий")
    en_subject = await mail(desk, "Invasive species policy", "Thank you.")
    en_body = await mail(desk, "Question", "How should we report on protected areas and OECMs?")
    quiet = await mail(desk, "Unrelated", "Nothing to see", Sender(name="Mary Poppins", email="mp@x.org"))

    assert await refs(desk, q="биоразнообразия") == {ru_subject}
    assert await refs(desk, q="биоразнообразие") == {ru_subject}  # another form of the word
    assert await refs(desk, q="эффективность территории") == {ru_body}
    assert await refs(desk, q="Policies") == {en_subject}
    assert await refs(desk, q="protected area") == {en_body}
    assert await refs(desk, q="Нурпеисова") == {ru_subject}  # the requester's name
    assert await refs(desk, q="Tashkentov") == {ru_body}
    assert await refs(desk, q="aliya.nurpeisova@eco.gov.kz") == {ru_subject}  # the address
    assert await refs(desk, q="smith") == {en_subject, en_body}
    assert await refs(desk, q="smith oecms") == {en_body}  # every word, across requester and body
    assert await refs(desk, q="invas") == {en_subject}  # a word being typed
    assert await refs(desk, q=ru_body) == {ru_body}  # the reference
    assert await refs(desk, q="zzzzqqq") == set()
    assert quiet in await refs(desk, q="poppins")


async def test_staff_replies_and_notes_are_searched_and_automatic_receipts_are_not(desk: Desk) -> None:
    reference = await mail(desk, "Question", "About invasive species")
    await reply(desk, reference, "Please see the guidance on eradication", actor="staff-a")
    assert await refs(desk, q="eradication") == {reference}
    assert await refs(desk, q="registered") == set()  # words of our own acknowledgement


HOSTILE = [
    '"',
    '""',
    "*",
    "* OR 1=1",
    "NEAR(",
    'NEAR("a" "b", 2)',
    "'",
    "';DROP TABLE tickets;--",
    "\\",
    "\\x00",
    "a:*",
    "!&|()<->",
    "subject:oecm",
    "^guidance",
    "-guidance",
    "AND OR NOT",
    "\x00",
    "😀🌿",
    "ё" * 300,
    "invasive " * 2_000,
    "x" * 10_000,
    "\u202e" + "guidance",
    "   ",
]


async def test_hostile_search_text_gives_results_or_nothing_never_an_error(desk: Desk) -> None:
    reference = await mail(desk, "Invasive species guidance", "A request")
    for q in HOSTILE:
        found = await refs(desk, q=q)
        assert found <= {reference}, q
    assert await refs(desk, q='"invasive*') == {reference}  # the words still count
    assert await refs(desk, q="NEAR(guidance") == set()  # near is a word like any other


async def test_paging_is_stable_and_complete(desk: Desk) -> None:
    made = [await mail(desk, f"Request {i}", "Wetlands") for i in range(7)]
    # Equal times on purpose: the id breaks the tie, so no row is lost or repeated between pages.
    async with desk.sessions.begin() as session:
        await session.execute(update(Ticket).values(updated_at=utcnow()))
    seen: list[str] = []
    first = await page(desk, per_page=3)
    assert first.total == 7 and first.has_next
    seen += [r.reference for r in first.rows]
    # A ticket arriving meanwhile goes to the top; it pushes nothing onto the next page a second time.
    newcomer = await mail(desk, "Newcomer", "Wetlands")
    after = first.next_after
    while after:
        current = await page(desk, per_page=3, after=after)
        seen += [r.reference for r in current.rows]
        after = current.next_after
    assert seen == list(reversed(made))
    assert (await page(desk, per_page=3)).rows[0].reference == newcomer
    last = await page(desk, per_page=8)
    assert not last.has_next and last.next_after is None and len(last.rows) == 8


async def test_total_is_capped(desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    from helpdesk.usecases import inbox as module

    monkeypatch.setattr(module, "TOTAL_CAP", 2)
    for i in range(3):
        await mail(desk, f"Request {i}", "Wetlands")
    result = await page(desk, per_page=1)
    assert result.total == 2 and result.total_capped


async def test_a_forgotten_requester_cannot_be_found(desk: Desk) -> None:
    reference = await mail(desk, "Сохранение биоразнообразия", "Пишет Алия из министерства", ALIYA)
    assert await refs(desk, q="Нурпеисова") == {reference}
    await forget_person(desk, Person(email=ALIYA.email), actor="staff-a")
    for q in ("Нурпеисова", "Алия", "aliya", "nurpeisova", "eco.gov.kz", "биоразнообразия", "министерства"):
        assert await refs(desk, q=q) == set(), q
    assert await refs(desk) == {reference}  # the ticket itself stays, for the figures


async def test_retention_scrubs_the_index_of_old_closed_tickets(desk: Desk) -> None:
    old = await mail(desk, "Pesticide inventory", "Our inventory of stockpiles")
    await close(desk, old, actor="staff-a")
    async with desk.sessions.begin() as session:
        await session.execute(
            update(Ticket).where(Ticket.reference == old).values(closed_at=utcnow() - timedelta(days=800))
        )
    assert await refs(desk, q="stockpiles") == {old}
    await apply_retention(desk, 12, apply=True)
    assert await refs(desk, q="stockpiles") == set()
    assert await refs(desk, q="pesticide") == set()


async def test_bulk_actions_report_every_ticket_and_are_audited(desk: Desk) -> None:
    a = await mail(desk, "A", "one")
    b = await mail(desk, "B", "two")
    c = await mail(desk, "C", "three")
    await close(desk, c, actor="staff-a")

    assigned = await bulk_assign(desk, [a, b, c, "TSCC-1999-0001", a], "staff-b", actor="web:dilnoza")
    assert [(o.reference, o.outcome) for o in assigned] == [
        (a, Outcome.DONE),
        (b, Outcome.DONE),
        (c, Outcome.REFUSED),
        ("TSCC-1999-0001", Outcome.REFUSED),
    ]
    assert "closed" in (assigned[2].message or "") and "no ticket" in (assigned[3].message or "")
    assert await refs(desk, assignee="staff-b") == {a, b}

    waiting = await bulk_status(desk, [a, b], "waiting", actor="web:dilnoza")
    assert {o.outcome for o in waiting} == {Outcome.DONE}
    again = await bulk_status(desk, [a], "waiting", actor="web:dilnoza")
    assert again[0].outcome is Outcome.REFUSED and "already waiting" in (again[0].message or "")
    closed = await bulk_close(desk, [a, b, c], actor="web:dilnoza")
    assert [o.outcome for o in closed] == [Outcome.DONE, Outcome.DONE, Outcome.REFUSED]
    assert await refs(desk, status="closed") == {a, b, c}

    async with desk.sessions() as session:
        actions = (
            await session.execute(
                select(AuditEvent.action).where(AuditEvent.actor == "web:dilnoza").order_by(AuditEvent.id)
            )
        ).scalars()
        assert list(actions) == ["assigned", "assigned", "status", "status", "status", "status"]


async def test_bulk_refuses_a_bad_request_before_touching_any_ticket(desk: Desk) -> None:
    a = await mail(desk, "A", "one")
    with pytest.raises(InvalidCriteria, match="unknown status"):
        await bulk_status(desk, [a], "deleted", actor="staff-a")
    with pytest.raises(InvalidCriteria, match="new"):
        await bulk_status(desk, [a], "new", actor="staff-a")
    with pytest.raises(InvalidCriteria, match="at least one"):
        await bulk_close(desk, [" "], actor="staff-a")
    with pytest.raises(InvalidCriteria, match="at most 200"):
        await bulk_close(desk, [f"TSCC-2026-{i:04}" for i in range(201)], actor="staff-a")
    assert await refs(desk, status="new") == {a}


async def test_bulk_stops_and_says_so_when_the_desk_fails(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = await mail(desk, "A", "one")
    b = await mail(desk, "B", "two")
    c = await mail(desk, "C", "three")
    from helpdesk.usecases import bulk as module

    async def failing(desk_: Desk, reference: str, status: str, *, actor: str) -> Ticket:
        if reference == b:
            raise ConnectionError("database went away")
        return await set_status(desk_, reference, status, actor=actor)

    monkeypatch.setattr(module, "set_status", failing)
    outcomes = await bulk_close(desk, [a, b, c], actor="staff-a")
    assert [o.outcome for o in outcomes] == [Outcome.DONE, Outcome.NOT_ATTEMPTED, Outcome.NOT_ATTEMPTED]
    assert await refs(desk, status="closed") == {a}


async def test_the_command_line_searches_the_inbox_and_pages(
    desk: Desk, database_url: str, workdir: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import json

    from helpdesk.cli import main

    for name in ("HELPDESK_SMTP_HOST", "HELPDESK_IMAP_HOST", "HELPDESK_TELEGRAM_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HELPDESK_DATABASE_URL", database_url)
    first = await mail(desk, "Сохранение биоразнообразия", "Просим помочь", ALIYA)
    second = await mail(desk, "Биоразнообразие степей", "Ещё вопрос", ALIYA)
    await mail(desk, "Unrelated", "Nothing")

    def run(*argv: str) -> tuple[int, str]:
        import contextlib
        import io

        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = main(list(argv))
        return code, out.getvalue()

    # The CLI runs its own event loop: off this test's loop, in a thread.
    code, out = await asyncio.to_thread(run, "tickets", "search", "биоразнообразие", "--per-page", "1")
    assert code == 0 and second in out and "1 of 2 tickets" in out and "--after" in out
    after = out.rsplit("--after ", 1)[1].strip()
    code, out = await asyncio.to_thread(
        run, "tickets", "search", "биоразнообразие", "--per-page", "1", "--after", after, "--format", "json"
    )
    assert code == 0 and [r["reference"] for r in json.loads(out)["rows"]] == [first]
    code, out = await asyncio.to_thread(run, "tickets", "search", "--party", "XX")
    assert code == 1 and "unknown Party 'XX'" in out


async def test_a_search_with_many_matches_finds_the_same_tickets(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite walks the newest tickets instead of sorting the matches when they are many: same answer."""
    from helpdesk.usecases import inbox as module

    made = [await mail(desk, f"Wetlands {i}", "Ramsar sites") for i in range(4)]
    await mail(desk, "Other", "Nothing")
    few = await page(desk, q="ramsar wetlands", per_page=3)
    monkeypatch.setattr(module, "MANY", 1)
    many = await page(desk, q="ramsar wetlands", per_page=3)
    assert few == many and [r.reference for r in many.rows] == made[:0:-1]
    rest = await page(desk, q="ramsar wetlands", per_page=3, after=many.next_after)
    assert [r.reference for r in rest.rows] == [made[0]] and rest.total == 4


async def test_two_messages_written_at_once_on_one_ticket_are_both_found(
    desk: Desk, engine: AsyncEngine
) -> None:
    """PostgreSQL: the second writer's document is built after the first commits, so it holds both words."""
    import asyncio

    from sqlalchemy import func, insert, text

    from helpdesk.db.models import Message

    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    reference = await mail(desk, "Question", "First text")
    async with desk.sessions() as session:
        ticket_id = await session.scalar(select(Ticket.id).where(Ticket.reference == reference))

    def message(body: str) -> object:
        return insert(Message).values(ticket_id=ticket_id, kind="inbound", channel="email", body=body)

    async with engine.connect() as first, engine.connect() as second, engine.connect() as watcher:
        await first.execute(message("walrus"))
        blocked = asyncio.create_task(second.execute(message("okapi")))
        waiting = text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        )
        while not await watcher.scalar(waiting):  # until the second writer waits on the first
            assert not blocked.done()
            await asyncio.sleep(0.01)
        await first.commit()
        await blocked
        await second.commit()
        assert await watcher.scalar(select(func.count()).select_from(Message.__table__)) >= 3
    assert await refs(desk, q="walrus okapi") == {reference}


async def test_an_automatic_receipt_leaves_the_search_document_alone(desk: Desk, engine: AsyncEngine) -> None:
    """Migration 0019: inserting a message the document leaves out does not rebuild it; one it reads does,
    and an update that brings a receipt's text into the document still rebuilds it."""
    from sqlalchemy import insert, text

    from helpdesk.db.models import Message

    reference = await mail(desk, "Question", "First text")
    async with desk.sessions() as session:
        ticket_id = await session.scalar(select(Ticket.id).where(Ticket.reference == reference))

    def message(body: str, *, kind: str, automatic: bool) -> object:
        row = {"ticket_id": ticket_id, "kind": kind, "channel": "email", "body": body, "automatic": automatic}
        return insert(Message).values(**row).returning(Message.id)

    async def index_writes(statement: object) -> tuple[int, int]:
        """Rows it and its triggers wrote (SQLite), or whether the search row changed (PostgreSQL)."""
        async with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                version = text("SELECT xmin::text FROM ticket_search WHERE ticket_id = :id")
                before = await connection.scalar(version, {"id": ticket_id})
                new_id = (await connection.execute(statement)).scalar_one()  # type: ignore[call-overload]
                changed = await connection.scalar(version, {"id": ticket_id}) != before
                return new_id, int(changed)
            before = await connection.scalar(text("SELECT total_changes()"))
            new_id = (await connection.execute(statement)).scalar_one()  # type: ignore[call-overload]
            return new_id, await connection.scalar(text("SELECT total_changes()")) - before - 1

    receipt, rebuilt = await index_writes(message("walrus receipt", kind="outbound", automatic=True))
    assert rebuilt == 0
    assert await refs(desk, q="walrus") == set()
    _, rebuilt = await index_writes(message("okapi question", kind="inbound", automatic=False))
    assert rebuilt > 0
    assert await refs(desk, q="okapi") == {reference}
    async with engine.begin() as connection:
        await connection.execute(update(Message).where(Message.id == receipt).values(automatic=False))
    assert await refs(desk, q="walrus") == {reference}


async def test_the_index_holds_what_a_rebuild_would_as_messages_come(desk: Desk, engine: AsyncEngine) -> None:
    """Migration 0020: on PostgreSQL a new message is appended to the document; across both bounds (100
    messages, 100,000 characters), receipts, a rebuild in between (a body scrubbed) and a row written
    before the counts existed, the index holds the lexemes a rebuild from the view gives (SQLite: text)."""
    from sqlalchemy import delete, insert, text

    from helpdesk.db.models import Message

    async def ticket_of(reference: str) -> int:
        async with desk.sessions() as session:
            return (await session.scalar(select(Ticket.id).where(Ticket.reference == reference))) or 0

    async def add(ticket_id: int, *bodies: str, kind: str = "inbound", automatic: bool = False) -> None:
        async with engine.begin() as connection:
            for body in bodies:  # one INSERT each: the trigger runs per message, as intake's do
                row = {"ticket_id": ticket_id, "kind": kind, "channel": "email", "body": body}
                await connection.execute(insert(Message).values(**row, automatic=automatic))

    postgresql = engine.dialect.name == "postgresql"
    indexed = (
        text("SELECT strip(document)::text FROM ticket_search WHERE ticket_id = :id")
        if postgresql
        else text("SELECT document FROM ticket_search WHERE rowid = :id")
    )
    rebuilt = (
        text(
            "SELECT strip(to_tsvector('russian', document))::text"
            " FROM ticket_search_documents WHERE ticket_id = :id"
        )
        if postgresql
        else text("SELECT document FROM ticket_search_documents WHERE ticket_id = :id")
    )

    async def same_as_rebuild(ticket_id: int) -> None:
        async with engine.connect() as connection:
            assert await connection.scalar(indexed, {"id": ticket_id}) == await connection.scalar(
                rebuilt, {"id": ticket_id}
            )

    short = await ticket_of(await mail(desk, "Ёлки", "Вопрос о заповедниках"))
    await add(short, "Ещё вопрос: ёжики и охраняемые территории", "Follow-up about e-mail x.y@z.org")
    await add(short, "receipt words kangaroo", kind="outbound", automatic=True)
    await add(short, "Third: wetlands")
    await same_as_rebuild(short)
    if postgresql:  # appended, not rebuilt: the rebuild function is not called for a new message
        async with engine.begin() as connection:
            await connection.execute(text("SET LOCAL track_functions = 'all'"))
            await connection.execute(
                insert(Message).values(ticket_id=short, kind="note", channel="web", body="x")
            )
            calls = text(
                "SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions WHERE funcname = :name"
            )
            assert await connection.scalar(calls, {"name": "ticket_search_on_message_insert"}) == 1
            assert await connection.scalar(calls, {"name": "ticket_search_refresh"}) == 0
    assert await refs(desk, q="wetlands") == {await _reference(desk, short)}
    assert await refs(desk, q="kangaroo") == set()

    many = await ticket_of(await mail(desk, "Many", "first"))
    await add(many, *(f"message{n} word{n}" for n in range(2, 106)))
    await same_as_rebuild(many)
    assert await refs(desk, q="message99") == {await _reference(desk, many)}
    assert await refs(desk, q="message101") == set()  # past the first 100 messages

    long = await ticket_of(await mail(desk, "Long", "start"))
    for n in range(7):  # 18,000 characters each: the 100,000 are crossed in the sixth
        await add(long, f"para{n} " + "lorem ipsum dolor " * 1_000 + f"tail{n}")
    await same_as_rebuild(long)
    assert await refs(desk, q="tail4") == {await _reference(desk, long)}
    assert await refs(desk, q="tail5") == set()
    assert await refs(desk, q="para5") == {await _reference(desk, long)}  # its beginning is in

    # A rebuild in between (a body scrubbed), then appends again.
    async with engine.begin() as connection:
        await connection.execute(
            update(Message).where(Message.ticket_id == short, Message.body.like("Third%")).values(body="")
        )
    await add(short, "Fourth: peatlands")
    await same_as_rebuild(short)
    assert await refs(desk, q="wetlands") == set()

    # A row written before the counts existed (or by 0011's refresh) is rebuilt at its next message.
    if postgresql:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "UPDATE ticket_search SET messages_counted = NULL, source_chars = NULL"
                    " WHERE ticket_id = :id"
                ),
                {"id": short},
            )
            await connection.execute(delete(Message).where(Message.ticket_id == short, Message.body == ""))
    await add(short, "Fifth: mangroves")
    await same_as_rebuild(short)
    assert await refs(desk, q="mangroves") == {await _reference(desk, short)}


async def _reference(desk: Desk, ticket_id: int) -> str:
    async with desk.sessions() as session:
        return (await session.scalar(select(Ticket.reference).where(Ticket.id == ticket_id))) or ""
