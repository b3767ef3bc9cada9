"""A report as one plain dictionary: the figures from SQL, labelled with the knowledge base's titles.

Every output format (Markdown, HTML, CSV, DOCX, JSON) renders this same dictionary, so they always agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpdesk.db.models import Ticket
from helpdesk.rendering import render
from helpdesk.reports.anonymise import anonymise
from helpdesk.reports.labels import CHANNELS, LABELS, STATUSES
from helpdesk.reports.matchmaking import matchmaking
from helpdesk.reports.period import Period, month_label
from helpdesk.reports.queries import PRIMARY_CORE_FUNCTION, PRIMARY_TARGET, ReportQueries
from knowledge import KnowledgeBase, load_knowledge_base

EXAMPLE_TARGETS = 3
EXAMPLES_PER_TARGET = 3
PARTIES_SERVED = 9


async def build_report(
    sessions: async_sessionmaker[AsyncSession],
    period: Period,
    *,
    language: str = "en",
    response_target_hours: float = 48.0,
    now: datetime | None = None,
    kb: KnowledgeBase | None = None,
) -> dict[str, Any]:
    language = language if language in LABELS else "en"
    now = now or datetime.now(UTC)
    kb = kb or load_knowledge_base()
    async with sessions() as session:
        connection = await session.connection()
        current = await _figures(ReportQueries(connection, period), response_target_hours, now)
        previous_period = period.previous()
        previous = await _figures(ReportQueries(connection, previous_period), response_target_hours, now)
        queries = ReportQueries(connection, period)
        by_month = await queries.by_month(period.trend_months())
        by_channel = await queries.group(Ticket.channel)
        by_party = await queries.group(Ticket.party)
        by_target = await queries.group(PRIMARY_TARGET)
        by_core_function = await queries.group(PRIMARY_CORE_FUNCTION)
        by_status = await queries.group(Ticket.status)
        by_assignee = await queries.group(Ticket.assignee)
        experts = await queries.experts()
        matchmaking_figures = await matchmaking(queries)
        resources = await queries.resources()
        top_targets = [int(key) for key, _ in by_target if key is not None][:EXAMPLE_TARGETS]
        example_rows = await queries.examples(top_targets, EXAMPLES_PER_TARGET)
        first_ticket = await session.scalar(select(func.min(Ticket.created_at)))
        parties_served = await session.scalar(
            select(func.count(distinct(Ticket.party))).where(queries.received, Ticket.party.is_not(None))
        )

    labels = LABELS[language]
    received = current["totals"]["received"]

    def items(rows: list[tuple[Any, int]], label: Any) -> list[dict[str, Any]]:
        return [
            {"key": key, "label": label(key), "count": n, "share": round(n / received, 4) if received else 0}
            for key, n in rows
        ]

    def target_label(number: Any) -> str:
        if number is None:
            return labels["unclassified"]
        target = kb.targets.get(int(number))
        word = "Target" if language == "en" else "Задача"
        if target is None:
            return f"{word} {number}"
        return f"{word} {number} — {target.title_ru if language == 'ru' else target.title_en}"

    def core_function_label(number: Any) -> str:
        if number is None:
            return labels["unclassified"]
        cf = kb.core_functions.get(int(number))
        word = "Function" if language == "en" else "Функция"
        if cf is None:
            return f"{word} {number}"
        return f"{word} {number} — {cf.title_ru if language == 'ru' else cf.title_en}"

    def party_label(code: Any) -> str:
        party = kb.parties.get(code) if code else None
        if party is None:
            return code or labels["not_set"]
        return party.name_ru if language == "ru" else party.name_en

    examples: list[dict[str, Any]] = []
    for number in top_targets:
        texts = [
            anonymise(f"{row['subject']}\n{row['body']}" if row["body"] else row["subject"], row["known"])
            for row in example_rows
            if row["target"] == number
        ]
        examples.append(
            {"target": number, "label": target_label(number), "requests": [t for t in texts if t]}
        )

    report: dict[str, Any] = {
        "title": labels["title"],
        "language": language,
        "period": _period_json(period, language),
        "previous_period": _period_json(previous_period, language),
        "generated_at": now.astimezone(period.zone).isoformat(timespec="minutes"),
        "totals": {**current["totals"], "parties_served": int(parties_served or 0)},
        "times": current["times"],
        "response_target": current["response_target"],
        "by_channel": items(by_channel, lambda k: CHANNELS[language].get(k, k)),
        "by_party": items(by_party, party_label),
        "by_target": items(by_target, target_label),
        "by_core_function": items(by_core_function, core_function_label),
        "by_status": items(by_status, lambda k: STATUSES[language].get(k, k)),
        "by_assignee": items(by_assignee, lambda k: k or labels["unassigned"]),
        "by_month": [
            {"key": key, "label": month_label(datetime.strptime(key, "%Y-%m").date(), language), "count": n}
            for key, n in by_month
        ],
        "experts": experts,
        "resources": resources,
        "matchmaking": _matchmaking_labelled(
            matchmaking_figures, party_label, target_label, core_function_label
        ),
        "previous": previous,
        "comparison": _comparison(current, previous),
        "examples": examples,
        "help_desk_since": first_ticket.astimezone(period.zone).date().isoformat() if first_ticket else None,
    }
    report["summary"] = _summary(report, period, language)
    return report


async def _figures(queries: ReportQueries, target_hours: float, now: datetime) -> dict[str, Any]:
    totals = await queries.totals()
    received = totals["received"]
    totals["unclassified_share"] = round(totals["unclassified"] / received, 4) if received else None
    return {
        "totals": totals,
        "times": {
            "first_response": (await queries.first_response()).to_json(),
            "resolution": (await queries.resolution()).to_json(),
        },
        "response_target": await queries.response_target(target_hours, now),
    }


def _period_json(period: Period, language: str) -> dict[str, Any]:
    return {
        "key": period.key,
        "from": period.first.isoformat(),
        "to": period.last.isoformat(),
        "label": period.label(language),
        "timezone": period.timezone,
    }


def _comparison(current: dict[str, Any], previous: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [
        ("received", current["totals"]["received"], previous["totals"]["received"]),
        ("resolved", current["totals"]["resolved"], previous["totals"]["resolved"]),
        ("open_at_end", current["totals"]["open_at_end"], previous["totals"]["open_at_end"]),
        (
            "first_response",
            current["times"]["first_response"]["median_hours"],
            previous["times"]["first_response"]["median_hours"],
        ),
        (
            "resolution",
            current["times"]["resolution"]["median_hours"],
            previous["times"]["resolution"]["median_hours"],
        ),
        (
            "past_target",
            current["response_target"]["past_target"],
            previous["response_target"]["past_target"],
        ),
        (
            "unclassified_share",
            current["totals"]["unclassified_share"],
            previous["totals"]["unclassified_share"],
        ),
    ]
    out = []
    for key, now_value, before in rows:
        change = None
        if now_value is not None and before is not None:
            change = round(now_value - before, 4)
        out.append({"key": key, "current": now_value, "previous": before, "change": change})
    return out


def _summary(report: dict[str, Any], period: Period, language: str) -> dict[str, Any]:
    """The activity report's row for the help-desk output, and the figures Part III asks for."""
    operating = report["help_desk_since"] is not None and report["help_desk_since"] <= period.last.isoformat()
    status = {
        "en": ("Completed", "In progress"),
        "ru": ("Выполнено", "В процессе"),
    }[language][0 if operating else 1]
    context = {
        "r": report,
        "operating": operating,
        "since": report["help_desk_since"],
        "top_targets": [t for t in report["by_target"] if t["key"] is not None][:3],
        "parties": [p for p in report["by_party"] if p["key"] is not None],
        "channels": report["by_channel"],
        "parties_total": PARTIES_SERVED,
        "pct": format_percent,
        "hours": format_hours,
    }
    details = render("reports/summary.{lang}.txt.j2", language, **context).strip()
    figures = [
        line.removeprefix("- ").strip()
        for line in render("reports/part3.{lang}.txt.j2", language, **context).splitlines()
        if line.strip()
    ]
    cooperation = render("reports/part2_section4.{lang}.txt.j2", language, r=report, L=LABELS[language])
    return {
        "status": status,
        "details": " ".join(details.split()),
        "figures": figures,
        "part2_section4": " ".join(cooperation.split()),
    }


def _matchmaking_labelled(figures: dict[str, Any], *labels: Any) -> dict[str, Any]:
    """The matchmaking figures with each breakdown's keys labelled like the report's own breakdowns."""
    party, target, core_function = labels
    out = dict(figures)
    for name, label in (("by_party", party), ("by_target", target), ("by_core_function", core_function)):
        out[name] = [{"key": key, "label": label(key), "count": n} for key, n in figures[name]]
    out["organisations"] = [
        {"key": key, "label": key or "–", "count": n} for key, n in figures["organisations"]
    ]
    return out


def format_percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f} %"


def format_hours(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"
