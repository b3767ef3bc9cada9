"""The inbox query: one page of tickets for a view, filters and a search, newest activity first.

Paging is by keyset, not offset: a page ends with a cursor (the last row's updated_at and id) and the next
page starts strictly after it. Each page costs the same at any depth (an index seek, where OFFSET 50,000
reads 50,000 rows), and a ticket that arrives or changes while staff page on cannot push a row onto the
next page a second time. The total is counted up to ``TOTAL_CAP`` rows, so no count reads 100,000 tickets.

Targets and core functions are filtered through ``ticket_targets`` (rows kept from the classification
JSON by triggers, migration 0011), the search through the full-text index (``ticket_search.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, Select, and_, case, func, literal, select, text, true, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk import lifecycle
from helpdesk.db.models import Requester, Ticket, TicketTarget
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.reports.queries import HANDLED_AT
from helpdesk.usecases.errors import DeskError
from helpdesk.usecases.reclassify import CORE_FUNCTIONS, TARGETS
from helpdesk.usecases.ticket_search import matching_ticket_ids, search_words
from knowledge.models import PARTY_CODES

MAX_PER_PAGE = 200
# Beyond this the inbox says "1,000+": counting further would read the history for a number.
TOTAL_CAP = 1_000
# From this many tickets in an id set (a search's matches, a target's tickets) on, the page is found by
# walking the tickets newest first and keeping those in the set (stops after a page) rather than sorting
# the whole set (SQLite at 100,000 tickets, a word in every ticket: 176 ms → 39 ms); fewer are looked up
# by id (see ``_among``). The same as the count's cap: a set this large is "1,000+" anyway.
MANY = TOTAL_CAP
UNASSIGNED = "none"
ACTIVE_STATUS = "active"


class InvalidCriteria(DeskError):
    """An inbox request the desk cannot answer (unknown view, status, Party, a damaged page link)."""


@dataclass(frozen=True)
class Context:
    """What a view's rule may depend on besides the ticket: who is looking, and when."""

    viewer: str | None
    now: datetime
    response_target_hours: float


def past_response_target(ctx: Context) -> ColumnElement[bool]:
    """Not answered, resolved or closed within the response target (the reports' "waiting past target").

    Only an active ticket can be unhandled (resolving or closing sets a time; a reopened ticket keeps its
    first response), so the status condition changes no result: it lets the status index serve the view.
    """
    due_by = ctx.now - timedelta(hours=ctx.response_target_hours)
    return and_(Ticket.status.in_(lifecycle.ACTIVE), HANDLED_AT.is_(None), Ticket.created_at < due_by)


def _mine(ctx: Context) -> ColumnElement[bool]:
    if not ctx.viewer:
        raise InvalidCriteria("the view 'mine' needs the staff member who is looking")
    return and_(Ticket.assignee == ctx.viewer, Ticket.status.in_(lifecycle.ACTIVE))


# The views in the order staff see them; each is a rule over the ticket.
VIEWS: dict[str, Callable[[Context], ColumnElement[bool]]] = {
    "new": lambda ctx: Ticket.status == lifecycle.Status.NEW,
    "unassigned": lambda ctx: and_(Ticket.assignee.is_(None), Ticket.status.in_(lifecycle.ACTIVE)),
    "mine": _mine,
    "waiting": lambda ctx: Ticket.status == lifecycle.Status.WAITING,
    "overdue": past_response_target,
    "all": lambda ctx: true(),
}


@dataclass(frozen=True)
class InboxCriteria:
    view: str = "all"
    party: str | None = None
    target: int | None = None
    core_function: int | None = None
    channel: str | None = None
    # A status, or "active" (new, open, waiting).
    status: str | None = None
    # A staff handle, or "none" for unassigned.
    assignee: str | None = None
    q: str | None = None
    # The cursor of the previous page (``InboxPage.next_after``); None for the first page.
    after: str | None = None
    per_page: int = 50
    # The staff member looking, as tickets name their assignee: the view "mine".
    viewer: str | None = None


