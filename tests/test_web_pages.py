"""The workspace's knowledge-base, reports, admin and canned-reply pages (attacks first), over TestClient on
SQLite and PostgreSQL, with a real HTTP server on loopback for the resource URL check."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from web_harness import PASSWORD, Web, open_web

from helpdesk.config import Settings
from helpdesk.db.models import AuditEvent, LabelledExample, OutboxItem
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage, Sender
from helpdesk.usecases.dead_letters import store_dead_letter
from helpdesk.usecases.knowledge_state import current_triage
from helpdesk.usecases.listing import show_ticket
from helpdesk.usecases.receive import receive
from helpdesk.usecases.reclassify import reclassify
from helpdesk.web.url_check import check_url

ADMIN, AGENT, VIEWER = "admin@tscc.example", "agent@tscc.example", "viewer@tscc.example"
HOSTILE = '<script>alert("x")</script>'


@pytest.fixture
def web(database_url: str, engine: AsyncEngine) -> Iterator[Web]:
    with open_web(database_url, settings=Settings(database_url=database_url)) as web:
        web.client.headers["accept-language"] = "en"  # the assertions read the English catalog
        web.account(ADMIN, "admin", name="Ada Admin")
        web.account(AGENT, "agent", name="Aida Agent")
        web.account(VIEWER, "viewer", name="Vera Viewer")
        yield web


def as_(web: Web, email: str) -> Web:
    web.client.cookies.clear()
    assert web.sign_in(email).status_code == 303
    return web


def ticket(
    web: Web, subject: str = "Protected areas in Kazakhstan", text: str = "How do we reach 30x30?"
) -> str:
    async def make(desk: Desk) -> str:
        inbound = InboundMessage(
            channel="email",
            channel_message_id=f"<{subject[:20]}-{datetime.now(UTC).timestamp()}@example.kz>",
            sender=Sender(name="Aliya", email="aliya@example.kz"),
            text=text,
            subject=subject,
        )
        return (await receive(desk, inbound)).reference

    return web.run(make)


EXPERT = {
    "id": "ex-web-1",
    "name": "Dana Expert",
    "organisation": "Institute",
    "email": "dana@example.org",
    "countries": "KZ; UZ",
    "languages": "ru; en",
    "targets": "3; 1",
    "core_functions": "2",
    "availability": "available",
    "max_open_tickets": "4",
}


# Roles and CSRF on every new route


WRITES = [
    ("/kb/experts", EXPERT),
    ("/kb/experts/ex-web-1/retire", {}),
    ("/kb/resources", {"id": "r"}),
    ("/kb/examples/1/remove", {}),
    ("/admin/staff", {"email": "x@y.org", "name": "X", "role": "admin"}),
    ("/admin/staff/role", {"email": AGENT, "role": "admin"}),
    ("/admin/deliveries/1/retry", {}),
]


def test_a_viewer_and_an_agent_may_not_change_the_knowledge_base_or_administer(web: Web) -> None:
    for email in (VIEWER, AGENT):
        as_(web, email)
        for path, data in WRITES:
            answer = web.post(path, data)
            assert answer.status_code == 403, (email, path)
        assert web.client.get("/admin", follow_redirects=False).status_code == 403
        assert web.client.get("/admin/staff", follow_redirects=False).status_code == 403
        # Reading the knowledge base and the reports is for everyone signed in.
        assert web.client.get("/kb/experts").status_code == 200
        assert web.client.get("/reports").status_code == 200
    as_(web, VIEWER)
    assert web.post("/canned", {"language": "en", "title": "t", "body": "b"}).status_code == 403
    # Nothing changed: the refused add left no expert behind.
    assert "ex-web-1" not in as_(web, ADMIN).client.get("/kb/experts").text


def test_new_pages_need_a_session_and_their_posts_a_csrf_token(web: Web) -> None:
    for path in ("/kb/experts", "/kb/resources", "/kb/examples", "/reports", "/admin", "/canned"):
        answer = web.client.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next="), path
    as_(web, ADMIN)
    for path, data in WRITES:
        assert web.client.post(path, data=data, follow_redirects=False).status_code == 403, path


# Experts


def test_admin_adds_edits_and_retires_an_expert_validated_as_kb_validate(web: Web) -> None:
    as_(web, ADMIN)
    added = web.post("/kb/experts", EXPERT, token_from="/kb/experts/new")
    assert added.status_code == 303
    page = web.client.get("/kb/experts").text
    assert "Dana Expert" in page and "Expert ex-web-1 saved." in page
    # The packaged example roster came along: editing one expert never drops the others.
    assert page.count('data-testid="expert-row"') > 1

    refused = web.post("/kb/experts/ex-web-1", {**EXPERT, "targets": "3; 99", "name": HOSTILE})
    assert refused.status_code == 400
    # The validator's own words (as `helpdesk kb validate` prints them), and what was typed is kept.
    assert "99 is outside 1..23" in refused.text and "targets" in refused.text
    assert HOSTILE not in refused.text and "&lt;script&gt;" in refused.text
    assert 'value="3; 99"' in refused.text

    renamed = web.post("/kb/experts/ex-web-1", {**EXPERT, "id": "other"})
    assert renamed.status_code == 400 and "cannot change" in renamed.text

    unavailable = web.post("/kb/experts/ex-web-1/availability", {"availability": "unavailable"})
    assert unavailable.status_code == 303

    async def roster(desk: Desk) -> dict[str, str]:
        async with desk.sessions() as session:
            triage = await current_triage(desk, session)
        return {e.id: e.availability for e in triage.kb.experts}

    assert web.run(roster)["ex-web-1"] == "unavailable"
    wrong = web.post("/kb/experts/ex-web-1/availability", {"availability": "on holiday"})
    assert wrong.status_code == 303
    assert "is not one of available, limited, unavailable" in web.client.get("/kb/experts").text

    assert web.post("/kb/experts/ex-web-1/retire", {}).status_code == 303
    assert "ex-web-1" not in web.run(roster)

    async def audit(desk: Desk) -> list[tuple[str, str]]:
        async with desk.sessions() as session:
            rows = await session.execute(select(AuditEvent.actor, AuditEvent.action).order_by(AuditEvent.id))
            return [tuple(r) for r in rows.all()]  # type: ignore[misc]

    actions = web.run(audit)
    assert ("web:admin@tscc.example", "expert_added") in actions
    assert ("web:admin@tscc.example", "expert_retired") in actions


def test_expert_load_counts_open_tickets_assigned_to_them(web: Web) -> None:
    reference = ticket(web)

    async def assign(desk: Desk) -> None:
        from helpdesk.usecases.assign import assign as assign_ticket

        await assign_ticket(desk, reference, "ex-web-1", actor="test")

    as_(web, ADMIN)
    web.post("/kb/experts", EXPERT, token_from="/kb/experts/new")
    web.run(assign)
    page = web.client.get("/kb/experts").text
    (row,) = [r for r in page.split('data-testid="expert-row"') if "Dana Expert" in r]
    assert '<span data-testid="expert-load">1 / 4</span>' in row


# Resources


@contextlib.contextmanager
def http_server(status: int) -> Iterator[str]:
    """A real HTTP server on loopback answering every HEAD and GET with ``status``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/page"
    finally:
        server.shutdown()
        server.server_close()


