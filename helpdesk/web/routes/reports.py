"""/reports: a month's or a period's report as `helpdesk report` builds it, shown and downloadable.

The page embeds the renderer's own HTML (its inline stylesheet and SVG charts) in a sandboxed frame
served with a policy of its own: styles inline, no script at all, nothing fetched, framed only by this
site. Downloads carry their type and `attachment`, so none is rendered in the workspace's origin.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from helpdesk.rendering import LANGUAGES
from helpdesk.reports.build import build_report
from helpdesk.reports.period import Period
from helpdesk.reports.render import FORMATS, render_report_async
from helpdesk.web.i18n import gettext as _
from helpdesk.web.templating import page
from knowledge import packaged_knowledge_base

CONTENT_TYPES = {
    "md": "text/markdown; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
# The report's own HTML: its <style> runs, nothing else does, and it is shown only inside our page.
FRAME_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'self'; sandbox"
)
DEFAULT_RESPONSE_TARGET_HOURS = 48.0
# A report is built per request; a viewer asking for the year 1 to 9999 must not hold the desk.
MAX_DAYS = 3700


def _period(request: Request) -> Period | None:
    """The period the query names (month=YYYY-MM, or from=…&to=…), or None; ValueError if malformed."""
    timezone = str(request.app.state.desk.timezone)
    month = request.query_params.get("month", "").strip()
    first, last = request.query_params.get("from", "").strip(), request.query_params.get("to", "").strip()
    if month:
        return Period.month(month[:7], timezone)
    if not (first or last):
        return None
    try:
        period = Period(date.fromisoformat(first[:10]), date.fromisoformat(last[:10]), timezone)
    except ValueError as exc:
        raise ValueError(_("Give both days of the period as YYYY-MM-DD.") + f" ({exc})") from None
    if period.days > MAX_DAYS:
        raise ValueError(_("A period is at most ten years."))
    return period


def _language(request: Request) -> str:
    wanted = request.query_params.get("report_lang", "")
    return wanted if wanted in LANGUAGES else "en"


async def _report(request: Request, period: Period) -> dict[str, Any]:
    settings = getattr(request.app.state, "settings", None)
    return await build_report(
        request.app.state.desk.sessions,
        period,
        language=_language(request),
        response_target_hours=settings.response_target_hours if settings else DEFAULT_RESPONSE_TARGET_HOURS,
        kb=await asyncio.to_thread(packaged_knowledge_base),
    )


def _query(request: Request, period: Period) -> str:
    if period.is_month:
        wanted = {"month": period.first.strftime("%Y-%m")}
    else:
        wanted = {"from": period.first.isoformat(), "to": period.last.isoformat()}
    return urlencode({**wanted, "report_lang": _language(request)})


async def reports_page(request: Request) -> Response:
    chosen = {"report_lang": _language(request), "month": request.query_params.get("month", "")[:7]}
    try:
        period = _period(request)
    except ValueError as exc:
        return page(
            request, "reports", status_code=400, error=str(exc), period=None, formats=FORMATS, **chosen
        )
    query = _query(request, period) if period else ""
    return page(request, "reports", error=None, period=period, query=query, formats=FORMATS, **chosen)


async def report_frame(request: Request) -> Response:
    try:
        period = _period(request)
    except ValueError as exc:
        return PlainTextResponse(str(exc), status_code=400)
    if period is None:
        return PlainTextResponse(_("Pick a month or a period."), status_code=400)
    html = await render_report_async(await _report(request, period), "html")
    return Response(
        html,
        media_type=CONTENT_TYPES["html"],
        headers={"Content-Security-Policy": FRAME_POLICY, "X-Frame-Options": "SAMEORIGIN"},
    )


async def report_download(request: Request) -> Response:
    fmt = request.path_params["fmt"]
    if fmt not in FORMATS:
        return PlainTextResponse(_("Unknown format."), status_code=404)
    try:
        period = _period(request)
    except ValueError as exc:
        return PlainTextResponse(str(exc), status_code=400)
    if period is None:
        return PlainTextResponse(_("Pick a month or a period."), status_code=400)
    content = await render_report_async(await _report(request, period), fmt)
    if isinstance(content, str):
        # A byte-order mark lets Excel open the Cyrillic of a CSV as UTF-8 (as `helpdesk report --out`).
        content = ("\ufeff" if fmt == "csv" else "") + content
    name = f"tscc-report-{period.first.isoformat()}-{period.last.isoformat()}.{fmt}"
    return Response(
        content,
        media_type=CONTENT_TYPES[fmt],
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            # An HTML download is shown by nobody here: if a browser opens it anyway, nothing in it runs.
            "Content-Security-Policy": FRAME_POLICY.replace(
                "frame-ancestors 'self'", "frame-ancestors 'none'"
            ),
        },
    )


ROUTES = [
    Route("/reports", reports_page, methods=["GET"]),
    Route("/reports/view", report_frame, methods=["GET"]),
    Route("/reports/download/{fmt}", report_download, methods=["GET"]),
]
