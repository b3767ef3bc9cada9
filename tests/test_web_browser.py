"""The workspace in a real browser: Playwright driving the system's chromium against `helpdesk run`
(web on, Bot API and SMTP stand-ins), so what staff do reaches requesters for real."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect
from web_browser import needs_chromium
from web_runtime import (
    AGENT,
    PASSWORD,
    REQUESTER_CHAT,
    REQUESTER_EMAIL,
    Workspace,
    running_workspace,
)

from standins.smtp_server import SmtpStandIn

pytestmark = needs_chromium


@pytest.fixture
async def workspace(tmp_path: Path) -> AsyncIterator[Workspace]:
    async with running_workspace(tmp_path) as workspace:
        yield workspace


async def sign_in(page: Page, workspace: Workspace, path: str = "/") -> None:
    await page.goto(workspace.base_url + path)
    await expect(page).to_have_url(re.compile(r"/login\?next="))
    await page.fill('input[name="email"]', AGENT)
    await page.fill('input[name="password"]', PASSWORD)
    await page.press('input[name="password"]', "Enter")
    await expect(page).to_have_url(workspace.base_url + path)


async def mail_containing(smtp: SmtpStandIn, text: str, within: float = 60) -> str:
    async def find() -> str:
        while True:
            for captured in smtp.messages:
                body = captured.message.get_body(("plain",))
                content = body.get_content() if body is not None else ""
                if text in content:
                    return ", ".join(captured.rcpt_tos)
            await smtp.wait_for_messages(len(smtp.messages) + 1, timeout=within)

    return await asyncio.wait_for(find(), within)


async def test_staff_answer_on_both_channels_note_assign_and_set_status(
    browser: Browser, workspace: Workspace
) -> None:
    page = await browser.new_page()
    refs = workspace.references
    await sign_in(page, workspace, "/?view=all")
    await expect(page.get_by_test_id("ticket-row")).to_have_count(3)
    await page.fill('input[name="q"]', "OECM")
    await page.press('input[name="q"]', "Enter")
    await expect(page.get_by_test_id("ticket-row")).to_have_count(1)
    await page.get_by_test_id("ticket-row").first.locator("a").click()
    await expect(page).to_have_url(f"{workspace.base_url}/tickets/{refs['email']}")

    # Reply by email: it reaches the requester's mailbox through the SMTP server.
    reply = page.get_by_test_id("reply-form")
    await reply.locator('textarea[name="body"]').fill("Here is the OECM guidance, chapter 3.")
    await reply.locator('button[type="submit"]').click()
    answer = page.locator(".message.outbound").filter(has_text="OECM guidance, chapter 3")
    await expect(answer).to_have_count(1)
    assert REQUESTER_EMAIL in await mail_containing(workspace.smtp, "OECM guidance, chapter 3")
    await page.reload()
    await expect(answer.get_by_test_id("delivery")).to_contain_text("sent")

    # A note looks different and is never sent.
    note = page.get_by_test_id("note-form")
    await note.locator('textarea[name="body"]').fill("Ask the Uzbek focal point too.")
    await note.locator('button[type="submit"]').click()
    await expect(page.locator(".message.note")).to_contain_text("Ask the Uzbek focal point too.")

    assign = page.get_by_test_id("assign-form")
    await assign.locator('select[name="assignee"]').select_option(AGENT)
    await assign.locator('button[type="submit"]').click()
    await expect(page.locator(".meta").first).to_contain_text("agent@tscc.example")

    status = page.get_by_test_id("status-form")
    await status.locator('select[name="status"]').select_option("resolved")
    await status.locator('button[type="submit"]').click()
    await expect(page.locator(".meta").first).to_contain_text("resolved")
    await expect(page.locator(".audit")).to_contain_text(f"web:{AGENT}")

    # Reply on Telegram: it reaches the requester's chat through the Bot API.
    await page.goto(f"{workspace.base_url}/tickets/{refs['telegram']}")
    reply = page.get_by_test_id("reply-form")
    await reply.locator('textarea[name="body"]').fill("Эксперт свяжется с вами завтра.")
    await reply.locator('button[type="submit"]').click()
    call = await workspace.bot_api.wait_for_call(
        "sendMessage",
        lambda call: call.params["chat_id"] == REQUESTER_CHAT and "свяжется" in call.params["text"],
        timeout=60,
    )
    assert "Эксперт свяжется с вами завтра." in call.params["text"]
    assert "Note" not in call.params["text"] and "Uzbek focal point" not in call.params["text"]


async def test_russian_ui_on_a_phone(browser: Browser, workspace: Workspace) -> None:
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    page = await context.new_page()
    await page.goto(f"{workspace.base_url}/login?lang=ru")
    assert await page.get_attribute("html", "lang") == "ru"
    await expect(page.locator("h1")).to_have_text("Войти")
    await page.fill('input[name="email"]', AGENT)
    await page.fill('input[name="password"]', PASSWORD)
    await page.locator('button[type="submit"]').last.click()
    await expect(page.locator("h1")).to_have_text("Входящие")
    assert await page.get_attribute("html", "lang") == "ru"  # remembered without ?lang
    await page.goto(f"{workspace.base_url}/tickets/{workspace.references['email']}")
    await expect(page.get_by_test_id("reply-form")).to_contain_text("Ответ заявителю")
    # One column that fits the screen, and targets large enough for a thumb.
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    for selector in (
        "[data-testid=reply-form] button",
        "[data-testid=status-form] select",
        "textarea[name=body]",
    ):
        box = await page.locator(selector).first.bounding_box()
        assert box is not None and box["height"] >= 44, (selector, box)
    reply_box = await page.get_by_test_id("reply-form").bounding_box()
    note_box = await page.get_by_test_id("note-form").bounding_box()
    assert reply_box and note_box and note_box["y"] >= reply_box["y"] + reply_box["height"]  # stacked
    await context.close()


async def test_a_script_subject_runs_nowhere(browser: Browser, workspace: Workspace) -> None:
    page = await browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await sign_in(page, workspace, "/?view=all")
    hostile = workspace.references["hostile"]
    await expect(page.get_by_test_id("ticket-row").filter(has_text="<script>")).to_have_count(1)
    await page.goto(f"{workspace.base_url}/tickets/{hostile}")
    await expect(page.locator("h1")).to_contain_text('<script>document.title="pwned"</script>')
    for path in ("/?view=all", f"/tickets/{hostile}", "/?view=all&q=%3Cscript%3E"):
        await page.goto(workspace.base_url + path)
        assert await page.title() != "pwned", path
        assert await page.locator("img[src=x]").count() == 0, path
    assert not dialogs