RESOURCE = {
    "id": "res-web-1",
    "title": "National biodiversity portal",
    "url": "https://example.org/portal",
    "type": "platform",
    "languages": "ru",
    "targets": "21",
    "core_functions": "",
}


def test_admin_adds_and_edits_a_resource_and_triage_offers_it(web: Web) -> None:
    as_(web, ADMIN)
    assert web.post("/kb/resources", RESOURCE, token_from="/kb/resources/new").status_code == 303
    not_http = web.post("/kb/resources/res-web-1", {**RESOURCE, "url": "javascript:alert(1)"})
    assert not_http.status_code == 400 and "is not an http(s) URL" in not_http.text
    duplicate = web.post("/kb/resources", {**RESOURCE})
    assert duplicate.status_code == 400 and "duplicate value &#39;res-web-1&#39;" in duplicate.text
    edited = web.post("/kb/resources/res-web-1", {**RESOURCE, "title": "Portal, renamed"})
    assert edited.status_code == 303

    async def resources(desk: Desk) -> dict[str, str]:
        async with desk.sessions() as session:
            triage = await current_triage(desk, session)
        return {r.id: r.title for r in triage.kb.resources}

    found = web.run(resources)
    assert found["res-web-1"] == "Portal, renamed" and len(found) > 1


def test_the_url_check_reports_only_the_status(web: Web) -> None:
    with http_server(404) as missing:
        answer = web.run(lambda desk: check_url(missing))
        assert not answer.ok and answer.status == 404
    with http_server(204) as fine:
        answer = web.run(lambda desk: check_url(fine))
        assert answer.ok and answer.status == 204
    with http_server(301) as moved:
        answer = web.run(lambda desk: check_url(moved))
        assert not answer.ok and answer.status == 301 and "redirects" in answer.problem


