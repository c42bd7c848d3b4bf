"""/reload (issue 18): an admin picks up new, changed and removed strategy files without a
restart; a running pair keeps the code it started with and /pairs says when a newer version
waits. The real PTB client on the Telegram emulator, the real replay service, a real SQLite
file and real strategy files in a folder."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from bot.app.config import load_settings
from bot.app.strategy_loading import load_strategies
from bot.chat.reload_desk import ReloadOutcome
from bot.core.ports import CandleSource
from bot.research.receipts import source_hash
from strategies import strategy_registry
from tests.integration.test_user_strategies import MINE, SAMPLE
from tests.rigs.chat_rig import ADMIN, TRADER, Chat, chat_stack

ETH = SAMPLE.with_name("ETH_USDT-1h.csv.gz")

# A strategy that says which version of its file decided, and for which tag (a parameter: the
# pair's), by a line in a file: what ran is read from behaviour, not from the registry.
MARKER = """
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest

from strategies.base import ParamSpec, Strategy, hold_everywhere

VERSION = "{version}"{pause}


class Marker(Strategy):
    name = "{name}"
    description = "holds; writes which version decided"
    param_specs: ClassVar[tuple[ParamSpec, ...]] = (ParamSpec("tag", int, 0, 0, 99),)

    @property
    def warmup(self) -> int:
        return 2

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        with Path({marks!r}).open("a", encoding="utf-8") as marks:
            marks.write(f"{{VERSION}} tag={{self.params['tag']}}\\n")
        return hold_everywhere(candles)
