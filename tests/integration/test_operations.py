"""`pairpilot run` as an operator deploys it: Telegram and /metrics on, JSON logs, a secrets
file, and a SIGTERM that must end it within 5 s with the goodbye delivered."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp

from tests.chat_rig import ADMIN
from tests.telegram_emulator import TelegramEmulator, running

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "bot" / "sample_data" / "BTC_USDT-1h.csv.gz"
SHUTDOWN_LIMIT = 5.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def metric(text: str, name: str) -> float:
    """The value of the unlabelled sample ``name`` in a Prometheus text exposition."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exposed")


async def test_sigterm_with_telegram_and_metrics_on_stops_within_5_s(tmp_path: Path) -> None:
    emulator = TelegramEmulator()
    port = free_port()
    async with running(emulator) as base:
        config = tmp_path / "pairpilot.toml"
        config.write_text(
            f'data_dir = "state"\n[market_data]\nsource = "replay"\nreplay_speed = 360000\n'
            f'replay_files = {{ "BTC/USDT" = "{SAMPLE}" }}\n'
            f"[metrics]\nport = {port}\n"
            f'[telegram]\napi_base_url = "{base}"\n'
            f'[[telegram.users]]\nid = {ADMIN}\nrole = "admin"\n'
            '[[pairs]]\npair = "BTC/USDT"\ncapital_share = 1.0\n',
            encoding="utf-8",
        )
        secrets = tmp_path / "secrets.env"
        secrets.write_text(f"PAIRPILOT_TELEGRAM_TOKEN={emulator.token}\n", encoding="utf-8")
        secrets.chmod(0o644)  # readable by everyone: warned about
        environment = {k: v for k, v in os.environ.items() if not k.startswith("PAIRPILOT_")}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "--log-format", "json", "run",
            "--config", str(config), "--secrets", str(secrets),
            cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**environment, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        try:
            exposition = await scrape_until_trading(process, port)
        except BaseException:
            process.kill()
            raise
        assert metric(exposition, "pairpilot_equity") > 0
        assert metric(exposition, "pairpilot_ticks_total") > 0
        assert "pairpilot_tick_seconds_bucket" in exposition
        assert "pairpilot_outbox_backlog" in exposition
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        out, err = await asyncio.wait_for(process.communicate(), timeout=30)
        took = time.monotonic() - signalled
        print(f"SIGTERM to exit with Telegram and metrics on: {took:.2f} s")
        assert process.returncode == 0, err.decode()[-2000:]
        assert took < SHUTDOWN_LIMIT, f"took {took:.2f} s to stop"
        texts = [message.text for message in emulator.to(ADMIN)]
        assert any("pairpilot started" in text for text in texts)
        assert texts[-1] == "pairpilot stopped"  # flushed before polling stopped
    lines = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    assert len(lines) == len(err.decode().splitlines())  # every line is one JSON object
    warnings = [line for line in lines if "readable by" in line["message"]]
    assert warnings
    assert "chmod 600" in warnings[0]["message"]
    assert warnings[0]["level"] == "WARNING"
    decisions = [line for line in lines if line.get("event") == "decision"]
    actions = {line["action"] for line in decisions}
    assert {"enter", "exit", "hold"} <= actions
    assert all(line["pair"] == "BTC/USDT" and line["reason"] for line in decisions)
    everything = out.decode() + err.decode()
    assert emulator.token not in everything  # the token came from the file: still masked


async def scrape_until_trading(process: asyncio.subprocess.Process, port: int) -> str:
    """/metrics once the service has filled an entry and an exit."""
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert process.returncode is None, "the service ended early"
            try:
                async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                    text = await response.text()
                if metric(text, 'pairpilot_orders_total{status="filled"}') >= 2:  # in and out
                    return text
            except (aiohttp.ClientError, AssertionError):
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("the service never reported two filled orders on /metrics")
