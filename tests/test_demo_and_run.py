"""`helpdesk demo` end to end, and `helpdesk run` as a real process: start, serve, stop on SIGTERM."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
from pathlib import Path

import pytest

from helpdesk.demo import run_demo
from helpdesk.standins.environment import standin_environment
from helpdesk.standins.smtp_server import SmtpStandIn
from helpdesk.standins.telegram_api import TelegramApiStandIn


async def test_demo_tickets_acknowledges_and_answers_every_request(tmp_path: Path) -> None:
    out = io.StringIO()
    assert await run_demo(out, tmp_path) == 0
    text = out.getvalue()
    year_refs = sorted({word for word in text.split() if word.startswith("TSCC-") and len(word) == 14})
    assert len(year_refs) == 4
    assert text.count("--- Telegram to") == 3  # two receipts + one staff reply
    assert text.count("--- Email to") == 3  # two receipts + one staff reply
    assert "зарегистрирован" in text and "registered as" in text
    assert "Иссык-Куля" not in text.split("== What each requester received")[1]  # no request echoed back
    assert "Demo finished" in text


async def _wait_for_line(stream: asyncio.StreamReader, needle: str, seen: list[str]) -> None:
    while True:
        line = (await stream.readline()).decode()
        if not line:
            raise AssertionError(f"process ended before logging {needle!r}: {''.join(seen)}")
        seen.append(line)
        if needle in line:
            return


async def test_run_serves_telegram_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    async with TelegramApiStandIn() as bot_api, SmtpStandIn() as smtp:
        env = {
            **os.environ,
            "HELPDESK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'run.db'}",
            **standin_environment(bot_api=bot_api, smtp=smtp),
            "HELPDESK_MAIL_FROM": "helpdesk@tscc.example.org",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "helpdesk.cli", "run",
            env=env, cwd=tmp_path, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert process.stderr is not None
        seen: list[str] = []
        try:
            await asyncio.wait_for(_wait_for_line(process.stderr, "Telegram channel polling", seen), 120)
            await bot_api.push_message(4242, "Нужна помощь с отчётом по ООПТ", user={"language_code": "ru"})
            call = await bot_api.wait_for_call("sendMessage", timeout=60)
            assert call.params["chat_id"] == 4242 and "TSCC-" in call.params["text"]
        finally:
            process.send_signal(signal.SIGTERM)
            rest = await asyncio.wait_for(process.stderr.read(), 30)
            code = await asyncio.wait_for(process.wait(), 30)
        log = "".join(seen) + rest.decode()
        assert code == 0, log
        assert "stopped" in log and "Traceback" not in log
        assert bot_api.token.split(":")[1] not in log  # the token's secret never reaches the log


WEBHOOK = {"HELPDESK_TELEGRAM_TOKEN": "1:abc", "HELPDESK_TELEGRAM_WEBHOOK_URL": "https://desk.example.org/tg"}


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            {"HELPDESK_IMAP_HOST": "imap.example.org"},
            "HELPDESK_IMAP_USER is not set; it is required when HELPDESK_IMAP_HOST is set",
        ),
        (
            WEBHOOK,
            "HELPDESK_TELEGRAM_WEBHOOK_SECRET is not set; it is required when HELPDESK_TELEGRAM_WEBHOOK_URL "
            "is set",
        ),
        (
            {**WEBHOOK, "HELPDESK_TELEGRAM_WEBHOOK_URL": "http://desk.example.org/tg"},
            "HELPDESK_TELEGRAM_WEBHOOK_URL must be an https:// URL, got 'http://desk.example.org/tg'",
        ),
    ],
)
async def test_run_with_a_missing_setting_prints_one_line(
    tmp_path: Path, settings: dict[str, str], expected: str
) -> None:
    unset = {name: "" for name in os.environ if name.startswith("HELPDESK_")}
    env = {**os.environ, **unset, **settings}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "helpdesk.cli", "run",
        env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 2
    lines = err.decode().strip().splitlines()
    assert lines == [f"helpdesk: configuration: {expected}"]
