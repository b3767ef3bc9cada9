"""The knowledge-base, reports, admin and canned-reply pages in a real browser (Playwright + Debian's
chromium): a KB edit, a report download, role enforcement, a canned reply filled in by htmx under the CSP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web_browser import CHROMIUM, CHROMIUM_ARGS, needs_chromium, off_thread, served_workspace, with_desk
from web_harness import PASSWORD

from helpdesk.config import Settings
from helpdesk.db.migrate import upgrade
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage, Sender
from helpdesk.usecases.canned_replies import save_snippet
from helpdesk.usecases.receive import receive
from helpdesk.usecases.roster import current_experts
from helpdesk.usecases.staff_accounts import add_account

pytestmark = needs_chromium
playwright = pytest.importorskip("playwright.sync_api")

ADMIN, AGENT, VIEWER = "admin@tscc.example", "agent@tscc.example", "viewer@tscc.example"


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'browser.db'}"
    off_thread(upgrade(url))

    async def seed(desk: Desk) -> None:
        for email, role in ((ADMIN, "admin"), (AGENT, "agent"), (VIEWER, "viewer")):
            await add_account(desk, email, name=role.title(), role=role, password=PASSWORD)

    with_desk(url, seed)
    return url


@pytest.fixture
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def signed_in(browser: Any, base: str, email: str) -> Any:
    context = browser.new_context(accept_downloads=True, viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.csp_errors = []  # type: ignore[attr-defined]
    page.on(
        "console",
        lambda message: "Content Security Policy" in message.text and page.csp_errors.append(message.text),
    )
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"{base}/")
    return page


def test_an_admin_adds_an_expert_and_a_refused_form_keeps_what_was_typed(browser: Any, database: str) -> None:
    with served_workspace(database) as base:
        page = signed_in(browser, base, ADMIN)
        page.click("nav.sections >> text=Knowledge base")
        page.click("[data-testid=add-expert]")
        form = page.locator("[data-testid=expert-form]")
        form.locator("input[name=id]").fill("ex-browser")
        form.locator("input[name=name]").fill("Bakhyt <b>Browser</b>")
        form.locator("input[name=languages]").fill("ru; kk")
        form.locator("input[name=targets]").fill("3; 42")
        form.locator("button[type=submit]").click()
        error = page.locator("[data-testid=form-error]")
        assert "42 is outside 1..23" in error.inner_text()
        assert form.locator("input[name=name]").input_value() == "Bakhyt <b>Browser</b>"
        form.locator("input[name=targets]").fill("3; 21")
        form.locator("button[type=submit]").click()
        page.wait_for_url(f"{base}/kb/experts")
        row = page.locator("[data-testid=expert-row]", has_text="ex-browser")
        assert "Bakhyt <b>Browser</b>" in row.inner_text()  # shown as text, not markup
        assert page.csp_errors == []
    experts = with_desk(database, _experts)
    assert experts["ex-browser"] == ("ru", "kk")


async def _experts(desk: Desk) -> dict[str, tuple[str, ...]]:
    async with desk.sessions() as session:
        return {e.id: e.languages for e in await current_experts(session)}


def test_a_viewer_downloads_the_months_report(browser: Any, database: str) -> None:
    async def seed(desk: Desk) -> str:
        inbound = InboundMessage(
            channel="email",
            channel_message_id="<browser-report@example.kz>",
            sender=Sender(name="Aliya", email="aliya@example.kz"),
            text="Protected areas management plan",
            subject="PAME",
        )
        await receive(desk, inbound)
        from datetime import datetime

        return datetime.now(desk.timezone).strftime("%Y-%m")

    month = with_desk(database, seed)
    with served_workspace(database, Settings(database_url=database)) as base:
        page = signed_in(browser, base, VIEWER)
        page.click("nav.sections >> text=Reports")
        page.fill("[data-testid=report-month] input[name=month]", month)
        page.click("[data-testid=report-month] button[type=submit]")
        frame = page.frame_locator("[data-testid=report-frame]")
        playwright.expect(frame.locator("svg").first).to_be_visible()
        with page.expect_download() as waited:
            page.click("[data-testid=download-csv]")
        download = waited.value
        assert download.suggested_filename.startswith(
            "tscc-report-"
        ) and download.suggested_filename.endswith(".csv")
        assert Path(download.path()).read_bytes().startswith(b"\xef\xbb\xbf")
        with page.expect_download() as waited:
            page.click("[data-testid=download-docx]")
        assert Path(waited.value.path()).read_bytes()[:2] == b"PK"
        assert page.csp_errors == []


def test_roles_are_enforced_on_the_server_and_the_page_offers_only_what_the_role_may(
    browser: Any, database: str
) -> None:
    with served_workspace(database, Settings(database_url=database)) as base:
        agent = signed_in(browser, base, AGENT)
        assert agent.locator("nav.sections >> text=Administration").count() == 0
        answer = agent.goto(f"{base}/admin/staff")
        assert answer is not None and answer.status == 403
        assert "Your role may not do this." in agent.content()
        agent.goto(f"{base}/kb/experts")
        assert agent.locator("[data-testid=add-expert]").count() == 0
        # A forged request from the agent's own session (token and all) is still refused.
        token = agent.locator("input[name=csrf_token]").first.input_value()
        forged = agent.request.post(
            f"{base}/kb/experts/ex-001/retire", form={"csrf_token": token}, max_redirects=0
        )
        assert forged.status == 403

        admin = signed_in(browser, base, ADMIN)
        admin.click("nav.sections >> text=Administration")
        assert "database" in admin.locator("[data-testid=health-database]").inner_text()
        admin.click("text=Staff accounts")
        role = admin.locator("[data-testid=account-row]", has_text=AGENT)
        role.locator("select[name=role]").select_option("admin")
        role.locator("text=Change role").click()
        admin.wait_for_url(f"{base}/admin/staff")
        answer = agent.goto(f"{base}/admin/staff")
        assert answer is not None and answer.status == 200


def test_a_canned_reply_fills_the_reply_with_htmx(browser: Any, database: str) -> None:
    async def seed(desk: Desk) -> str:
        await save_snippet(desk, "en", "Thanks", "Thank you for writing to the Centre.", actor="test")
        inbound = InboundMessage(
            channel="email",
            channel_message_id="<browser-canned@example.kz>",
            sender=Sender(name="Aliya", email="aliya@example.kz", language="en"),
            text="Please send guidance on invasive species",
            subject="Invasive species guidance",
        )
        return (await receive(desk, inbound)).reference

    reference = with_desk(database, seed)
    with served_workspace(database) as base:
        page = signed_in(browser, base, AGENT)
        page.goto(f"{base}/tickets/{reference}")
        picker = page.locator("[data-testid=canned-form] select[name=canned]")
        picker.wait_for()  # htmx replaced the link with the picker
        page.fill("[data-testid=reply-form] textarea[name=body]", "Dear Aliya,")
        with page.expect_response(f"{base}/canned/fill"):
            picker.select_option(label="Thanks")
        body = page.locator("[data-testid=reply-form] textarea[name=body]")
        # The swap follows the response: Playwright's expectation waits for it.
        playwright.expect(body).to_have_value("Dear Aliya,\n\nThank you for writing to the Centre.")
        assert page.csp_errors == []

        # Without JavaScript: the link, the picker's own page, and the reply form filled in.
        still = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
        plain = still.new_page()
        plain.goto(f"{base}/login")
        plain.fill("input[name=email]", AGENT)
        plain.fill("input[name=password]", PASSWORD)
        plain.click("form.stack button[type=submit]")
        plain.goto(f"{base}/tickets/{reference}")
        plain.click("[data-testid=canned-link]")
        plain.select_option("[data-testid=canned-form] select[name=canned]", label="Thanks")
        plain.click("[data-testid=canned-form] button[type=submit]")
        filled = plain.locator("[data-testid=reply-form] textarea[name=body]")
        assert filled.input_value() == "Thank you for writing to the Centre."