"""


def marker(marks: Path, version: str, name: str = "marker", pause: float = 0.0) -> str:
    """``pause``: seconds the file takes to import (a slow user module)."""
    slow = f"\nimport time\ntime.sleep({pause})" if pause else ""
    return MARKER.format(version=version, name=name, marks=str(marks), pause=slow)


def config(tmp_path: Path, pairs: str, top: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'{top}data_dir = "data"\n[market_data]\nsource = "replay"\n'
        f'[market_data.replay_files]\n"BTC/USDT" = "{SAMPLE}"\n"ETH/USDT" = "{ETH}"\n{pairs}',
        encoding="utf-8",
    )
    return path


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


async def test_reload_reports_what_changed_and_running_pairs_keep_their_code(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "user_strategies"
    folder.mkdir()
    (folder / "mine.py").write_text(MINE.format(name="mine"), encoding="utf-8")
    (folder / "old.py").write_text(MINE.format(name="old"), encoding="utf-8")
    (folder / "gone.py").write_text(MINE.format(name="gone"), encoding="utf-8")
    (folder / "kept.py").write_text(MINE.format(name="kept"), encoding="utf-8")
    settings = load_settings(
        config(
            tmp_path,
            '[[pairs]]\npair = "BTC/USDT"\nstrategy = "mine"\ncapital_share = 0.4\n'
            '[[pairs]]\npair = "ETH/USDT"\nstrategy = "old"\ncapital_share = 0.4\n',
        ),
        None,
    )
    started_with = source_hash(strategy_registry()["mine"])[:8]
    async with chat_stack(tmp_path, settings) as chat:
        pairs = await chat.ask(ADMIN, "/pairs")
        assert "waiting" not in pairs
        assert "gone" not in pairs
        (folder / "mine.py").write_text(
            MINE.format(name="mine").replace("length=int", "length=1 + int"), encoding="utf-8"
        )
        (folder / "old.py").write_text("import pandas\n\nx = = 1\n", encoding="utf-8")
        (folder / "gone.py").unlink()
        (folder / "fresh.py").write_text(MINE.format(name="fresh"), encoding="utf-8")
        desk = chat.frontend_cockpit.reload
        assert desk is not None
        heard: list[ReloadOutcome] = []

        async def after(outcome: ReloadOutcome) -> None:  # the live gate's hook point
            heard.append(outcome)

        desk.after_reload.append(after)

        reply = await chat.ask(ADMIN, "/reload")

        lines = reply.splitlines()
        assert lines[0] == (
            "Strategies reloaded: 1 new, 1 changed, 2 removed, 8 unchanged, 1 not loaded."
        )  # the seven built-ins and kept unchanged
        assert "new: fresh" in lines
        assert "changed: mine" in lines
        assert "removed: gone, old" in lines
        assert f"not loaded: {folder / 'old.py'}:3: SyntaxError: invalid syntax" in lines
        assert (
            "running pairs keep the code they started with: BTC/USDT (mine), ETH/USDT (old)"
            in lines
        )
        assert "fresh" in strategy_registry()
        assert [(o.changed, o.registry) for o in heard] == [(("mine",), strategy_registry())]
        assert "gone" not in strategy_registry()

        pairs = (await chat.ask(ADMIN, "/pairs")).splitlines()
        assert pairs[1] == (
            f"  runs {started_with} · newer version waiting (/stoppair then /startpair to take it)"
        )
        assert pairs[3] == (
            "  its strategy no longer loads (/reload says why); it runs the code it started with"
        )
        assert max(len(line) for line in pairs[1::2]) <= 90  # phone-short

        (alert,) = [a for a in await chat.alerts.pending() if a.kind == "strategy"]
        assert alert.text == (
            f"/reload: ETH/USDT runs strategy old, which is not loaded any more "
            f"({folder / 'old.py'}:3: SyntaxError: invalid syntax); the pair keeps running "
            "the code it started with until /stoppair (a restart would not start it)"
        )
        (entry,) = [e for e in await chat.audit.latest(20) if e.command == "reload"]
        assert entry.actor == str(ADMIN)
        assert entry.result == f"ok: {lines[0]}"

        # an unchanged folder: nothing new, nothing changed, no second alert
        again = (await chat.ask(ADMIN, "/reload")).splitlines()
        assert again[0] == "Strategies reloaded: 10 unchanged, 1 not loaded."
        assert not [line for line in again if line.startswith(("new:", "changed:", "removed:"))]
        assert len([a for a in await chat.alerts.pending() if a.kind == "strategy"]) == 1
        (folder / "old.py").unlink()
        pairs = (await chat.ask(ADMIN, "/pairs")).splitlines()
        assert pairs[3] == "  its strategy file is gone; it runs the code it started with"


async def test_reload_while_a_tick_runs(tmp_path: Path) -> None:
    """A tick in progress holds the strategy object it took for its pair; a /reload
    meanwhile answers without waiting for it, that tick and the pair's next decide on the old
    code, a pair started after the reload, a backtest and the registry's take the new code."""
    marks = tmp_path / "marks.txt"
    folder = tmp_path / "user_strategies"
    folder.mkdir()
    (folder / "marker.py").write_text(marker(marks, "v1"), encoding="utf-8")
    settings = load_settings(
        config(
            tmp_path,
            '[[pairs]]\npair = "BTC/USDT"\nstrategy = "marker"\nparams = { tag = 1 }\n'
            "capital_share = 0.4\n",
        ),
        None,
    )
    async with chat_stack(tmp_path, settings) as chat:
        service = chat.trading.service
        await chat.trading.driver.step()
        assert lines_of(marks) == ["v1 tag=1"]
        gate = HeldCandles(service)
        tick = asyncio.create_task(chat.trading.driver.step())
        await asyncio.wait_for(gate.entered.wait(), 10)  # the tick runs, its pair's object taken
        (folder / "marker.py").write_text(marker(marks, "v2 (new)"), encoding="utf-8")

        reply = await asyncio.wait_for(chat.ask(ADMIN, "/reload"), 10)

        assert "changed: marker" in reply.splitlines()
        assert not tick.done()  # answered during the tick
        gate.release.set()
        await asyncio.wait_for(tick, 10)
        assert lines_of(marks) == ["v1 tag=1"] * 2  # the tick finished on the old code
        await chat.trading.driver.step()
        assert lines_of(marks) == ["v1 tag=1"] * 3  # and the pair's next tick too

        started = await chat.ask(TRADER, "/startpair ETH/USDT marker 1h tag=2 share=0.2")
        assert "ETH/USDT" in started
        await chat.trading.driver.step()
        assert sorted(lines_of(marks)[3:]) == ["v1 tag=1", "v2 (new) tag=2"]
        pairs = (await chat.ask(ADMIN, "/pairs")).splitlines()
        assert pairs[1].endswith("newer version waiting (/stoppair then /startpair to take it)")
        assert pairs[2].startswith("ETH/USDT running: marker")
        assert len(pairs) == 3  # the pair started after the reload runs the newest code

        before = len(lines_of(marks))
        await research(chat, TRADER, "/backtest BTC/USDT marker 1h 10 tag=3")
        assert lines_of(marks)[before:] == ["v2 (new) tag=3"]


async def test_one_reload_at_a_time_off_the_event_loop(tmp_path: Path) -> None:
    """Importing a slow file happens in a thread: the chat answers meanwhile, and a second
    /reload sent meanwhile (from another chat) is refused clearly, changing nothing."""
    marks = tmp_path / "marks.txt"
    folder = tmp_path / "user_strategies"
    folder.mkdir()
    settings = load_settings(config(tmp_path, ""), None)
    async with chat_stack(tmp_path, settings) as chat:
        (folder / "slow.py").write_text(marker(marks, "v1", "slow", pause=2.5), encoding="utf-8")
        first = len(chat.emulator.to(ADMIN))
        chat.emulator.say(ADMIN, "/reload")
        await asyncio.sleep(0.3)
        assert "slow" not in strategy_registry()
        second = await chat.ask(ADMIN, "/reload", chat_id=-1001)
        assert second == "⚠️ a reload is running (/reload); send yours again when it has finished"
        assert await chat.ask(ADMIN, "/pairs", chat_id=-1002) == "No pairs running."
        assert "slow" not in strategy_registry()  # both answered while the first imports
        reply = (await chat.reply(ADMIN, after=first)).text
        assert "new: slow" in reply.splitlines()
        assert "slow" in strategy_registry()