async def test_the_url_check_refuses_other_schemes_and_gives_up_on_a_silent_server() -> None:
    for url in ("file:///etc/passwd", "javascript:alert(1)", "ftp://example.org/x", "http://"):
        answer = await check_url(url)
        assert not answer.ok and answer.status is None and "only http" in answer.problem
    accepted = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await reader.read()  # never answers; the check gives up on its own limit

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        answer = await check_url(f"http://127.0.0.1:{port}/", limit_seconds=0.5)
    assert accepted.is_set() and not answer.ok and "no answer within" in answer.problem
    refused = await check_url(f"http://127.0.0.1:{port}/")  # nobody listens there any more
    assert not refused.ok and "cannot connect" in refused.problem


def test_the_check_button_answers_with_the_status_on_the_resources_page(web: Web) -> None:
    as_(web, ADMIN)
    web.post("/kb/resources", RESOURCE, token_from="/kb/resources/new")

    async def point_at(desk: Desk, url: str) -> None:
        from helpdesk.db.models import KbResource

        async with desk.sessions.begin() as session:
            row = await session.get(KbResource, "res-web-1")
            assert row is not None
            row.data = {**row.data, "url": url}

    with http_server(200) as url:
        web.run(lambda desk: point_at(desk, url))
        assert web.post("/kb/resources/res-web-1/check", {}).status_code == 303
        assert "res-web-1 answers (HTTP 200)." in web.client.get("/kb/resources").text


# Labelled examples


def test_labelled_examples_are_listed_and_an_admin_removes_one(web: Web) -> None:
    reference = ticket(web, subject=HOSTILE, text="Wetlands restoration plan")
    web.run(lambda desk: reclassify(desk, reference, [2], [1], actor="web:agent@tscc.example"))
    as_(web, VIEWER)
    listed = web.client.get("/kb/examples").text
    assert reference in listed and 'data-testid="example-row"' in listed
    assert HOSTILE not in listed and "Remove" not in listed

    async def example_ids(desk: Desk) -> list[int]:
        async with desk.sessions() as session:
            return list(await session.scalars(select(LabelledExample.id)))

    (example_id,) = web.run(example_ids)
    as_(web, ADMIN)
    assert web.post(f"/kb/examples/{example_id}/remove", {}).status_code == 303
    assert web.run(example_ids) == []
    assert web.post(f"/kb/examples/{example_id}/remove", {}).status_code == 303
    assert f"no labelled example #{example_id}" in web.client.get("/kb/examples").text


# Reports


