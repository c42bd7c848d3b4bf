"""An admin's /halt while a stranger floods a group: is the kill path as fast as on a quiet day?

    .venv/bin/python -m bench.chat_flood [--rounds 30] [--flood 300]

The real PTB client long-polls the local Bot API emulator (which holds a group to about 20
messages a minute and answers 429 past it, as Telegram does) in front of the bundled replay.
Each round the admin sends /halt in their private chat and the figure is from sending it to
the answer reaching the emulator; the halt is lifted between rounds. First on a quiet chat,
then with ``--flood`` /whoami from a stranger in one group (with ``--groups`` also one each
from as many strangers in their own groups), sent just before every /halt. Last, how long
shutdown takes with replies to strangers still pending (each reply slowed to 2 s).

Target (issue 20): /halt under the flood within the normal round trip, p50 <= 50 ms and
p95 <= 150 ms; shutdown under 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from tests.rigs.chat_rig import ADMIN, STRANGER, chat_stack

GROUP = -500


async def measure(
    rounds: int, flood: int, distinct: bool = False
) -> tuple[list[float], list[float], float]:
    quiet, flooded = [], []
    with tempfile.TemporaryDirectory(prefix="chat-flood-") as folder:
        async with chat_stack(Path(folder)) as chat:
            guard, clock = chat.trading.engine.guard, chat.trading.clock
            for loud in (False, True) * rounds:
                await guard.resume(1000.0, clock.now())
                if loud:
                    for index in range(flood):
                        chat.emulator.say(STRANGER, "/whoami", chat_id=GROUP)
                        if distinct:
                            chat.emulator.say(10_000 + index, "/whoami", chat_id=-10_000 - index)
                    await asyncio.sleep(0.05)  # the flood is fetched first
                before = len(chat.emulator.to(ADMIN))
                started = time.perf_counter()
                chat.emulator.say(ADMIN, "/halt")
                reply = await chat.emulator.reply(ADMIN, after=before, within=60)
                assert "halted" in reply.text, reply.text
                (flooded if loud else quiet).append(reply.at - started)
                await asyncio.sleep(0.2)
            chat.emulator.send_delay = 2.0
            for index in range(flood):
                chat.emulator.say(20_000 + index, "/whoami", chat_id=-20_000 - index)
            await asyncio.sleep(0.3)
            started = time.perf_counter()
            await chat.frontend.stop()
            shutdown = time.perf_counter() - started
    return quiet, flooded, shutdown


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, -(-len(ordered) * 95 // 100) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--flood", type=int, default=300)
    parser.add_argument(
        "--groups",
        action="store_true",
        help="also one /whoami from each of --flood strangers in their own group",
    )
    args = parser.parse_args()
    quiet, flooded, shutdown = asyncio.run(measure(args.rounds, args.flood, args.groups))
    print(f"{args.rounds} rounds; ms from the admin's /halt to its answer\n")
    print(f"{'chat':<44} {'p50':>7} {'p95':>7} {'max':>7}")
    for name, values in (
        ("quiet", quiet),
        (f"{args.flood * (2 if args.groups else 1)} strangers' /whoami per round", flooded),
    ):
        print(
            f"{name:<44} {statistics.median(values) * 1000:>7.1f} "
            f"{_p95(values) * 1000:>7.1f} {max(values) * 1000:>7.1f}"
        )
    checks = [
        ("/halt under the flood p50 <= 50 ms", statistics.median(flooded) * 1000, 50),
        ("/halt under the flood p95 <= 150 ms", _p95(flooded) * 1000, 150),
        ("shutdown with strangers' replies pending <= 1000 ms", shutdown * 1000, 1000),
    ]
    print()
    for name, value, limit in checks:
        print(f"{name:<56} {value:>8.1f} ms  {'met' if value <= limit else 'MISSED'}")


if __name__ == "__main__":
    main()
