"""ServeOptions: what the one serve loop runs besides trading, the same for a replay and an
exchange, checked through the real service (its jobs as /health lists them)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.app.config import Settings, TelegramSettings, TelegramUser, telegram_options
from bot.app.run import ServeOptions
from bot.app.secret_values import Secrets
from bot.app.serve import run_service
from bot.trading.dust import DUST_SETTLE_SECONDS
from handlers.frontend import telegram_factory
from tests.doubles.telegram_emulator import TelegramEmulator, running
from tests.rigs.builders import replay_settings
from tests.rigs.chat_rig import ADMIN


async def planned_jobs(tmp_path: Path, options: ServeOptions | None, wanted: set[str]) -> set[str]:
    """The jobs /health lists on the replay service run with ``options``: asked until it lists
    ``wanted`` (a job is not listed while it runs) or 20 times."""
    emulator = TelegramEmulator()
    async with running(emulator) as base:
        config = replay_settings(tmp_path).model_copy(
            update={
                "telegram": TelegramSettings(
                    api_base_url=base, users=[TelegramUser(id=ADMIN, role="admin")]
                )
            }
        )
        secrets = Secrets(telegram_token=emulator.token)
        stop = asyncio.Event()
        service = asyncio.create_task(
            run_service(
                config,
                secrets,
                stop=stop,
                chat=telegram_factory(telegram_options(config, secrets)),
                options=options,
            )
        )
        seen: set[str] = set()
        try:
            started = await emulator.reply(ADMIN, within=30)
            assert started.text.startswith("pairpilot started: paper mode, replay, BTC/USDT")
            for _ in range(20):
                asked = len(emulator.to(ADMIN))
                emulator.say(ADMIN, "/health")
                health = await reply_with(emulator, "alerts waiting to be delivered", asked)
                seen |= {
                    line.removeprefix("job ")
                    for line in health.splitlines()
                    if line.startswith("job ")
                }
                if wanted <= {job.partition(":")[0] for job in seen}:
                    break
        finally:
            stop.set()
            await asyncio.wait_for(service, timeout=30)
    return seen


async def reply_with(
    emulator: TelegramEmulator, part: str, after: int, within: float = 30.0
) -> str:
    """The first message to the admin beyond the first ``after`` containing ``part`` (trade
    alerts may come before it)."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        for sent in emulator.to(ADMIN)[after:]:
            if part in sent.text:
                return sent.text
        await asyncio.sleep(0.05)
    raise AssertionError(f"no message with {part!r} within {within} s")


def names(jobs: set[str]) -> set[str]:
    return {job.partition(":")[0] for job in jobs}


async def test_a_replay_pushes_no_daily_report_and_settles_no_dust_by_default(
    tmp_path: Path,
) -> None:
    usual = {"replay-step", "alert-drain", "held-alerts", "watch"}
    assert names(await planned_jobs(tmp_path, None, usual)) == usual


async def test_the_daily_report_and_dust_settling_are_options_of_the_one_loop(
    tmp_path: Path,
) -> None:
    """The jobs an exchange's service had to itself run on a replay when the options say so:
    one loop, whatever the candles' source."""
    options = ServeOptions(daily_report="20:00", dust_settle_seconds=DUST_SETTLE_SECONDS)
    every = {"replay-step", "alert-drain", "held-alerts", "watch", "dust-settle", "daily-report"}
    jobs = await planned_jobs(tmp_path, options, every)
    assert names(jobs) == every
    assert "daily-report: next 20:00:00 UTC" in jobs  # at the configured time, UTC here


def test_the_configured_service_keeps_todays_jobs(tmp_path: Path) -> None:
    """On an exchange the daily report at telegram.daily_report and dust settling; a replay,
    whose days are simulated, has neither."""
    replay = replay_settings(tmp_path)
    assert ServeOptions.of(replay) == ServeOptions()
    exchange = Settings.model_validate(
        {
            "data_dir": tmp_path,
            "market_data": {"source": "exchange"},
            "telegram": {"daily_report": "07:30"},
        }
    )
    assert ServeOptions.of(exchange) == ServeOptions(
        daily_report="07:30", dust_settle_seconds=DUST_SETTLE_SECONDS
    )
