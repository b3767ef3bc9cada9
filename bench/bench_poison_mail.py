"""Memory of the poison mail of issue #10 item 3 (a Subject of thousands of RFC 2047 encoded words),
before and after the raw limits and the parser worker. Not a test.

    .venv/bin/python bench/bench_poison_mail.py [--sizes 125,500,1024] [--cap-mb 4096]

Each measurement runs in a fresh subprocess, so the peaks (ru_maxrss, the kernel's high-water mark) are
its own:

- before: what main did, ``parse_email`` in the service's own process (in a thread: same memory). The
  subprocess has RLIMIT_AS at ``--cap-mb`` so that the machine survives; hitting it shows as MemoryError.
- after: the intake's path now: ``check_raw`` on the bytes, then (only within the limits) the parser in
  its worker. Service peak and worker peak.
- worker only: the raw limits switched off, so the parser worker (RLIMIT_AS 1 GB, 30 s) meets the mail:
  what the service would see if a runaway got past the raw limits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time

KB = 1024
MB = 1024 * 1024


def poison(size: int) -> bytes:
    word = "=?utf-8?q?=D0=B0b?="
    count = size // (len(word) + 1)
    folded = "\r\n ".join(" ".join([word] * 4) for _ in range(max(1, count // 4)))
    return (
        f"From: Aliya <aliya@eco.gov.kz>\r\nTo: helpdesk@tscc.example\r\nSubject: {folded}\r\n"
        f"Message-ID: <poison-{size}@eco.gov.kz>\r\nDate: Sun, 29 Nov 2026 12:00:00 +0500\r\n"
        "\r\nPlease help.\r\n"
    ).encode()


def _peak_mb(who: int) -> float:
    return round(resource.getrusage(who).ru_maxrss / KB, 1)


async def _after(raw: bytes, *, raw_limits: bool) -> str:
    from helpdesk.email.limits import LimitExceeded, MailLimits, check_raw
    from helpdesk.email.parser_process import GuardedParser, ParserLimitExceeded

    parser = GuardedParser()
    try:
        if raw_limits:
            check_raw(raw, MailLimits())
        inbound = await parser.parse(raw)
        return f"parsed (subject {len(inbound.subject or '')} chars)"
    except LimitExceeded as exc:
        return f"refused before parsing: {exc.reason}"
    except ParserLimitExceeded as exc:
        return f"worker stopped: {exc.reason}"
    finally:
        await parser.close()  # waited for, so its peak counts in RUSAGE_CHILDREN


def measure(mode: str, size: int, cap_mb: int) -> dict[str, object]:
    """Runs in the measuring subprocess."""
    import helpdesk.email.parse as parse_module  # imported before the baseline, as in the service

    baseline = _peak_mb(resource.RUSAGE_SELF)
    raw = poison(size)
    started = time.monotonic()
    if mode == "before":
        resource.setrlimit(resource.RLIMIT_AS, (cap_mb * MB, cap_mb * MB))
        try:
            inbound = parse_module.parse_email(raw)
            outcome = f"parsed (subject {len(inbound.subject or '')} chars)"
        except MemoryError:
            outcome = f"MemoryError at the {cap_mb} MB cap"
    else:
        outcome = asyncio.run(_after(raw, raw_limits=mode == "after"))
    return {
        "mode": mode,
        "subject_kb": size // KB,
        "raw_bytes": len(raw),
        "seconds": round(time.monotonic() - started, 2),
        "service_baseline_mb": baseline,
        "service_peak_mb": _peak_mb(resource.RUSAGE_SELF),
        "worker_peak_mb": _peak_mb(resource.RUSAGE_CHILDREN) if mode != "before" else None,
        "outcome": outcome,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="125,500,1024", help="Subject sizes in KB")
    parser.add_argument("--cap-mb", type=int, default=4096, help="RLIMIT_AS of the 'before' subprocess")
    parser.add_argument("--modes", default="before,after,worker-only")
    parser.add_argument("--measure", nargs=2, metavar=("MODE", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], int(args.measure[1]), args.cap_mb)))
        return
    rows = []
    for mode in args.modes.split(","):
        for size_kb in (int(s) for s in args.sizes.split(",")):
            command = [
                sys.executable,
                __file__,
                "--cap-mb",
                str(args.cap_mb),
                "--measure",
                mode,
                str(size_kb * KB),
            ]
            done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
            if done.returncode != 0:
                row = {
                    "mode": mode,
                    "subject_kb": size_kb,
                    "outcome": f"exit {done.returncode}: {done.stderr[-300:]}",
                }
            else:
                row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(json.dumps(row, ensure_ascii=False), flush=True)
    print()
    print("| mode | subject | s | service peak MB (baseline) | worker peak MB | outcome |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| {row['mode']} | {row['subject_kb']} KB | {row.get('seconds', '')} | "
            f"{row.get('service_peak_mb', '')} ({row.get('service_baseline_mb', '')}) | "
            f"{row.get('worker_peak_mb') or '-'} | {row['outcome']} |"
        )


if __name__ == "__main__":
    main()
