"""Telegram throughput: 50 chats send 500 messages at once through the Bot API stand-in.

Measures, per message, the time from the update being queued at the stand-in to the bot's acknowledgement
(the sendMessage answering it) — for the help desk (PTB application + desk on SQLite + outbox + delivery
worker) and for a bare PTB echo bot on the same stand-in, run side by side in alternating rounds.

    .venv/bin/python bench/bench_telegram.py [--chats 50] [--messages 500] [--rounds 3] [--database URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters

from bot.application import build_application, start_polling, stop_application
from bot.sender import TelegramSender
from helpdesk.db.engine import make_engine, make_sessions
from helpdesk.db.migrate import upgrade
from helpdesk.desk import Desk
from helpdesk.service import standard_composers
from helpdesk.usecases.receive import receive
from helpdesk.worker import DeliveryWorker
from standins.telegram_api import TelegramApiStandIn

STAFF_CHAT = -100777


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def _push_all(api: TelegramApiStandIn, chats: int, messages: int) -> dict[tuple[int, int], float]:
    pushed: dict[tuple[int, int], float] = {}
    for n in range(messages):
        chat = 900_000 + n % chats
        text = f"Request {n}: we need guidance on protected area management effectiveness (METT) for Target 3"
        update = await api.push_message(chat, text, user={"language_code": "en"})
        pushed[(chat, update["message"]["message_id"])] = time.monotonic()
    return pushed


async def _latencies(
    api: TelegramApiStandIn, pushed: dict[tuple[int, int], float], within: float
) -> list[float]:
    deadline = time.monotonic() + within
    answered: dict[tuple[int, int], float] = {}
    while len(answered) < len(pushed) and time.monotonic() < deadline:
        for call in api.calls_to("sendMessage"):
            reply = call.params.get("reply_parameters") or {}
            key = (call.params.get("chat_id"), reply.get("message_id"))
            if key in pushed and key not in answered and call.ok:
                answered[key] = call.at
        await asyncio.sleep(0.05)
    if len(answered) < len(pushed):
        raise RuntimeError(f"only {len(answered)} of {len(pushed)} messages acknowledged in {within}s")
    return [answered[k] - pushed[k] for k in pushed]


async def echo_round(chats: int, messages: int) -> list[float]:
    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text(update.effective_message.text or "", do_quote=True)

    async with TelegramApiStandIn() as api:
        app = Application.builder().token(api.token).base_url(api.base_url).build()
        app.add_handler(MessageHandler(filters.TEXT, echo))
        async with app:
            await app.start()
            assert app.updater is not None
            await app.updater.start_polling(timeout=1)
            pushed = await _push_all(api, chats, messages)
            latencies = await _latencies(api, pushed, 300)
            await app.updater.stop()
            await app.stop()
    return latencies


async def desk_round(chats: int, messages: int, database_url: str) -> list[float]:
    engine = make_engine(database_url)
    try:
        async with TelegramApiStandIn() as api:
            sender = TelegramSender(api.token, api.base_url)
            worker = DeliveryWorker(make_sessions(engine), {"telegram": sender}, poll_interval=0.2)
            desk = Desk(
                sessions=make_sessions(engine),
                outbox_written=worker.wake,
                staff_telegram_chat_id=STAFF_CHAT,
                composers=standard_composers(),
            )

            async def on_inbound(inbound: Any) -> Any:
                return await receive(desk, inbound)

            app = build_application(api.token, api.base_url, on_inbound, desk=desk, staff_chat_id=STAFF_CHAT)
            stop = asyncio.Event()
            delivery = asyncio.create_task(worker.run(stop))
            await start_polling(app, poll_timeout=1)
            try:
                pushed = await _push_all(api, chats, messages)
                latencies = await _latencies(api, pushed, 600)
            finally:
                await stop_application(app)
                stop.set()
                await delivery
                await sender.close()
    finally:
        await engine.dispose()
    return latencies


def summary(name: str, values: list[float]) -> str:
    return (
        f"{name:<10} median {statistics.median(values) * 1000:8.1f} ms"
        f"   p99 {percentile(values, 0.99) * 1000:8.1f} ms"
        f"   max {max(values) * 1000:8.1f} ms   (n={len(values)})"
    )


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chats", type=int, default=50)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", help="SQLAlchemy URL (default: a fresh SQLite file per round)")
    args = parser.parse_args()

    desk_all: list[float] = []
    echo_all: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_number in range(args.rounds):
            url = args.database or f"sqlite+aiosqlite:///{Path(tmp) / f'bench{round_number}.db'}"
            await upgrade(url)
            # Alternate the order so warm-up and machine noise fall on both sides.
            if round_number % 2:
                desk_values = await desk_round(args.chats, args.messages, url)
                echo_values = await echo_round(args.chats, args.messages)
            else:
                echo_values = await echo_round(args.chats, args.messages)
                desk_values = await desk_round(args.chats, args.messages, url)
            print(f"round {round_number + 1}:")
            print("  " + summary("help desk", desk_values))
            print("  " + summary("echo bot", echo_values))
            desk_all += desk_values
            echo_all += echo_values
    print(f"all rounds ({args.chats} chats, {args.messages} messages each):")
    print("  " + summary("help desk", desk_all))
    print("  " + summary("echo bot", echo_all))
    median_ratio = statistics.median(desk_all) / statistics.median(echo_all)
    p99_ratio = percentile(desk_all, 0.99) / percentile(echo_all, 0.99)
    print(f"  ratio help desk / echo: median {median_ratio:.2f}x, p99 {p99_ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
