"""`helpdesk demo` end to end, and `helpdesk run` as a real process: start, serve, stop on SIGTERM."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpdesk.demo import run_demo
from standins.environment import standin_environment
from standins.smtp_server import SmtpStandIn
from standins.telegram_api import TelegramApiStandIn


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
    assert f"The demo's tickets are in {tmp_path / 'helpdesk.db'}" in text


def _helpdesk(cwd: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    return subprocess.run(
        [str(Path(sys.executable).with_name("helpdesk")), *argv],
        cwd=cwd, env={**clean, **env}, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def _references(text: str) -> list[str]:
    return sorted({word for word in text.split() if word.startswith("TSCC-") and len(word) == 14})


def test_the_demo_keeps_its_tickets_for_the_staff_commands_and_runs_again(tmp_path: Path) -> None:
    first = _helpdesk(tmp_path, "demo")
    assert first.returncode == 0, first.stderr
    database = tmp_path / "helpdesk.db"
    assert (
        first.stdout.splitlines()[-1] == f"The demo's tickets are in {database}; try `helpdesk tickets list`"
    )
    demo_refs = _references(first.stdout.split("== Tickets")[1])
    assert len(demo_refs) == 4

    listed = _helpdesk(tmp_path, "tickets", "list")
    assert listed.returncode == 0 and _references(listed.stdout) == demo_refs
    shown = _helpdesk(tmp_path, "tickets", "show", demo_refs[-1])
    assert shown.returncode == 0 and "Funding for NBSAP update" in shown.stdout

    again = _helpdesk(tmp_path, "demo")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"Replaced the previous demo database: {database}")
    assert _references(_helpdesk(tmp_path, "tickets", "list").stdout) == demo_refs  # the same four


def test_the_demo_leaves_a_database_it_did_not_make_alone(tmp_path: Path) -> None:
    assert _helpdesk(tmp_path, "db", "upgrade").returncode == 0
    before = (tmp_path / "helpdesk.db").read_bytes()
    result = _helpdesk(tmp_path, "demo")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"helpdesk: {tmp_path / 'helpdesk.db'} was not made by `helpdesk demo`, so the demo leaves it alone: "
        "run the demo in another folder, or with --dir DIR"
    ]
    assert (tmp_path / "helpdesk.db").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["helpdesk.db"]


def test_the_demo_never_touches_the_configured_database(tmp_path: Path) -> None:
    (tmp_path / "live").mkdir()
    live = f"sqlite:///{tmp_path / 'live' / 'helpdesk.db'}"
    assert _helpdesk(tmp_path, "db", "upgrade", HELPDESK_DATABASE_URL=live).returncode == 0
    before = (tmp_path / "live" / "helpdesk.db").read_bytes()
    result = _helpdesk(tmp_path, "demo", "--dir", "try", HELPDESK_DATABASE_URL=live)
    assert result.returncode == 0, result.stderr
    demo_db = tmp_path / "try" / "helpdesk.db"
    assert result.stdout.splitlines()[-1] == (
        f"The demo's tickets are in {demo_db}; "
        f"try `HELPDESK_DATABASE_URL=sqlite:///{demo_db} helpdesk tickets list`"
    )
    assert (tmp_path / "live" / "helpdesk.db").read_bytes() == before
    listed = _helpdesk(tmp_path, "tickets", "list", HELPDESK_DATABASE_URL=f"sqlite:///{demo_db}")
    assert len(_references(listed.stdout)) == 4


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


async def test_run_with_a_rejected_token_ends_with_one_line_and_stops_its_other_tasks(tmp_path: Path) -> None:
    """A channel that cannot start ends `helpdesk run` at once: one line, and the delivery worker and the
    spool replayer it had already started end with it (no task left pending, no traceback)."""
    async with TelegramApiStandIn() as bot_api:
        env = {
            **os.environ,
            "HELPDESK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'run.db'}",
            **standin_environment(bot_api=bot_api),
            "HELPDESK_TELEGRAM_TOKEN": "9876543210:AAFakeButWellFormedTokenValue123456789",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "helpdesk.cli", "run",
            env=env, cwd=tmp_path, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(process.communicate(), 120)
    log = err.decode()
    assert process.returncode not in (0, None), log
    assert "HELPDESK_TELEGRAM_TOKEN" in log
    assert "Traceback" not in log and "Task was destroyed" not in log and "never retrieved" not in log, log
    assert "AAFakeButWellFormedTokenValue123456789" not in log