@dataclass(frozen=True)
class InboxRow:
    reference: str
    subject: str
    requester: str
    party: str | None
    status: str
    assignee: str | None
    channel: str
    language: str | None
    created_at: datetime
    updated_at: datetime
    overdue: bool
    # The primary KM-GBF target, None when unclassified.
    top_target: int | None


@dataclass(frozen=True)
class InboxPage:
    rows: list[InboxRow]
    # Matching tickets, counted up to TOTAL_CAP (then ``total_capped``).
    total: int
    total_capped: bool
    # Pass as ``after`` for the next page; None on the last page.
    next_after: str | None

    @property
    def has_next(self) -> bool:
        return self.next_after is not None


def encode_cursor(updated_at: datetime, ticket_id: int) -> str:
    since_epoch = updated_at.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    micros = (since_epoch.days * 86_400 + since_epoch.seconds) * 1_000_000 + since_epoch.microseconds
    return f"{micros}.{ticket_id}"


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    micros, dot, ticket_id = cursor.partition(".")
    if not (dot and micros.lstrip("-").isdigit() and ticket_id.isdigit()) or len(cursor) > 40:
        raise InvalidCriteria("this page link is damaged or out of date; start again from the first page")
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(micros)), int(ticket_id)


def _requester_display() -> ColumnElement[str]:
    return func.coalesce(Requester.name, Requester.email, "—")


def _top_target() -> ColumnElement[int | None]:
    return (
        select(TicketTarget.number)
        .where(TicketTarget.ticket_id == Ticket.id, TicketTarget.kind == "target")
        .order_by(TicketTarget.rank)
        .limit(1)
        .scalar_subquery()
    )


def _classified_as(kind: str, number: int) -> Select[tuple[int]]:
    return select(TicketTarget.ticket_id).where(TicketTarget.kind == kind, TicketTarget.number == number)


async def _among(session: AsyncSession, ids: Select[tuple[int]]) -> ColumnElement[bool]:
    """Tickets whose id is in ``ids``, shaped for the plan that serves the set's size best.

    Neither database can estimate a set like this (SQLite keeps no statistics; PostgreSQL guesses 2 % for a
    prefix search, or 40 rows for two words in every ticket, and then walks 100,000 tickets, or sorts them).
    So the set is read first, up to ``MANY`` ids: a small set is given as its ids, served by primary key.
    A large one is tested ticket by ticket while the paging index is walked newest first, which stops after
    a page: on PostgreSQL as a correlated EXISTS (``OFFSET 0`` keeps it from becoming a join over the whole
    set), on SQLite as ``tickets.id + 0 IN (…)`` (FTS5 is slow to ask per row; the ``+ 0`` keeps the id
    index out of the plan).
    """
    found = list(await session.scalars(ids.limit(MANY)))
    if len(found) < MANY:
        return Ticket.id.in_(found)
    if session.get_bind().dialect.name == "postgresql":
        return ids.where(ids.selected_columns[0] == Ticket.id).offset(0).exists()
    return (Ticket.id + 0).in_(ids)


async def conditions(
    session: AsyncSession, criteria: InboxCriteria, ctx: Context
) -> list[ColumnElement[bool]]:
    """The WHERE of the view, the filters and the search; refuses what it cannot answer."""
    view = VIEWS.get(criteria.view)
    if view is None:
        raise InvalidCriteria(f"unknown view {criteria.view!r}; choose one of {', '.join(VIEWS)}")
    where = [view(ctx)]
    if criteria.party:
        party = criteria.party.strip().upper()
        if party not in PARTY_CODES:
            raise InvalidCriteria(f"unknown Party {criteria.party!r}; choose one of {', '.join(PARTY_CODES)}")
        where.append(Ticket.party == party)
    if criteria.status == ACTIVE_STATUS:
        where.append(Ticket.status.in_(lifecycle.ACTIVE))
    elif criteria.status:
        if criteria.status not in {s.value for s in lifecycle.Status}:
            allowed = ", ".join((*lifecycle.Status, ACTIVE_STATUS))
            raise InvalidCriteria(f"unknown status {criteria.status!r}; choose one of {allowed}")
        where.append(Ticket.status == criteria.status)
    if criteria.target is not None:
        if criteria.target not in TARGETS:
            raise InvalidCriteria(f"no KM-GBF target {criteria.target} (use 1–23)")
        where.append(await _among(session, _classified_as("target", criteria.target)))
    if criteria.core_function is not None:
        if criteria.core_function not in CORE_FUNCTIONS:
            raise InvalidCriteria(f"no core function {criteria.core_function} (use 1–11)")
        where.append(await _among(session, _classified_as("core_function", criteria.core_function)))
    if criteria.channel:
        where.append(Ticket.channel == criteria.channel)
    if criteria.assignee and criteria.assignee.strip().lower() == UNASSIGNED:
        where.append(Ticket.assignee.is_(None))
    elif criteria.assignee:
        where.append(Ticket.assignee == criteria.assignee.strip())
    if words := search_words(criteria.q):
        where.append(await _among(session, matching_ticket_ids(session.get_bind().dialect.name, words)))
    return where


