"""A database that cannot be used is one line naming HELPDESK_DATABASE_URL, through the real `helpdesk`.

Each case is a real peer: the PostgreSQL on 127.0.0.1:5432 asked for a database it does not have, a port
nobody listens on, a private PostgreSQL that checks passwords (scram-sha-256; the shared one trusts
loopback, so it cannot refuse a password), and a SQLite file in a folder that does not exist.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

HELPDESK = str(Path(sys.executable).with_name("helpdesk"))
PASSWORD = "Sup3r-secret-pw"
COMMANDS = [["tickets", "list"], ["db", "upgrade"], ["run"]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def helpdesk(cwd: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    return subprocess.run(
        [HELPDESK, *argv], cwd=cwd, env={**clean, **env}, capture_output=True, text=True, timeout=120
    )


def _as_postgres_user() -> list[str]:
    # initdb and postgres refuse to run as root.
    return (
        ["setpriv", "--reuid", "postgres", "--regid", "postgres", "--init-groups"]
        if os.geteuid() == 0
        else []
    )


def _wait_for_password_check(port: int, process: subprocess.Popen[bytes]) -> None:
    async def refused() -> bool:
        try:
            connection = await asyncpg.connect(
                host="127.0.0.1", port=port, user="postgres", password="probe-wrong", timeout=5
            )
        except asyncpg.InvalidPasswordError:
            return True
        except (OSError, asyncpg.CannotConnectNowError):
            return False
        await connection.close()
        raise AssertionError("the private PostgreSQL accepted a wrong password")

    deadline = time.monotonic() + 60
    while not asyncio.run(refused()):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the private PostgreSQL did not start")
        time.sleep(0.05)  # polling a condition (the server answers), not waiting for a fixed time


@pytest.fixture(scope="module")
def password_postgres() -> Iterator[int]:
    """A throw-away PostgreSQL on loopback that checks passwords; yields its port."""
    if shutil.which("initdb") is None:
        pytest.fail("initdb is required: PostgreSQL 15 binaries are part of the test peers")
    # Under /tmp rather than pytest's private (0700) folder: the postgres user must reach it.
    with tempfile.TemporaryDirectory(prefix="helpdesk-pg-") as folder:
        home = Path(folder)
        (home / "pw").write_text(PASSWORD)
        if os.geteuid() == 0:
            for path in (home, home / "pw"):
                shutil.chown(path, "postgres", "postgres")
            home.chmod(0o755)
        yield from _serve_postgres(home)


def _serve_postgres(home: Path) -> Iterator[int]:
    data = home / "data"
    subprocess.run(
        [*_as_postgres_user(), "initdb", "-D", str(data), "-U", "postgres", "-A", "scram-sha-256",
         f"--pwfile={home / 'pw'}", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    port = free_port()
    server = subprocess.Popen(
        [*_as_postgres_user(), "postgres", "-D", str(data), "-c", "listen_addresses=127.0.0.1",
         "-c", f"port={port}", "-c", f"unix_socket_directories={home}", "-c", "fsync=off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for_password_check(port, server)
        yield port
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def _url(case: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, str]:
    """The URL for a case, and the words the one line must hold."""
    if case == "no such database":
        return f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/helpdesk_no_such_db", (
            "no database 'helpdesk_no_such_db' on 127.0.0.1:5432"
        )
    if case == "refused port":
        port = free_port()
        return f"postgresql+asyncpg://postgres:{PASSWORD}@127.0.0.1:{port}/helpdesk", (
            f"connection refused at 127.0.0.1:{port}"
        )
    if case == "wrong password":
        port = request.getfixturevalue("password_postgres")
        return f"postgresql://postgres:{PASSWORD}-typo@127.0.0.1:{port}/postgres", (
            f"authentication failed for user 'postgres' on 127.0.0.1:{port}"
        )
    assert case == "sqlite folder missing"
    return f"sqlite:///{tmp_path / 'no-such-folder' / 'helpdesk.db'}", "no-such-folder"


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
@pytest.mark.parametrize(
    "case", ["no such database", "refused port", "wrong password", "sqlite folder missing"]
)
def test_a_wrong_database_url_is_one_line(
    case: str, argv: list[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url, cause = _url(case, tmp_path, request)
    result = helpdesk(tmp_path, *argv, HELPDESK_DATABASE_URL=url)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert "HELPDESK_DATABASE_URL" in lines[0] and cause in lines[0], lines[0]
    assert PASSWORD not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "no-such-folder").exists()  # nothing made up on the way


@pytest.mark.parametrize(
    "argv",
    [
        ["tickets", "list"],
        ["tickets", "show", "TSCC-2026-0001"],
        ["report", "--month", "2026-10"],
        ["requester", "export", "--email", "aliya@eco.gov.kz"],
        ["mail", "dead-letters", "list"],
    ],
    ids=" ".join,
)
def test_a_reading_command_on_an_empty_folder_leaves_no_database(argv: list[str], tmp_path: Path) -> None:
    result = helpdesk(tmp_path, *argv)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"helpdesk: no database at {tmp_path / 'helpdesk.db'} (run `helpdesk db upgrade` or `helpdesk demo` "
        "first, or point HELPDESK_DATABASE_URL at one)"
    ]
    assert list(tmp_path.iterdir()) == []


def test_health_on_an_empty_folder_fails_and_leaves_no_database(tmp_path: Path) -> None:
    result = helpdesk(tmp_path, "health")
    assert result.returncode == 1
    assert f"FAIL database  no database at {tmp_path / 'helpdesk.db'}" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_db_upgrade_creates_the_database_and_then_reading_works(tmp_path: Path) -> None:
    assert helpdesk(tmp_path, "db", "upgrade").returncode == 0
    assert (tmp_path / "helpdesk.db").is_file()
    result = helpdesk(tmp_path, "tickets", "list")
    assert result.returncode == 0 and result.stdout.strip() == "no tickets"
