"""Matchmaking in a real browser against `helpdesk run` (chromium): refer from the ticket page, the offer
reaches the expert at the SMTP stand-in with a one-click link, the expert opens it (no session) and
confirms, and the ticket page shows the referral accepted."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect
from test_web_browser_work import request, sign_in
from web_browser import needs_chromium
from web_runtime import Workspace, running_workspace

from standins.smtp_server import SmtpStandIn

pytestmark = needs_chromium
WAIT = 20_000  # ms, two slow shared cores


@pytest.fixture
async def workspace(tmp_path: Path) -> AsyncIterator[Workspace]:
    async with running_workspace(tmp_path, with_base_url=True) as workspace:
        yield workspace


async def link_mailed(smtp: SmtpStandIn, within: float = 60) -> str:
    """The one-click "yes" link of the first offer that reaches the SMTP stand-in."""
    link = re.compile(r"https?://\S+/referrals/answer/\S+\.yes\.\S+")

    async def find() -> str:
        while True:
            for captured in smtp.messages:
                body = captured.message.get_body(("plain",))
                found = link.search(body.get_content() if body is not None else "")
                if found:
                    return found.group(0)
            await smtp.wait_for_messages(len(smtp.messages) + 1, timeout=within)

    return await asyncio.wait_for(find(), within)


async def test_refer_from_the_page_and_the_expert_accepts_by_the_mailed_link(
    browser: Browser,
    workspace: Workspace,
) -> None:
    reference = await request(
        workspace, 7, "Support for spatial planning", "We need support for spatial planning (Target 1)."
    )
    staff = await browser.new_page()
    await sign_in(staff, workspace, path=f"/tickets/{reference}")
    refer_form = staff.get_by_test_id("refer-form")
    await refer_form.locator('input[name="expert"]').first.check()
    await refer_form.locator("textarea").fill("Could you advise them?")
    await refer_form.get_by_role("button").click()
    await expect(staff.get_by_test_id("referral-state")).to_have_text("offered", timeout=WAIT)

    link = await link_mailed(workspace.smtp)
    assert link.startswith(workspace.base_url)
    expert = await (await browser.new_context()).new_page()  # the expert: no staff session
    await expert.goto(link)
    await expect(expert.get_by_test_id("link-confirm")).to_be_visible(timeout=WAIT)
    await expert.get_by_test_id("link-confirm").get_by_role("button").click()
    await expect(expert.get_by_test_id("link-done")).to_be_visible(timeout=WAIT)

    await staff.reload()
    await expect(staff.get_by_test_id("referral-state")).to_have_text("accepted", timeout=WAIT)
