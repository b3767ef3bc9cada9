"""The workspace inside `helpdesk run`: served by uvicorn on the runtime's loop, ended by its SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from pathlib import Path

import httpx
from web_runtime import AGENT, PASSWORD, free_port, running_workspace


async def test_run_serves_the_workspace_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    async with running_workspace(tmp_path) as workspace:
        async with httpx.AsyncClient(base_url=workspace.base_url) as client:
            assert (await client.get("/healthz")).json() == {"status": "ok"}
            login = await client.get("/login")
            token = login.text.split('name="csrf_token" value="')[1].split('"')[0]
            signed = await client.post(
                "/login", data={"email": AGENT, "password": PASSWORD, "csrf_token": token}
            )
            assert signed.status_code == 303
            inbox = await client.get("/", params={"view": "all"})
            assert inbox.text.count('data-testid="ticket-row"') == 3
    log = "".join(workspace.log)
    assert "exit 0" in log and "stopped" in log and "Traceback" not in log, log
    assert PASSWORD not in log


async def test_a_port_in_use_is_one_line_and_nothing_left_running(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_") or "TEST" in k},
            "HELPDESK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'run.db'}",
            "HELPDESK_WEB_PORT": str(port),
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "helpdesk.cli", "run",
            env=env, cwd=tmp_path, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(process.communicate(), 120)
    log = err.decode()
    assert process.returncode == 1, log
    assert f"helpdesk: the web workspace cannot listen on 127.0.0.1:{port}" in log
    assert "Traceback" not in log and "never retrieved" not in log, log


async def test_demo_serve_keeps_the_workspace_running_with_a_login(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_") or "TEST" in k}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "helpdesk.cli", "demo", "--dir", str(tmp_path), "--serve", "--port", str(port),
        env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    seen: list[str] = []
    try:
        while not any(line.startswith("Sign in as ") for line in seen):
            line = (await asyncio.wait_for(process.stdout.readline(), 180)).decode()
            assert line, "".join(seen)
            seen.append(line)
        email, password = re.fullmatch(r"Sign in as (\S+) with the password (\S+)\n", seen[-1]).groups()  # type: ignore[union-attr]
        assert any(f"http://127.0.0.1:{port}/" in line for line in seen)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            login = await client.get("/login")
            token = login.text.split('name="csrf_token" value="')[1].split('"')[0]
            signed = await client.post(
                "/login", data={"email": email, "password": password, "csrf_token": token}
            )
            assert signed.status_code == 303
            inbox = await client.get("/", params={"view": "all"})
            assert inbox.text.count('data-testid="ticket-row"') == 4
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert "Traceback" not in err.decode()