def test_reports_page_shows_the_report_framed_safely_and_downloads_each_format(web: Web) -> None:
    ticket(web)
    month = datetime.now(web.desk.timezone).strftime("%Y-%m")
    as_(web, VIEWER)
    page = web.client.get(f"/reports?month={month}")
    assert page.status_code == 200 and f'src="/reports/view?month={month}&amp;report_lang=en"' in page.text
    framed = web.client.get(f"/reports/view?month={month}")
    policy = framed.headers["content-security-policy"]
    assert framed.status_code == 200 and "<svg" in framed.text and "<script" not in framed.text
    assert "sandbox" in policy and "script-src" not in policy and "default-src 'none'" in policy
    assert "frame-ancestors 'self'" in policy and framed.headers["x-frame-options"] == "SAMEORIGIN"
    expected = {
        "md": "text/markdown",
        "html": "text/html",
        "csv": "text/csv",
        "json": "application/json",
        "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    }
    for fmt, content_type in expected.items():
        answer = web.client.get(f"/reports/download/{fmt}?month={month}&report_lang=ru")
        assert answer.status_code == 200, fmt
        assert answer.headers["content-type"].startswith(content_type), fmt
        assert answer.headers["content-disposition"].startswith('attachment; filename="tscc-report-'), fmt
        assert answer.headers["content-disposition"].endswith(f'.{fmt}"')
    assert web.client.get(f"/reports/download/docx?month={month}").content[:2] == b"PK"
    assert web.client.get(f"/reports/download/json?month={month}").json()["totals"]["received"] >= 1
    period = web.client.get(f"/reports/download/json?from={month}-01&to={month}-02")
    assert period.status_code == 200


def test_a_malformed_period_gets_a_clear_answer(web: Web) -> None:
    as_(web, VIEWER)
    malformed = (
        "month=2026-13",
        "month=soon",
        "month=9999-12",
        "from=2026-10-05&to=2026-10-01",
        "from=2026-10-01",
        "from=0001-01-01&to=9999-12-31",
    )
    for query in malformed:
        answer = web.client.get(f"/reports?{query}")
        assert answer.status_code == 400 and 'role="alert"' in answer.text, query
    assert web.client.get("/reports/download/exe?month=2026-10").status_code == 404
    assert web.client.get("/reports/download/md").status_code == 400


# Admin


def test_admin_manages_accounts_with_the_staff_use_cases(web: Web, database_url: str) -> None:
    as_(web, ADMIN)
    added = web.post("/admin/staff", {"email": "New@TSCC.example", "name": HOSTILE, "role": "viewer"})
    assert added.status_code == 303
    page = web.client.get("/admin/staff").text
    assert "new@tscc.example" in page and HOSTILE not in page
    assert web.post("/admin/staff", {"email": "bad", "name": "X", "role": "viewer"}).status_code == 303
    assert "not an email address" in web.client.get("/admin/staff").text
    assert (
        web.post("/admin/staff", {"email": "z@tscc.example", "name": "Z", "role": "root"}).status_code == 303
    )
    assert "role must be one of" in web.client.get("/admin/staff").text

    # The agent is signed in elsewhere; a role change applies on their next page, a disable ends it.
    with open_web(database_url) as other:
        as_(other, AGENT)
        assert other.client.get("/admin", follow_redirects=False).status_code == 403
        assert web.post("/admin/staff/role", {"email": AGENT, "role": "admin"}).status_code == 303
        assert other.client.get("/admin", follow_redirects=False).status_code == 200
        assert web.post("/admin/staff/password", {"email": AGENT, "password": "short"}).status_code == 303
        assert other.client.get("/admin", follow_redirects=False).status_code == 200  # refused: still on
        new_password = "another correct horse battery"
        assert (
            web.post("/admin/staff/password", {"email": AGENT, "password": new_password}).status_code == 303
        )
        assert other.client.get("/admin", follow_redirects=False).status_code == 303  # signed out
        assert other.sign_in(AGENT, PASSWORD).status_code == 400
        assert other.sign_in(AGENT, new_password).status_code == 303
        assert web.post("/admin/staff/disable", {"email": AGENT}).status_code == 303
        assert other.client.get("/", follow_redirects=False).status_code == 303

    async def account_audit(desk: Desk) -> list[tuple[str, str, str]]:
        async with desk.sessions() as session:
            rows = await session.execute(
                select(AuditEvent.actor, AuditEvent.action, AuditEvent.detail).where(
                    AuditEvent.action.like("account_%")
                )
            )
            return [(actor, action, detail["account"]) for actor, action, detail in rows.all()]

    # The audit trail says which admin did what to which account, and never holds a password.
    recorded = web.run(account_audit)
    for action, account in (
        ("account_added", "new@tscc.example"),
        ("account_role_changed", AGENT),
        ("account_password_set", AGENT),
        ("account_disabled", AGENT),
    ):
        assert ("web:admin@tscc.example", action, account) in recorded
    assert "another correct horse" not in repr(web.run(account_audit))
    # An admin cannot lock themselves out by mistake.
    assert web.post("/admin/staff/disable", {"email": ADMIN}).status_code == 303
    assert web.client.get("/admin").status_code == 200


def test_dead_letters_are_shown_escaped_and_retried(web: Web) -> None:
    raw = (
        b"From: Aliya <aliya@example.kz>\r\nTo: helpdesk@tscc.example.org\r\nSubject: " + HOSTILE.encode()
        + b"\r\nMessage-ID: <dead-1@example.kz>\r\nDate: Mon, 30 Nov 2026 08:00:00 +0500\r\n"
        + b"\r\nGrant help.\r\n"
    )  # fmt: skip
    stored = web.run(lambda desk: store_dead_letter(desk, raw, "the database was away"))
    as_(web, ADMIN)
    listing = web.client.get("/admin/dead-letters").text
    assert f"/admin/dead-letters/{stored.id}" in listing
    shown = web.client.get(f"/admin/dead-letters/{stored.id}").text
    assert HOSTILE not in shown and "&lt;script&gt;" in shown and 'data-testid="retry-dead-letter"' in shown
    assert web.post(f"/admin/dead-letters/{stored.id}/retry", {}).status_code == 303
    after = web.client.get(f"/admin/dead-letters/{stored.id}").text
    assert "Received as TSCC-" in after and "resolved" in after
    assert web.client.get("/admin/dead-letters/999999").status_code == 404


def test_delivery_failures_show_their_reason_and_go_back_in_the_queue(web: Web) -> None:
    reference = ticket(web)

    async def fail_one(desk: Desk) -> int:
        async with desk.sessions.begin() as session:
            item = await session.scalar(select(OutboxItem).order_by(OutboxItem.id).limit(1))
            assert item is not None
            item.status, item.attempts, item.last_error = "failed", 8, "550 mailbox unavailable " + HOSTILE
            return item.id

    item_id = web.run(fail_one)
    as_(web, ADMIN)
    page = web.client.get("/admin/deliveries").text
    assert "550 mailbox unavailable" in page and reference in page and HOSTILE not in page
    assert web.post(f"/admin/deliveries/{item_id}/retry", {}).status_code == 303

    async def status(desk: Desk) -> tuple[str, int]:
        async with desk.sessions() as session:
            item = await session.get(OutboxItem, item_id)
            assert item is not None
            return item.status, item.attempts

    assert web.run(status) == ("pending", 0)
    assert web.post(f"/admin/deliveries/{item_id}/retry", {}).status_code == 303
    assert f"no failed delivery #{item_id}" in web.client.get("/admin/deliveries").text


def test_the_new_pages_speak_russian(web: Web) -> None:
    as_(web, ADMIN)
    page = web.client.get("/kb/experts?lang=ru").text
    assert '<html lang="ru">' in page and "Эксперты" in page and "Нагрузка" in page
    assert "Отчёты" in web.client.get("/reports").text  # remembered
    assert web.post("/kb/experts/nobody/retire", {}).status_code == 303
    assert "no expert nobody" in web.client.get("/kb/experts").text  # the use-case's own words


def test_health_is_on_the_admin_page(web: Web) -> None:
    as_(web, ADMIN)
    page = web.client.get("/admin").text
    assert 'data-testid="health-database"' in page and "schema" in page


# Canned replies


def test_canned_replies_are_managed_and_fill_the_reply(web: Web) -> None:
    reference = ticket(web)
    as_(web, AGENT)
    assert (
        web.post("/canned", {"language": "en", "title": "Thanks", "body": "Thank you " + HOSTILE}).status_code
        == 303
    )
    assert web.post("/canned", {"language": "en", "title": "Thanks", "body": "again"}).status_code == 303
    assert "exists already in en" in web.client.get("/canned").text
    assert web.post("/canned", {"language": "de", "title": "Danke", "body": "x"}).status_code == 303
    assert "language must be one of" in web.client.get("/canned").text
    page = web.client.get("/canned").text
    assert HOSTILE not in page and page.count('data-testid="canned-row"') == 1
    (snippet_id,) = {int(found) for found in re.findall(r"/canned/(\d+)/delete", page)}

    # With htmx: the draft plus the snippet, in a fresh textarea; a POST, so the draft is in no URL.
    filled = web.post("/canned/fill", {"canned": str(snippet_id), "body": "Dear Aliya,"})
    assert filled.status_code == 200
    assert filled.text.startswith('<textarea name="body"')
    assert "Dear Aliya,\n\nThank you &lt;script&gt;" in filled.text
    # Without JavaScript: the reply form, filled in.
    compose = web.client.get(f"/tickets/{reference}/compose?canned={snippet_id}")
    assert compose.status_code == 200 and 'data-testid="reply-form"' in compose.text
    assert "Thank you &lt;script&gt;" in compose.text and 'data-testid="canned-form"' in compose.text
    assert web.client.get("/tickets/TSCC-1999-0001/compose").status_code == 404
    # The ticket page links to it, and htmx fetches the picker: snippets in the ticket's language only.
    ticket_page = web.client.get(f"/tickets/{reference}").text
    assert f'href="/tickets/{reference}/compose" data-testid="canned-link"' in ticket_page
    web.post("/canned", {"language": "ru", "title": "Спасибо", "body": "Спасибо за обращение."})
    language = web.run(lambda desk: show_ticket(desk, reference))["language"]
    offered = web.client.get(f"/tickets/{reference}/canned").text
    assert ("Thanks" in offered) == (language == "en") and ("Спасибо" in offered) == (language == "ru")
    assert web.post(f"/canned/{snippet_id}/delete", {}).status_code == 303
    assert "Thank you" not in web.client.get("/canned").text
