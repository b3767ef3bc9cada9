"""Run the fault-injection and load scenarios (tests/faults) with larger counts and print their figures.

    python bench/fault_report.py                 # 50 kills per kill scenario, 400+400 burst, both databases
    python bench/fault_report.py --kills 20 --burst 200 --ci-databases

The scenarios are the tests themselves; this only raises their counts (HELPDESK_FAULT_* variables), runs
them on both databases, and prints one JSON line per scenario plus a table. Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=50, help="SIGKILLs per kill scenario")
    parser.add_argument("--burst", type=int, default=400, help="Telegram messages and emails in the burst")
    parser.add_argument("--burst-seconds", type=int, default=60)
    parser.add_argument("--flaky-chats", type=int, default=200)
    parser.add_argument("--pg-messages", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--ci-databases", action="store_true", help="only the backend CI uses per scenario")
    parser.add_argument("-k", default=None, help="pytest -k expression to pick scenarios")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures_path = Path(tmp) / "figures.jsonl"
        env = {
            **os.environ,
            "HELPDESK_FAULT_FIGURES": str(figures_path),
            "HELPDESK_FAULT_KILL_ROUNDS": str(args.kills),
            "HELPDESK_FAULT_BURST": str(args.burst),
            "HELPDESK_FAULT_BURST_SECONDS": str(args.burst_seconds),
            "HELPDESK_FAULT_FLAKY_CHATS": str(args.flaky_chats),
            "HELPDESK_FAULT_PG_RESTART_MESSAGES": str(args.pg_messages),
            "HELPDESK_FAULT_SMTP_DOWN_MAILS": str(args.burst // 2),
            "HELPDESK_FAULT_TWO_PROCESS_MESSAGES": str(args.burst),
            "HELPDESK_FAULT_SEED": str(args.seed),
            "HELPDESK_FAULT_BOTH_DATABASES": "0" if args.ci_databases else "1",
        }
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/faults"]
        if args.k:
            command += ["-k", args.k]
        result = subprocess.run(command, cwd=ROOT, env=env, check=False)
        entries = (
            [json.loads(line) for line in figures_path.read_text().splitlines()]
            if figures_path.exists()
            else []
        )
    print("\n== figures")
    for entry in entries:
        print(json.dumps(entry, ensure_ascii=False))
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
