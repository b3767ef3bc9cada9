"""What a plain install carries: the stand-ins' servers (aiohttp, aiosmtpd, pymap) only in the `demo` extra,
the product importable and runnable without them, and `helpdesk demo` saying how to get them."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
DEMO_EXTRA = {"aiohttp", "aiosmtpd", "pymap"}
INSTALL_LINE = "pip install 'tscc-helpdesk[demo]'"

# Installed as sitecustomize in a subprocess: imports of the demo extra fail there as on a plain install.
BLOCK_DEMO_EXTRA = f"""
import sys

class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {sorted(DEMO_EXTRA)!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
"""


@pytest.fixture
def without_demo_extra(tmp_path: Path) -> dict[str, str]:
    """An environment for subprocesses in which aiohttp, aiosmtpd and pymap cannot be imported."""
    blocker = tmp_path / "no-demo-extra"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCK_DEMO_EXTRA)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    return {**clean, "PYTHONPATH": str(blocker)}


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _helpdesk() -> str:
    return str(Path(sys.executable).with_name("helpdesk"))


def test_the_blocker_really_blocks(without_demo_extra: dict[str, str], tmp_path: Path) -> None:
    for name in sorted(DEMO_EXTRA):
        result = _run([sys.executable, "-c", f"import {name}"], without_demo_extra, tmp_path)
        assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr, name


def test_demo_without_the_demo_extra_prints_the_install_command(
    without_demo_extra: dict[str, str], tmp_path: Path
) -> None:
    result = _run([_helpdesk(), "demo", "--dir", str(tmp_path)], without_demo_extra, tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"helpdesk demo needs aiohttp, aiosmtpd, pymap (the demo extra): {INSTALL_LINE}"
    ]
    assert not (tmp_path / "helpdesk.db").exists()  # it stopped before claiming a database


def test_the_service_imports_and_its_cli_runs_without_the_demo_extra(
    without_demo_extra: dict[str, str], tmp_path: Path
) -> None:
    imports = "import helpdesk.cli, helpdesk.service, helpdesk.worker, bot.application, bot.sender"
    result = _run([sys.executable, "-c", imports], without_demo_extra, tmp_path)
    assert result.returncode == 0, result.stderr
    # Every command's parser, then the staff path on a fresh SQLite file: migrate, then list.
    for argv in (["--help"], ["db", "upgrade"], ["tickets", "list"]):
        result = _run([_helpdesk(), *argv], without_demo_extra, tmp_path)
        assert result.returncode == 0, (argv, result.stderr)
    assert (tmp_path / "helpdesk.db").exists()


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.partition(".")[0])
    return found


def test_only_the_demo_imports_the_stand_ins_or_their_servers() -> None:
    allowed = {ROOT / "helpdesk" / "demo.py"}
    offenders = {}
    for path in [*(ROOT / "helpdesk").rglob("*.py"), *(ROOT / "bot").rglob("*.py")]:
        if path in allowed:
            continue
        if bad := _imported_modules(path) & (DEMO_EXTRA | {"standins"}):
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}
    assert "standins" in _imported_modules(ROOT / "helpdesk" / "demo.py")  # the scan sees imports


def _requirements(metadata: str) -> tuple[set[str], dict[str, set[str]]]:
    """Base requirement names, and requirement names per extra, from a wheel's METADATA."""
    base: set[str] = set()
    extras: dict[str, set[str]] = {}
    message = Parser().parsestr(metadata)
    for extra in message.get_all("Provides-Extra") or []:
        extras[extra] = set()
    for line in message.get_all("Requires-Dist") or []:
        requirement = Requirement(line)
        extra_names = ",".join(sorted(requirement.extras))
        name = f"{requirement.name}[{extra_names}]" if extra_names else requirement.name
        if requirement.marker is None:
            base.add(requirement.name)
            continue
        for extra in extras:
            if requirement.marker.evaluate({"extra": extra}):
                extras[extra].add(name)
    return base, extras


def test_the_wheel_requires_no_stand_in_server_and_the_demo_extra_brings_them(tmp_path: Path) -> None:
    # Built from a copy, so the test leaves no build/ folder in the checkout and sees only tracked sources.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("bot", "helpdesk", "knowledge", "templates", "standins"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("tscc_helpdesk-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        base, extras = _requirements(archive.read(metadata_name).decode())

    assert "python-telegram-bot" in base and "aiosmtplib" in base  # the parse found the real requirements
    assert base.isdisjoint(DEMO_EXTRA), base & DEMO_EXTRA
    assert extras["demo"] == DEMO_EXTRA
    assert "tscc-helpdesk[demo]" in extras["dev"]
    # The stand-ins ship in the wheel (the installed `helpdesk demo` needs them), outside the product.
    assert "standins/telegram_api/server.py" in names
    assert not any(n.startswith("helpdesk/standins/") for n in names)
