"""Telegram messages sent while PostgreSQL is stopped: how many are stored, acknowledged, or answered with
"send it again", for a real `helpdesk run` process against a private PostgreSQL and the Bot API stand-in.

    .venv/bin/python bench/bench_telegram_outage.py [--down 3 8] [--messages 20] [--checkout PATH]

``--down 0`` cuts the desk's connections every 0.4 s instead of stopping the server.
``--checkout`` runs `helpdesk run` from another checkout (PYTHONPATH), for a before/after comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

import asyncpg
from faults.helpers import HelpdeskProcess, PrivatePostgres, inbound_ids, run_env

from helpdesk.db.engine import make_engine, make_sessions
from helpdesk.db.migrate import upgrade
from standins.telegram_api import TelegramApiStandIn


def _texts(api: TelegramApiStandIn, chat: int) -> list[str]:
    return [m["text"] for m in api.sent_messages(chat)]


async def _cut_connections(postgres: PrivatePostgres) -> None:
    admin = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{postgres.port}/postgres")
    try:
        while True:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = 'helpdesk' AND pid <> pg_backend_pid()"
            )
            await asyncio.sleep(0.4)
    finally:
        await admin.close()


async def scenario(down_for: float, messages: int, checkout: str | None) -> dict[str, object]:
    postgres = PrivatePostgres()
    chats = [700_000 + n for n in range(messages)]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            await postgres.setup()
            await upgrade(postgres.url)
            async with TelegramApiStandIn() as api:
                env = run_env(postgres.url, bot_api=api, HELPDESK_SPOOL_DIR=str(Path(tmp) / "spool"))
                if checkout:
                    env["PYTHONPATH"] = checkout
                process = HelpdeskProcess(env, Path(tmp), name="outage")
                await process.start()
                try:
                    await process.wait_for_log("Telegram channel polling", timeout=60)
                    cutting = None
                    if down_for > 0:
                        await postgres.stop()
                    else:  # no outage: the server cuts the desk's connections every 0.4 s instead
                        cutting = asyncio.create_task(_cut_connections(postgres))
                    stopped = time.monotonic()
                    for n, chat in enumerate(chats):
                        await api.push_message(
                            chat, f"Request {n}: wetlands, Target 2", user={"language_code": "en"}
                        )
                        await asyncio.sleep(down_for / (messages + 1))
                    await asyncio.sleep(max(0.0, down_for - (time.monotonic() - stopped)))
                    if down_for > 0:
                        await postgres.start()
                    back = time.monotonic()
                    deadline = back + 90
                    while time.monotonic() < deadline:
                        answered = [c for c in chats if _texts(api, c)]
                        if len(answered) == len(chats):
                            break
                        await asyncio.sleep(0.2)
                    settled = time.monotonic() - back
                    if cutting is not None:
                        cutting.cancel()
                finally:
                    await process.terminate()
                failures = process.log_text().count("Telegram update")
                engine = make_engine(postgres.url)
                try:
                    ids = set(await inbound_ids(make_sessions(engine), "telegram"))
                finally:
                    await engine.dispose()
                acked = [c for c in chats if any("registered as TSCC-" in t for t in _texts(api, c))]
                told = [
                    c
                    for c in chats
                    if any("problem on our side" in t or "database" in t for t in _texts(api, c))
                ]
                silent = [c for c in chats if not _texts(api, c)]
        finally:
            await postgres.cleanup()
    return {
        "down_seconds": down_for,
        "messages": messages,
        "stored": len(ids),
        "acknowledged": len(acked),
        "told_to_resend": len(told),
        "lost_silently": len([c for c in silent if not any(i.startswith(f"{c}:") for i in ids)]),
        "seconds_until_all_answered": round(settled, 1),
        "updates_failed_in_handler": failures,
    }


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--down", type=float, nargs="+", default=[3.0, 8.0])
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--checkout", help="run `helpdesk run` from this checkout instead")
    args = parser.parse_args()
    for down_for in args.down:
        print(await scenario(down_for, args.messages, args.checkout))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
