"""The inbox and the ticket page's newer work in a real browser (Playwright, the system's chromium, against
`helpdesk run`): search, bulk close, tags, reclassify, merge, presence seen from a second browser context,
and a reply on a stale page held back until confirmed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect
from web_browser import needs_chromium
from web_runtime import AGENT, MAIL_FROM, PASSWORD, REQUESTER_EMAIL, Workspace, running_workspace

from helpdesk.db.engine import make_engine, make_sessions
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage, Sender
from helpdesk.service import standard_composers
from helpdesk.usecases.receive import receive
from helpdesk.usecases.staff_accounts import add_account

pytestmark = needs_chromium
SECOND = "bob@tscc.example"
WAIT = 20_000  # ms: the presence poll is every 5 s on two slow, shared cores


@pytest.fixture
async def workspace(tmp_path: Path) -> AsyncIterator[Workspace]:
    async with running_workspace(tmp_path) as workspace:
        yield workspace


async def on_desk(workspace: Workspace) -> AsyncIterator[Desk]:
    engine = make_engine(workspace.url)
    try:
        yield Desk(sessions=make_sessions(engine), mail_from=MAIL_FROM, composers=standard_composers())
    finally:
        await engine.dispose()


async def request(workspace: Workspace, n: int, subject: str, text: str) -> str:
    """A requester's mail reaching the desk while the workspace runs (as intake would store it)."""
    async for desk in on_desk(workspace):
        message = InboundMessage(
            channel="email",
            channel_message_id=f"<browser-{n}@eco.gov.kz>",
            sender=Sender(name="Aliya", email=REQUESTER_EMAIL),
            subject=subject,
            text=text,
        )
        return (await receive(desk, message)).reference
    raise AssertionError("unreachable")


async def sign_in(page: Page, workspace: Workspace, email: str = AGENT, path: str = "/?view=all") -> None:
    await page.goto(f"{workspace.base_url}/login?lang=en")
    await page.fill('input[name="email"]', email)
    await page.fill('input[name="password"]', PASSWORD)
    await page.press('input[name="password"]', "Enter")
    await expect(page.locator("h1")).to_have_text("Inbox")
    await page.goto(workspace.base_url + path)


async def test_search_then_bulk_close(browser: Browser, workspace: Workspace) -> None:
    first = await request(workspace, 1, "Peatland inventory", "peatland carbon mapping")
    second = await request(workspace, 2, "Peatland restoration", "rewetting a peatland")
    page = await browser.new_page()
    await sign_in(page, workspace)
    await page.fill('input[name="q"]', "peatland")
    await page.press('input[name="q"]', "Enter")
    rows = page.get_by_test_id("ticket-row")
    await expect(rows).to_have_count(2)
    assert "q=peatland" in page.url  # the search is a link
    for reference in (first, second):
        await page.get_by_label(reference).check()
    await page.locator('select[name="action"]').select_option("close")
    await page.get_by_test_id("bulk-form").locator('button[type="submit"]').click()
    outcomes = page.get_by_test_id("outcome")
    await expect(outcomes).to_have_count(2)
    await expect(outcomes.filter(has_text="done")).to_have_count(2)
    await page.get_by_test_id("back").click()
    assert "q=peatland" in page.url
    await page.locator('select[name="status"]').first.select_option("closed")
    await page.get_by_test_id("filter-form").locator('button[type="submit"]').click()
    await expect(rows).to_have_count(2)


async def test_tags_reclassify_and_merge(browser: Browser, workspace: Workspace) -> None:
    survivor = workspace.references["email"]
    merged = await request(workspace, 3, "Wetland mapping", "Also: wetland mapping in the Aral region")
    page = await browser.new_page()
    await sign_in(page, workspace, path=f"/tickets/{merged}")

    tag_form = page.get_by_test_id("tag-form")
    await tag_form.locator('input[name="tag"]').fill("Funding")
    await tag_form.locator('button[type="submit"]').click()
    await expect(page.get_by_test_id("tag")).to_have_text("funding")
    await page.get_by_label("Remove tag funding").click()
    await expect(page.get_by_test_id("tag")).to_have_count(0)

    reclassify = page.get_by_test_id("reclassify-form")
    await reclassify.locator('input[name="targets"]').fill("11, 3")
    await reclassify.locator('input[name="core_functions"]').fill("5")
    await reclassify.locator('button[type="submit"]').click()
    await expect(page.locator(".panel").first).to_contain_text("Target 11")
    await expect(page.locator(".audit")).to_contain_text("reclassified")

    merge = page.get_by_test_id("merge-form")
    await merge.locator('select[name="into"]').select_option(survivor)
    await merge.locator('button[type="submit"]').click()
    await expect(page).to_have_url(f"{workspace.base_url}/tickets/{survivor}")
    await expect(page.locator(".conversation")).to_contain_text("wetland mapping in the Aral region")
    await expect(page.locator(".conversation")).to_contain_text("effective area-based conservation")
    await page.goto(f"{workspace.base_url}/tickets/{merged}")
    await expect(page.locator(".meta").first).to_contain_text("closed")
    await expect(page.locator(".message.note")).to_contain_text(f"Merged into {survivor}")


async def test_presence_and_the_stale_reply_warning(browser: Browser, workspace: Workspace) -> None:
    async for desk in on_desk(workspace):
        await add_account(desk, SECOND, name="Bob Burns", role="agent", password=PASSWORD)
    reference = workspace.references["email"]
    ann_context, bob_context = await browser.new_context(), await browser.new_context()
    ann, bob = await ann_context.new_page(), await bob_context.new_page()
    await sign_in(ann, workspace, path=f"/tickets/{reference}")
    await sign_in(bob, workspace, SECOND, path=f"/tickets/{reference}")
    await expect(bob.get_by_test_id("presence")).to_contain_text("Aida Agent is viewing", timeout=WAIT)
    await expect(ann.get_by_test_id("presence")).to_contain_text("Bob Burns is viewing", timeout=WAIT)

    body = bob.get_by_test_id("reply-form").locator('textarea[name="body"]')
    await body.fill("Here is the OECM guidance.")
    await expect(ann.get_by_test_id("presence")).to_contain_text(
        "Bob Burns has started a reply", timeout=WAIT
    )

    # The requester writes again while Bob is typing: his send is held back, with the new message shown.
    await request(workspace, 4, f"Re: [{reference}] Guidance on OECMs", "Sorry, we need it in Russian.")
    await bob.get_by_test_id("reply-form").locator('button[type="submit"]').click()
    await expect(bob.get_by_test_id("stale-warning")).to_be_visible()
    await expect(bob.locator('[data-newer="true"]')).to_contain_text("we need it in Russian")
    await expect(body).to_have_value("Here is the OECM guidance.")
    await expect(bob.locator(".message.outbound").filter(has_text="OECM guidance")).to_have_count(0)
    await body.fill("Here is the OECM guidance; a Russian version follows.")
    await bob.get_by_test_id("reply-form").locator('button[type="submit"]').click()
    await expect(bob.locator(".message.outbound").filter(has_text="Russian version follows")).to_have_count(1)
    await expect(bob.get_by_test_id("stale-warning")).to_have_count(0)
    assert bob.url == f"{workspace.base_url}/tickets/{reference}"
    await ann_context.close()
    await bob_context.close()
