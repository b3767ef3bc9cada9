"""Every figure of a report comes from SQL here: GROUP BY over the tickets, one code path for both databases.

Where the dialects differ (JSON arrays, time differences) a helper picks the form; the result rows are the
same on SQLite and PostgreSQL. Classification is read from the JSON the classifier stored: the primary
target is `classification.targets[0].target`, the primary core function `core_functions[0]`; a ticket
counts as unclassified when it has no primary target or the classifier marked it unclassified.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    and_,
    case,
    false,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from helpdesk.db.models import Message, OutboxItem, Requester, Ticket
from helpdesk.reports.period import Period, add_months

# A reply that lands exactly on the target is in time; julianday() arithmetic is not exact to the microsecond.
EPSILON_HOURS = 1e-6

_TARGET_PATH = Ticket.classification[("targets", 0, "target")].as_integer()
_CORE_FUNCTION_PATH = Ticket.classification[("core_functions", 0, "core_function")].as_integer()
_UNCLASSIFIED_FLAG = Ticket.classification["unclassified"].as_boolean()
CLASSIFIED = and_(_TARGET_PATH.is_not(None), func.coalesce(_UNCLASSIFIED_FLAG, false()) == false())
PRIMARY_TARGET = case((CLASSIFIED, _TARGET_PATH), else_=None)
PRIMARY_CORE_FUNCTION = case((CLASSIFIED, _CORE_FUNCTION_PATH), else_=None)
DONE_AT = func.coalesce(Ticket.resolved_at, Ticket.closed_at)
# For the response target a ticket closed without a reply (a duplicate, spam) was handled when it was closed.
HANDLED_AT = func.coalesce(Ticket.first_response_at, Ticket.resolved_at, Ticket.closed_at)


def hours_between(dialect: str, later: Any, earlier: Any) -> ColumnElement[float]:
    if dialect == "postgresql":
        return func.extract("epoch", later - earlier) / 3600.0
    return (func.julianday(later) - func.julianday(earlier)) * 24.0


def json_elements(
    dialect: str, column: Any, path: tuple[str, ...], fields: Sequence[str]
) -> tuple[Any, dict[str, Any]]:
    """A table of the elements of the JSON array at `path` in `column`, and an expression per wanted field."""
    if dialect == "postgresql":
        elements = func.json_array_elements(column[path]).table_valued("value", joins_implicitly=True)
        # A literal, not a bind parameter: `json ->> $1` leaves PostgreSQL to guess text or integer.
        return elements, {f: elements.c.value.op("->>")(literal_column(f"'{f}'")) for f in fields}
    elements = func.json_each(column, "$." + ".".join(path)).table_valued("value", joins_implicitly=True)
    return elements, {f: func.json_extract(elements.c.value, f"$.{f}") for f in fields}


@dataclass
class Quantiles:
    count: int
    median: float | None
    p90: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "median_hours": None if self.median is None else round(self.median, 2),
            "p90_hours": None if self.p90 is None else round(self.p90, 2),
        }


class ReportQueries:
    """The queries for one period, run on one connection (one consistent snapshot on PostgreSQL)."""

    def __init__(self, connection: AsyncConnection, period: Period) -> None:
        self.connection = connection
        self.dialect = connection.dialect.name
        self.period = period
        self.received = and_(Ticket.created_at >= period.start, Ticket.created_at < period.end)

    async def totals(self) -> dict[str, int]:
        start, end = self.period.start, self.period.end
        resolved = and_(DONE_AT >= start, DONE_AT < end)
        open_at_end = or_(DONE_AT.is_(None), DONE_AT >= end)
        row = (
            await self.connection.execute(
                select(
                    func.count(case((self.received, 1))),
                    func.count(case((resolved, 1))),
                    func.count(case((open_at_end, 1))),
                    func.count(case((and_(self.received, ~CLASSIFIED), 1))),
                ).where(Ticket.created_at < end)
            )
        ).one()
        return {"received": row[0], "resolved": row[1], "open_at_end": row[2], "unclassified": row[3]}

    async def group(self, expression: Any) -> list[tuple[Any, int]]:
        """Tickets received in the period per value of `expression`, largest first."""
        # Grouping a subquery's column: PostgreSQL sees one expression, not two with separate bind parameters.
        keyed = select(expression.label("key")).where(self.received).subquery()
        count = func.count().label("n")
        rows = await self.connection.execute(
            select(keyed.c.key, count).group_by(keyed.c.key).order_by(count.desc(), keyed.c.key)
        )
        return [(key, n) for key, n in rows.all()]

    async def by_month(self, months: Sequence[date]) -> list[tuple[str, int]]:
        """Tickets received per local calendar month (bounds computed per month, so DST is right)."""
        bounds = [
            (m.strftime("%Y-%m"), self.period.local_start(m), self.period.local_start(add_months(m, 1)))
            for m in months
        ]
        start, end = bounds[0][1], bounds[-1][2]
        month = case(
            *((and_(Ticket.created_at >= lo, Ticket.created_at < hi), key) for key, lo, hi in bounds),
            else_=None,
        )
        keyed = select(month.label("key")).where(Ticket.created_at >= start, Ticket.created_at < end)
        keyed_sq = keyed.subquery()
        rows = await self.connection.execute(select(keyed_sq.c.key, func.count()).group_by(keyed_sq.c.key))
        counts = dict(rows.all())
        return [(key, int(counts.get(key, 0))) for key, _, _ in bounds]

    async def quantiles(self, hours: ColumnElement[float], where: Any) -> Quantiles:
        """Median and 90th percentile (linear between neighbours, as percentile_cont) ranked in SQL."""
        ranked = (
            select(
                hours.label("h"),
                func.row_number().over(order_by=hours).label("rn"),
                func.count().over().label("n"),
            )
            .where(where)
            .subquery()
        )
        n = ranked.c.n
        # Integer arithmetic for the ranks: the same on both databases (no floor() on older SQLite).
        median_lo = 1 + (n - 1) // 2
        p90_lo = 1 + ((n - 1) * 9) // 10
        row = (
            await self.connection.execute(
                select(
                    func.max(n),
                    func.max(case((ranked.c.rn == median_lo, ranked.c.h))),
                    func.max(case((ranked.c.rn == median_lo + 1, ranked.c.h))),
                    func.max(case((ranked.c.rn == p90_lo, ranked.c.h))),
                    func.max(case((ranked.c.rn == p90_lo + 1, ranked.c.h))),
                )
            )
        ).one()
        count = int(row[0] or 0)
        if count == 0:
            return Quantiles(0, None, None)
        return Quantiles(
            count,
            _interpolate(row[1], row[2], ((count - 1) * 1 % 2) / 2),
            _interpolate(row[3], row[4], ((count - 1) * 9 % 10) / 10),
        )

    async def first_response(self) -> Quantiles:
        hours = hours_between(self.dialect, Ticket.first_response_at, Ticket.created_at)
        return await self.quantiles(hours, and_(self.received, Ticket.first_response_at.is_not(None)))

    async def resolution(self) -> Quantiles:
        hours = hours_between(self.dialect, DONE_AT, Ticket.created_at)
        return await self.quantiles(hours, and_(DONE_AT >= self.period.start, DONE_AT < self.period.end))

    async def response_target(self, target_hours: float, now: datetime) -> dict[str, Any]:
        """Tickets received in the period against the response target, as of the period end (or now)."""
        as_of = min(self.period.end, now)
        waited = hours_between(self.dialect, HANDLED_AT, Ticket.created_at)
        due_by = as_of - timedelta(hours=target_hours)
        row = (
            await self.connection.execute(
                select(
                    func.count(
                        case((and_(HANDLED_AT.is_not(None), waited <= target_hours + EPSILON_HOURS), 1))
                    ),
                    func.count(
                        case((and_(HANDLED_AT.is_not(None), waited > target_hours + EPSILON_HOURS), 1))
                    ),
                    func.count(case((and_(HANDLED_AT.is_(None), Ticket.created_at < due_by), 1))),
                ).where(self.received)
            )
        ).one()
        within, late, waiting = (int(v) for v in row)
        due = within + late + waiting
        return {
            "hours": target_hours,
            "within": within,
            "answered_late": late,
            "waiting_past_target": waiting,
            "past_target": late + waiting,
            "within_share": round(within / due, 4) if due else None,
        }

    async def experts(self) -> dict[str, int]:
        """Experts proposed by the matcher for the period's tickets, and those actually given a ticket."""
        elements, fields = json_elements(self.dialect, Ticket.matches, ("experts",), ["expert"])
        expert = fields["expert"]
        proposed = (
            await self.connection.execute(
                select(func.count(func.distinct(expert)), func.count(func.distinct(Ticket.id)))
                .select_from(Ticket, elements)
                .where(self.received)
            )
        ).one()
        engaged = (
            await self.connection.execute(
                select(func.count(func.distinct(Ticket.assignee)), func.count(func.distinct(Ticket.id)))
                .select_from(Ticket, elements)
                .where(self.received, expert == Ticket.assignee)
            )
        ).one()
        return {
            "proposed": int(proposed[0]),
            "tickets_with_proposals": int(proposed[1]),
            "engaged": int(engaged[0]),
            "tickets_with_engaged_expert": int(engaged[1]),
        }

    async def resources(self) -> dict[str, int]:
        """Resource links in acknowledgements delivered (outbox items sent) that were queued in the period."""
        elements, fields = json_elements(self.dialect, OutboxItem.payload, ("extra", "resources"), ["url"])
        row = (
            await self.connection.execute(
                select(
                    func.count(),
                    func.count(func.distinct(fields["url"])),
                    func.count(func.distinct(OutboxItem.ticket_id)),
                )
                .select_from(OutboxItem, elements)
                .where(
                    OutboxItem.status == "sent",
                    OutboxItem.created_at >= self.period.start,
                    OutboxItem.created_at < self.period.end,
                )
            )
        ).one()
        return {"links_sent": int(row[0]), "distinct": int(row[1]), "tickets": int(row[2])}

    async def examples(self, targets: Sequence[int], per_target: int) -> list[dict[str, Any]]:
        """The newest few requests per target with the first message and what identifies the requester."""
        if not targets:
            return []
        target = PRIMARY_TARGET.label("target")
        ranked = (
            select(
                Ticket.id.label("ticket_id"),
                target,
                func.row_number()
                .over(partition_by=PRIMARY_TARGET, order_by=(Ticket.created_at.desc(), Ticket.id.desc()))
                .label("rn"),
            )
            .where(self.received, PRIMARY_TARGET.in_(list(targets)))
            .subquery()
        )
        first_message = (
            select(Message.ticket_id, func.min(Message.id).label("message_id"))
            .where(Message.kind == "inbound", Message.automatic == false())
            .group_by(Message.ticket_id)
            .subquery()
        )
        rows = await self.connection.execute(
            select(
                ranked.c.target.cast(Integer),
                ranked.c.rn,
                Ticket.subject,
                Message.body,
                Message.author,
                Requester.name,
                Requester.email,
            )
            .select_from(ranked)
            .join(Ticket, Ticket.id == ranked.c.ticket_id)
            .join(Requester, Requester.id == Ticket.requester_id)
            .outerjoin(first_message, first_message.c.ticket_id == Ticket.id)
            .outerjoin(Message, Message.id == first_message.c.message_id)
            .where(ranked.c.rn <= per_target)
            .order_by(ranked.c.target, ranked.c.rn)
        )
        return [
            {
                "target": int(r[0]),
                "subject": r[2],
                "body": r[3] or "",
                "known": [v for v in (r[4], r[5], r[6]) if v],
            }
            for r in rows.all()
        ]


def _interpolate(low: float | None, high: float | None, fraction: float) -> float | None:
    if low is None:
        return None
    if high is None or fraction == 0:
        return float(low)
    return float(low) + (float(high) - float(low)) * fraction