async def test_reload_refuses_bad_input_and_a_folder_gone_keeps_the_old_registry(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "user_strategies"
    folder.mkdir()
    (folder / "mine.py").write_text(MINE.format(name="mine"), encoding="utf-8")
    settings = load_settings(config(tmp_path, "", 'strategies_dir = "user_strategies"\n'), None)
    before = strategy_registry()
    async with chat_stack(tmp_path, settings) as chat:
        (folder / "fresh.py").write_text(MINE.format(name="fresh"), encoding="utf-8")
        assert await chat.ask(TRADER, "/reload") == "/reload needs the admin role; you are trader."
        assert await chat.ask(ADMIN, "/reload now") == "⚠️ usage: /reload"
        assert strategy_registry() is before
        (folder / "fresh.py").write_text(MINE.format(name="mine"), encoding="utf-8")
        lines = (await chat.ask(ADMIN, "/reload")).splitlines()
        assert "removed: mine" in lines  # a name taken twice: both refused, as at start-up
        for file, other in (("fresh.py", "mine.py"), ("mine.py", "fresh.py")):
            assert (
                f"not loaded: {folder / file}: strategy name 'mine' is taken twice: by file "
                f"{folder / file} and by file {folder / other}; rename one (this one is not "
                "loaded)"
            ) in lines
        assert "mine" not in strategy_registry()
        before = strategy_registry()
        (folder / "fresh.py").unlink()
        (folder / "mine.py").unlink()
        folder.rmdir()
        reply = await chat.ask(ADMIN, "/reload")
        assert reply == (
            f"⚠️ Nothing reloaded: strategies_dir {folder} does not exist. The strategies "
            "loaded before stay."
        )
        assert strategy_registry() is before


def test_an_edit_within_the_same_second_keeping_the_size_is_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python trusts a cached .pyc while the file's mtime (whole seconds) and size match: a
    reload must compile the file as it is now."""
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # as a service runs (tests do not)
    marks = tmp_path / "marks.txt"
    folder = tmp_path / "user_strategies"
    folder.mkdir()
    file = folder / "marker.py"
    candles = pd.DataFrame({"close": [1.0, 2.0, 3.0]})
    for version in ("v1", "v2"):
        file.write_text(marker(marks, version), encoding="utf-8")
        os.utime(file, (1_700_000_000, 1_700_000_000))
        loaded = load_strategies(folder, explicit=True)
        loaded.registry.build("marker").compute_signals(candles)
    assert lines_of(marks) == ["v1 tag=0", "v2 tag=0"]


class HeldCandles:
    """The service's candle source (the one its ticks fetch with, bot/trading/asking.py), held
    inside the next tick's first fetch until released."""

    def __init__(self, service: object) -> None:
        asking = service._asking  # type: ignore[attr-defined]
        self._source: CandleSource = asking._source
        asking._source = self
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def closed_candles(
        self, pair: str, now: datetime, limit: int, timeframe: str
    ) -> pd.DataFrame:
        if not self.entered.is_set():
            self.entered.set()
            await self.release.wait()
        return await self._source.closed_candles(pair, now, limit, timeframe)

    def __getattr__(self, name: str) -> Callable[..., object]:
        return getattr(self._source, name)  # type: ignore[no-any-return]


async def test_a_sweep_after_a_reload_runs_the_new_code_on_the_same_dask_workers(
    tmp_path: Path,
) -> None:
    """The workers of a long-lived scheduler loaded the strategies folder for the sweep before
    the reload; the sweep after it decides on the new file, in those same worker processes."""
    from distributed import LocalCluster

    marks = tmp_path / "marks.txt"
    folder = tmp_path / "user_strategies"
    folder.mkdir()
    (folder / "marker.py").write_text(marker(marks, "v1"), encoding="utf-8")
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address
        settings = load_settings(
            config(tmp_path, f'[research]\ndask_scheduler = "{address}"\n'), None
        )
        async with chat_stack(tmp_path, settings) as chat:
            for _ in range(200):  # candles to sweep on
                await chat.trading.driver.step()
            await research(chat, ADMIN, "/sweep BTC/USDT marker 1h 7 tag=1:2:1")
            assert set(lines_of(marks)) == {"v1 tag=1", "v1 tag=2"}
            workers = set(cluster.scheduler.workers)
            (folder / "marker.py").write_text(marker(marks, "v2 (new)"), encoding="utf-8")
            assert "changed: marker" in (await chat.ask(ADMIN, "/reload")).splitlines()
            before = len(lines_of(marks))
            await research(chat, ADMIN, "/sweep BTC/USDT marker 1h 7 tag=3:4:1")
            assert set(lines_of(marks)[before:]) == {"v2 (new) tag=3", "v2 (new) tag=4"}
            assert set(cluster.scheduler.workers) == workers  # the same worker process


async def research(chat: Chat, user: int, command: str) -> None:
    """Send a /backtest or /sweep and wait for its result (a chart, or a sweep's lines), past
    its progress message."""
    before = len(chat.emulator.to(user))
    chat.emulator.say(user, command)
    for _ in range(600):
        if any(m.photo or "results" in m.text for m in chat.emulator.to(user)[before:]):
            return
        await asyncio.sleep(0.05)
    raise AssertionError([m.text for m in chat.emulator.to(user)[before:]])