async def inbox(
    desk: Desk, criteria: InboxCriteria, *, response_target_hours: float, now: datetime | None = None
) -> InboxPage:
    """One page of the inbox (``response_target_hours``: Settings.response_target_hours)."""
    if not 1 <= criteria.per_page <= MAX_PER_PAGE:
        raise InvalidCriteria(f"per_page must be 1–{MAX_PER_PAGE}, not {criteria.per_page}")
    after = decode_cursor(criteria.after) if criteria.after else None
    ctx = Context(criteria.viewer, now or utcnow(), response_target_hours)
    async with desk.sessions() as session:
        if session.get_bind().dialect.name == "postgresql":
            # asyncpg prepares statements, and after five runs PostgreSQL may switch to a generic plan, made
            # without the values: "status = $1" planned for any status walks the newest tickets for "new"
            # (80 ms instead of 1 at 100,000 tickets). The page's plan depends on its values; plan each run.
            await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        where = await conditions(session, criteria, ctx)
        page = await _page(session, where, ctx, after, criteria.per_page + 1)
        counted = await session.scalar(
            select(func.count()).select_from(select(Ticket.id).where(*where).limit(TOTAL_CAP + 1).subquery())
        )
    more = len(page) > criteria.per_page
    page = page[: criteria.per_page]
    total = counted or 0
    return InboxPage(
        rows=[row for _, row in page],
        total=min(total, TOTAL_CAP),
        total_capped=total > TOTAL_CAP,
        next_after=encode_cursor(page[-1][1].updated_at, page[-1][0]) if more else None,
    )


async def _page(
    session: AsyncSession,
    where: list[ColumnElement[bool]],
    ctx: Context,
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[tuple[int, InboxRow]]:
    # The page's ids first, then their columns: ordering 5,000 matches carries two columns, not thirteen
    # and a subquery each (measured: 60 ms → 5 ms for a common word at 5,000 tickets on SQLite).
    ids = select(Ticket.id, Ticket.updated_at).where(*where)
    if after is not None:
        updated_at, ticket_id = after
        ids = ids.where(
            tuple_(Ticket.updated_at, Ticket.id)
            < tuple_(literal(updated_at, Ticket.updated_at.type), literal(ticket_id, Ticket.id.type))
        )
    chosen = ids.order_by(Ticket.updated_at.desc(), Ticket.id.desc()).limit(limit).subquery()
    query = (
        select(
            Ticket.id,
            Ticket.reference,
            Ticket.subject,
            _requester_display(),
            Ticket.party,
            Ticket.status,
            Ticket.assignee,
            Ticket.channel,
            Ticket.language,
            Ticket.created_at,
            Ticket.updated_at,
            case((past_response_target(ctx), True), else_=False),
            _top_target(),
        )
        .join(chosen, chosen.c.id == Ticket.id)
        .join(Requester, Requester.id == Ticket.requester_id)
        .order_by(chosen.c.updated_at.desc(), chosen.c.id.desc())
    )
    return [(row[0], InboxRow(*row[1:])) for row in await session.execute(query)]
