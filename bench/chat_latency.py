"""How fast the chat answers: round trips through the real PTB client and the Bot API emulator.

    .venv/bin/python bench/chat_latency.py [--rounds 50]

A replay stack (the bundled BTC and ETH 1h samples, 500 candles traded first) behind the
Telegram front end, which long-polls the local emulator. Each round a user sends a command and
the clock runs until the reply lands in the emulator, so the figure includes the long-poll
pickup, the handler, SQLite and, for charts, rendering. The target (issue 5): every command
answered within a second.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.app import assemble_replay, build_cockpit, load_replay  # noqa: E402
from bot.cockpit import Venue  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.history import ReplayHistory  # noqa: E402
from bot.scheduler import Jobs  # noqa: E402
from handlers.frontend import TelegramFrontend  # noqa: E402
from storage.alerts import SqliteAlertRepository  # noqa: E402
from storage.db import open_database  # noqa: E402
from tests.telegram_emulator import TelegramEmulator, running  # noqa: E402

SAMPLES = ROOT / "bot" / "sample_data"
USER = 1001
COMMANDS = ["/status", "/positions", "/trades 10", "/orders 10", "/health", "/pnl all",
            "/chart BTC/USDT", "/backtest ETH/USDT ema_cross 1h 60"]  # fmt: skip


async def measure(rounds: int) -> dict[str, list[float]]:
    settings = Settings.model_validate({
        "data_dir": tempfile.mkdtemp(prefix="chat-bench-"),
        "market_data": {"source": "replay", "replay_files": {
            pair: SAMPLES / f"{pair.replace('/', '_')}-1h.csv.gz"
            for pair in ("BTC/USDT", "ETH/USDT")}},
        "pairs": [{"pair": "BTC/USDT", "capital_share": 0.5}],
    })  # fmt: skip
    emulator = TelegramEmulator()
    timings: dict[str, list[float]] = {command: [] for command in COMMANDS}
    async with running(emulator) as base, open_database(settings.database_path) as db:
        replay = load_replay(settings)
        trading = await assemble_replay(db, settings, replay)
        for _ in range(500):
            await trading.driver.step()
        cockpit = build_cockpit(db, Venue("paper", "replay", "USDT"), trading.service,
                                trading.engine, trading.control, ReplayHistory(replay.source),
                                Jobs(trading.clock), trading.clock)  # fmt: skip
        frontend = TelegramFrontend(token=emulator.token, api_base_url=base,
                                    users={USER: "admin"}, cockpit=cockpit,
                                    outbox=trading.outbox, alerts=SqliteAlertRepository(db),
                                    clock=trading.clock, poll_timeout=10)  # fmt: skip
        frontend.start()
        await frontend.running.wait()
        try:
            for _ in range(rounds):
                for command in COMMANDS:
                    before = len(emulator.to(USER))
                    started = time.perf_counter()
                    emulator.say(USER, command)
                    reply = await emulator.reply(USER, after=before, within=30)
                    if command.startswith("/backtest"):  # progress first, then the chart
                        while reply.photo is None:
                            before += 1
                            reply = await emulator.reply(USER, after=before, within=30)
                    timings[command].append(time.perf_counter() - started)
        finally:
            await frontend.stop()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    timings = asyncio.run(measure(args.rounds))
    print(f"{args.rounds} rounds; seconds from the user's message to the bot's reply\n")
    print(f"{'command':<36} {'median':>7} {'p95':>7} {'max':>7}  within 1 s")
    for command, seconds in timings.items():
        ordered = sorted(seconds)
        p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
        print(f"{command:<36} {statistics.median(seconds):>7.3f} {p95:>7.3f} "
              f"{max(seconds):>7.3f}  {'yes' if max(seconds) < 1 else 'NO'}")  # fmt: skip


if __name__ == "__main__":
    main()
