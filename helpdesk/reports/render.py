"""The report dictionary in each format: Markdown, HTML (inline SVG charts), CSV, JSON and DOCX."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from html import escape
from typing import Any

from markupsafe import Markup

from helpdesk.rendering import environment
from helpdesk.reports.labels import LABELS

FORMATS = ("md", "html", "csv", "docx", "json")
BREAKDOWNS = ("by_channel", "by_party", "by_target", "by_core_function", "by_status", "by_assignee")


@dataclass(frozen=True)
class Table:
    id: str
    title: str
    columns: list[str]
    rows: list[list[str]]


def _number(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


def _change(key: str, value: float | None) -> str:
    if value is None:
        return "–"
    if key == "unclassified_share":
        return f"{value * 100:+.1f} pp"
    return f"{value:+.1f}" if isinstance(value, float) else f"{value:+d}"


def tables(report: dict[str, Any]) -> list[Table]:
    """The report as titled tables of display strings: what every document format lays out."""
    L = LABELS[report["language"]]
    totals, times, target = report["totals"], report["times"], report["response_target"]
    out = [
        Table(
            "headline",
            L["headline"],
            [L["item"], L["this_period"]],
            [
                [L["received"], _number(totals["received"])],
                [L["resolved"], _number(totals["resolved"])],
                [L["open_at_end"], _number(totals["open_at_end"])],
                [L["parties_served"], f"{totals['parties_served']} / 9"],
                [L["unclassified"], f"{totals['unclassified']} ({_percent(totals['unclassified_share'])})"],
            ],
        ),
        Table(
            "times",
            L["times"],
            [L["item"], L["count"], L["median"], L["p90"]],
            [
                [
                    L[name],
                    _number(times[name]["count"]),
                    _number(times[name]["median_hours"]),
                    _number(times[name]["p90_hours"]),
                ]
                for name in ("first_response", "resolution")
            ],
        ),
        Table(
            "response_target",
            f"{L['response_target']}: {target['hours']:g} {L['hours_unit']}",
            [L["item"], L["count"]],
            [
                [L["within_target"], f"{target['within']} ({_percent(target['within_share'])})"],
                [L["answered_late"], _number(target["answered_late"])],
                [L["waiting_past_target"], _number(target["waiting_past_target"])],
                [L["past_target"], _number(target["past_target"])],
            ],
        ),
    ]
    for name in BREAKDOWNS:
        out.append(
            Table(
                name,
                L[name],
                [L["item"], L["count"], L["share"]],
                [[row["label"], _number(row["count"]), _percent(row["share"])] for row in report[name]],
            )
        )
    out.append(
        Table(
            "by_month",
            L["by_month"],
            [L["period"], L["count"]],
            [[row["label"], _number(row["count"])] for row in report["by_month"]],
        )
    )
    experts, resources = report["experts"], report["resources"]
    out.append(
        Table(
            "experts",
            L["experts"],
            [L["item"], L["count"]],
            [
                [L["experts_proposed"], _number(experts["proposed"])],
                [L["tickets_with_proposals"], _number(experts["tickets_with_proposals"])],
                [L["experts_engaged"], _number(experts["engaged"])],
                [L["tickets_with_engaged_expert"], _number(experts["tickets_with_engaged_expert"])],
                [L["links_sent"], _number(resources["links_sent"])],
                [L["distinct_resources"], _number(resources["distinct"])],
                [L["tickets_with_resources"], _number(resources["tickets"])],
            ],
        )
    )
    out.extend(_matchmaking_tables(report["matchmaking"], L))
    comparison_rows = []
    for row in report["comparison"]:
        label = L[row["key"]] if row["key"] != "first_response" and row["key"] != "resolution" else (
            f"{L[row['key']]}, {L['median'].lower()} (h)"
        )  # fmt: skip
        show = _percent if row["key"] == "unclassified_share" else _number
        comparison_rows.append(
            [label, show(row["current"]), show(row["previous"]), _change(row["key"], row["change"])]
        )
    out.append(
        Table(
            "comparison",
            f"{L['comparison']} ({report['previous_period']['label']})",
            [L["item"], L["this_period"], L["previous"], L["change"]],
            comparison_rows,
        )
    )
    return out


def _matchmaking_tables(m: dict[str, Any], L: dict[str, str]) -> list[Table]:
    first = m["first_answer"]
    breakdown = [
        [L[name], row["label"], _number(row["count"])]
        for name in ("by_party", "by_target", "by_core_function")
        for row in m[name]
    ]
    return [
        Table(
            "matchmaking",
            L["matchmaking"],
            [L["item"], L["count"]],
            [
                [L["referrals_made"], _number(m["made"])],
                *(
                    [L[f"referrals_{state}"], _number(m[state])]
                    for state in ("accepted", "declined", "no_answer")
                ),
                [L["referrals_offered"], _number(m["offered"])],
                [L["first_answer"], f"{_number(first['median_hours'])} / {_number(first['p90_hours'])}"],
                [L["introductions"], _number(m["introductions"])],
            ],
        ),
        Table(
            "matchmaking_outcomes",
            L["matchmaking_outcomes"],
            [L["item"], L["count"]],
            [[L[f"outcome_{key}"], _number(n)] for key, n in sorted(m["outcomes"].items())],
        ),
        Table("matchmaking_breakdown", L["matchmaking_breakdown"], [L["item"], "", L["count"]], breakdown),
        Table(
            "matchmaking_organisations",
            L["matchmaking_organisations"],
            [L["item"], L["count"]],
            [[row["label"], _number(row["count"])] for row in m["organisations"]],
        ),
    ]


def bar_chart(items: list[dict[str, Any]], title: str, *, columns: bool = False) -> Markup:
    """An inline SVG bar chart (no script, no network): horizontal bars, or columns for months."""
    if columns:
        return _column_chart(items, title)
    row, label_width, bar_width, width = 24, 330, 330, 720
    height = max(1, len(items)) * row + 10
    top = max((item["count"] for item in items), default=0) or 1
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
    ]
    for i, item in enumerate(items):
        y = 5 + i * row
        label = item["label"] if len(item["label"]) <= 48 else item["label"][:47] + "…"
        length = round(bar_width * item["count"] / top, 1)
        parts.append(
            f'<text x="{label_width - 8}" y="{y + 16}" text-anchor="end" font-size="12">'
            f"{escape(label)}</text>"
            f'<rect class="bar" x="{label_width}" y="{y + 3}" width="{length}" height="{row - 8}" '
            f'fill="#2e7d5b"><title>{escape(item["label"])}: {item["count"]}</title></rect>'
            f'<text x="{label_width + length + 6}" y="{y + 16}" font-size="12">{item["count"]}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _column_chart(items: list[dict[str, Any]], title: str) -> Markup:
    width, height, bottom, top_margin = 720, 220, 40, 20
    slot = (width - 20) / max(1, len(items))
    top = max((item["count"] for item in items), default=0) or 1
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
        f'<line x1="10" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" stroke="#999"/>',
    ]
    plot = height - bottom - top_margin
    for i, item in enumerate(items):
        x = 10 + i * slot
        bar = round(plot * item["count"] / top, 1)
        y = height - bottom - bar
        parts.append(
            f'<rect class="bar" x="{x + slot * 0.15:.1f}" y="{y}" width="{slot * 0.7:.1f}" height="{bar}" '
            f'fill="#3b6ea5"><title>{escape(item["label"])}: {item["count"]}</title></rect>'
            f'<text x="{x + slot / 2:.1f}" y="{y - 4}" text-anchor="middle" font-size="11">'
            f"{item['count']}</text>"
            f'<text x="{x + slot / 2:.1f}" y="{height - bottom + 16}" text-anchor="middle" font-size="10">'
            f"{escape(item['label'])}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _context(report: dict[str, Any]) -> dict[str, Any]:
    return {"r": report, "L": LABELS[report["language"]], "tables": tables(report)}


def to_markdown(report: dict[str, Any]) -> str:
    return environment().get_template("reports/report.md.j2").render(**_context(report)).strip() + "\n"


def to_html(report: dict[str, Any]) -> str:
    L = LABELS[report["language"]]
    charts = {
        "by_target": bar_chart(report["by_target"], L["by_target"]),
        "by_party": bar_chart(report["by_party"], L["by_party"]),
        "by_month": bar_chart(report["by_month"], L["by_month"], columns=True),
    }
    template = environment().get_template("reports/report.html.j2")
    return template.render(**_context(report), charts=charts).strip() + "\n"


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2) + "\n"


def to_csv(report: dict[str, Any]) -> str:
    """One tidy table (section, key, label, measure, value): a spreadsheet pivots it any way."""
    L = LABELS[report["language"]]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["section", "key", "label", "measure", "value"])
    period = report["period"]
    writer.writerow(["period", period["key"], period["label"], "from", period["from"]])
    writer.writerow(["period", period["key"], period["label"], "to", period["to"]])
    for key, value in report["totals"].items():
        writer.writerow(["totals", key, L.get(key, key), key, value])
    for key, figures in report["times"].items():
        for measure, value in figures.items():
            writer.writerow(["times", key, L[key], measure, value])
    for key, value in report["response_target"].items():
        writer.writerow(["response_target", key, L["response_target"], key, value])
    for name in BREAKDOWNS:
        for row in report[name]:
            key = "" if row["key"] is None else row["key"]
            writer.writerow([name, key, row["label"], "count", row["count"]])
            writer.writerow([name, key, row["label"], "share", row["share"]])
    for row in report["by_month"]:
        writer.writerow(["by_month", row["key"], row["label"], "count", row["count"]])
    for key, value in report["experts"].items():
        writer.writerow(["experts", key, L["experts"], key, value])
    for key, value in report["resources"].items():
        writer.writerow(["resources", key, L["experts"], key, value])
    for key, value in report["matchmaking"].items():
        if isinstance(value, int):
            writer.writerow(["matchmaking", key, L["matchmaking"], key, value])
    for measure, value in report["matchmaking"]["first_answer"].items():
        writer.writerow(["matchmaking", "first_answer", L["first_answer"], measure, value])
    for key, value in report["matchmaking"]["outcomes"].items():
        writer.writerow(["matchmaking_outcomes", key, L[f"outcome_{key}"], "count", value])
    for row in report["comparison"]:
        for measure in ("current", "previous", "change"):
            writer.writerow(["comparison", row["key"], L[row["key"]], measure, row[measure]])
    return buffer.getvalue()


def to_docx(report: dict[str, Any]) -> bytes:
    """A Word document with headings and real tables (blocking: call it through asyncio.to_thread)."""
    from docx import Document
    from docx.shared import Pt

    L = LABELS[report["language"]]
    document = Document()
    document.styles["Normal"].font.name = "Calibri"
    document.styles["Normal"].font.size = Pt(10)
    document.add_heading(f"{report['title']}: {report['period']['label']}", level=0)
    document.add_paragraph(L["centre"])
    document.add_paragraph(
        f"{L['period']}: {report['period']['from']} – {report['period']['to']} "
        f"({L['timezone']}: {report['period']['timezone']}). {L['generated']}: {report['generated_at']}."
    )

    document.add_heading(L["summary"], level=1)
    summary = report["summary"]
    table = document.add_table(rows=2, cols=3)
    table.style = "Table Grid"
    for cell, text in zip(table.rows[0].cells, (L["output"], L["status"], L["details"]), strict=True):
        cell.text = ""
        cell.paragraphs[0].add_run(text).bold = True
    for cell, text in zip(
        table.rows[1].cells, (L["output_name"], summary["status"], summary["details"]), strict=True
    ):
        cell.text = text
    document.add_heading(L["part3"], level=2)
    for line in summary["figures"]:
        document.add_paragraph(line, style="List Bullet")
    document.add_heading(L["part2_section4"], level=2)
    document.add_paragraph(summary["part2_section4"])

    for item in tables(report):
        document.add_heading(item.title, level=1)
        if not item.rows:
            document.add_paragraph(L["none"])
            continue
        grid = document.add_table(rows=1 + len(item.rows), cols=len(item.columns))
        grid.style = "Table Grid"
        for cell, text in zip(grid.rows[0].cells, item.columns, strict=True):
            cell.text = ""
            cell.paragraphs[0].add_run(text).bold = True
        for row, values in zip(grid.rows[1:], item.rows, strict=True):
            for cell, text in zip(row.cells, values, strict=True):
                cell.text = text

    if any(example["requests"] for example in report["examples"]):
        document.add_heading(L["examples"], level=1)
        for example in report["examples"]:
            document.add_heading(example["label"], level=2)
            for text in example["requests"]:
                document.add_paragraph(text, style="List Bullet")

    document.add_heading(L["definitions"], level=1)
    document.add_paragraph(L["definitions_text"])
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def render_report(report: dict[str, Any], fmt: str) -> str | bytes:
    """Text formats as str, DOCX as bytes. DOCX is CPU-bound: async callers use `render_report_async`."""
    if fmt == "md":
        return to_markdown(report)
    if fmt == "html":
        return to_html(report)
    if fmt == "csv":
        return to_csv(report)
    if fmt == "json":
        return to_json(report)
    if fmt == "docx":
        return to_docx(report)
    raise ValueError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")


async def render_report_async(report: dict[str, Any], fmt: str) -> str | bytes:
    import asyncio

    # python-docx builds and zips the document synchronously; keep the event loop free while it does.
    return await asyncio.to_thread(render_report, report, fmt)
