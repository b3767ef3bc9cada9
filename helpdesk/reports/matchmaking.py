"""The report's matchmaking figures (issue #14): referrals made in the period and what came of them.

Counted per referral offered in the period (its answer may come later: the figures of a past period
grow until every offer is answered), except introductions and outcomes, counted when they happened.
Organisations are named, people never: the report leaves the Centre.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, func, select

from helpdesk.db.models import Referral, Ticket
from helpdesk.reports.queries import PRIMARY_CORE_FUNCTION, PRIMARY_TARGET, ReportQueries, hours_between
from helpdesk.usecases.referrals import STATES


async def matchmaking(queries: ReportQueries) -> dict[str, Any]:
    connection, period = queries.connection, queries.period
    made = and_(Referral.offered_at >= period.start, Referral.offered_at < period.end)
    states = (
        await connection.execute(
            select(*(func.count(case((Referral.state == s, 1))) for s in STATES)).where(made)
        )
    ).one()
    by_state = dict(zip(STATES, (int(n) for n in states), strict=True))
    introduced = await connection.scalar(
        select(func.count()).where(
            Referral.introduced_at >= period.start, Referral.introduced_at < period.end
        )
    )
    in_outcome_period = and_(Referral.outcome_at >= period.start, Referral.outcome_at < period.end)
    outcomes = await connection.execute(
        select(Referral.outcome, func.count()).where(in_outcome_period).group_by(Referral.outcome)
    )
    first_answer = await queries.quantiles(
        hours_between(queries.dialect, Referral.first_answer_at, Referral.offered_at),
        and_(made, Referral.first_answer_at.is_not(None)),
    )

    async def grouped(expression: Any) -> list[list[Any]]:
        keyed = (
            select(expression.label("key"))
            .select_from(Referral)
            .join(Ticket, Ticket.id == Referral.ticket_id)
            .where(made)
            .subquery()
        )
        count = func.count().label("n")
        rows = await connection.execute(
            select(keyed.c.key, count).group_by(keyed.c.key).order_by(count.desc(), keyed.c.key)
        )
        return [[key, int(n)] for key, n in rows.all()]

    return {
        "made": sum(by_state.values()),
        **by_state,
        "first_answer": first_answer.to_json(),
        "introductions": int(introduced or 0),
        "outcomes": {outcome: int(n) for outcome, n in outcomes.all()},
        "by_party": await grouped(Ticket.party),
        "by_target": await grouped(PRIMARY_TARGET),
        "by_core_function": await grouped(PRIMARY_CORE_FUNCTION),
        "organisations": await grouped(Referral.organisation),
    }
