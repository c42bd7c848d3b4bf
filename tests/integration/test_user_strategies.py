"""User strategies (issue 18): a strategies folder named in the config and installed packages'
``pairpilot.strategies`` entry points, through the real `pairpilot` command and the real
importlib.metadata (a real dist-info on the path, no mocks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.app.config import load_settings
from bot.app.strategy_loading import load_strategies
from bot.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "bot" / "sample_data" / "BTC_USDT-1h.csv.gz"

MINE = """
from typing import ClassVar

import pandas as pd
import pandas_ta as ta

from strategies.base import ParamSpec, Strategy, crossings, hold_everywhere


class Mine(Strategy):
    name = "{name}"
    description = "close across its SMA"
    param_specs: ClassVar[tuple[ParamSpec, ...]] = (ParamSpec("length", int, 24, 2, 300),)

    @property
    def warmup(self) -> int:
        return int(self.params["length"]) + 1

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        sma = ta.sma(candles["close"], length=int(self.params["length"]))
        return hold_everywhere(candles) if sma is None else crossings(candles["close"], sma)
"""


def pairpilot(*args: str, cwd: Path, path: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it; ``path``: a folder of installed packages added to it."""
    pythonpath = os.pathsep.join(str(p) for p in (path, ROOT) if p is not None)
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PYTHONPATH": pythonpath},
        check=False,
    )


def config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'data_dir = "data"\n{extra}', encoding="utf-8")
    return path


def installed(site: Path, package: str, source: str, points: str) -> Path:
    """A real installed distribution in ``site``: the package and its dist-info, with
    ``points`` as its entry_points.txt, as pip would leave them."""
    (site / package).mkdir(parents=True)
    (site / package / "__init__.py").write_text(source, encoding="utf-8")
    info = site / f"{package}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {package.replace('_', '-')}\nVersion: 1.0\n",
        encoding="utf-8",
    )
    (info / "entry_points.txt").write_text(points, encoding="utf-8")
    return site


def test_a_folder_strategy_backtests_through_the_cli(tmp_path: Path) -> None:
    folder = tmp_path / "my_strategies"
    folder.mkdir()
    (folder / "mine.py").write_text(MINE.format(name="mine"), encoding="utf-8")
    cfg = config(tmp_path, 'strategies_dir = "my_strategies"\n')
    run = pairpilot(
        "backtest", "--config", str(cfg), "--strategy", "mine", "--param", "length=30",
        "--data", str(SAMPLE), "--json", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    document = json.loads(run.stdout)
    assert document["metrics"]["trades"] > 0
    again = pairpilot(
        "backtest", "--config", str(cfg), "--rerun", document["receipt"], "--json", cwd=tmp_path
    )  # the receipt's source hash is the user file's
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["rerun"]["matched"] is True
    out = pairpilot(
        "backtest", "--config", str(cfg), "--strategy", "mine", "--param", "length=1",
        "--data", str(SAMPLE), cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 2
    assert "parameter length=1 is out of bounds: expected 2 <= length <= 300" in out.stderr


def test_a_sweep_on_dask_workers_knows_a_folder_strategy(tmp_path: Path) -> None:
    """The workers are other processes: the config's strategies reach them too."""
    (tmp_path / "user_strategies").mkdir()
    (tmp_path / "user_strategies" / "mine.py").write_text(MINE.format(name="mine"))
    cfg = config(tmp_path)
    run = pairpilot(
        "sweep", "--config", str(cfg), "--strategy", "mine", "--param", "length=10,40",
        "--data", str(SAMPLE), "--workers", "2", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "2 results stored" in run.stdout
    assert "length=40" in run.stdout


def test_an_entry_point_strategy_loads_lists_and_backtests(tmp_path: Path) -> None:
    site = installed(
        tmp_path / "site",
        "ep_strategies",
        MINE.format(name="from_package"),
        "[pairpilot.strategies]\nfrom_package = ep_strategies:Mine\n",
    )
    cfg = config(tmp_path)
    listing = pairpilot("strategy", "list", "--config", str(cfg), cwd=tmp_path, path=site)
    assert listing.returncode == 0, listing.stderr
    assert (
        "from_package  (entry point from_package = ep_strategies:Mine "
        "(distribution ep-strategies 1.0))" in listing.stdout
    )
    assert "length         int   default 24       [2 .. 300]" in listing.stdout
    assert "ema_cross  (built-in strategies.ema_cross)" in listing.stdout
    run = pairpilot(
        "backtest", "--config", str(cfg), "--strategy", "from_package", "--data", str(SAMPLE),
        "--json", cwd=tmp_path, path=site,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["metrics"]["trades"] > 0


def test_a_broken_file_is_reported_with_its_line_and_the_rest_loads(tmp_path: Path) -> None:
    folder = tmp_path / "user_strategies"
    folder.mkdir()
    (folder / "good.py").write_text(MINE.format(name="good"), encoding="utf-8")
    (folder / "derived.py").write_text(  # a private base and an imported built-in: not counted
        "from strategies.ema_cross import EmaCross\n"
        "class _Slower(EmaCross):\n    exit_defaults = {'stop_loss': 0.02}\n"
        "class Derived(_Slower):\n    name = 'derived'\n"
        "Alias = Derived\n",
        encoding="utf-8",
    )
    (folder / "syntax.py").write_text("x = 1\n\ndef broken(:\n", encoding="utf-8")
    (folder / "missing.py").write_text('"""doc"""\nimport not_a_module_anywhere\n')
    (folder / "raises.py").write_text("a = 1\nb = 2\nc = 3\nraise RuntimeError('at import')\n")
    (folder / "nothing.py").write_text("VALUE = 1\n", encoding="utf-8")
    (folder / "undescribed.py").write_text(
        MINE.format(name="undescribed").replace('    description = "close across its SMA"\n', "")
    )
    (folder / "_helper.py").write_text("raise RuntimeError('not a strategy file')\n")
    loaded = load_strategies(folder, explicit=True)
    assert {"good", "derived", "ema_cross"} <= set(loaded.registry)
    assert loaded.registry.origin("ema_cross").kind == "built-in"
    assert loaded.registry.build("derived").params["stop_loss"] == 0.02
    problems = {problem.where: problem.message for problem in loaded.problems}
    assert set(problems) == {
        f"{folder / 'syntax.py'}:3",
        f"{folder / 'missing.py'}:2",
        f"{folder / 'raises.py'}:4",
        str(folder / "nothing.py"),
        str(folder / "undescribed.py"),
    }
    assert problems[str(folder / "undescribed.py")].startswith(
        "strategy 'undescribed': expected a description (text) and param_specs"
    )
    assert problems[f"{folder / 'missing.py'}:2"] == (
        "ModuleNotFoundError: No module named 'not_a_module_anywhere'"
    )
    assert problems[f"{folder / 'raises.py'}:4"] == "RuntimeError: at import"
    assert problems[str(folder / "nothing.py")].startswith("defines no strategy")
    cfg = config(tmp_path)  # the default folder, beside the config
    run = pairpilot(
        "backtest", "--config", str(cfg), "--strategy", "good", "--data", str(SAMPLE),
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert f"strategy not loaded: {folder / 'raises.py'}:4: RuntimeError: at import" in run.stderr
    assert f"strategy not loaded: {folder / 'syntax.py'}:3: SyntaxError" in run.stderr


def test_a_taken_name_is_refused_naming_both_places(tmp_path: Path) -> None:
    folder = tmp_path / "user_strategies"
    folder.mkdir()
    (folder / "mine_a.py").write_text(MINE.format(name="twin"), encoding="utf-8")
    (folder / "mine_b.py").write_text(MINE.format(name="twin"), encoding="utf-8")
    (folder / "shadow.py").write_text(MINE.format(name="ema_cross"), encoding="utf-8")
    loaded = load_strategies(folder, explicit=False)
    assert "twin" not in loaded.registry  # neither: which one trades must not be a file order
    assert loaded.registry.origin("ema_cross").kind == "built-in"
    messages = [str(problem) for problem in loaded.problems]
    assert any(
        f"by file {folder / 'mine_a.py'} and by file {folder / 'mine_b.py'}" in m for m in messages
    )
    assert any(
        f"by file {folder / 'mine_b.py'} and by file {folder / 'mine_a.py'}" in m for m in messages
    )
    assert any(
        f"by file {folder / 'shadow.py'} and by built-in strategies.ema_cross" in m
        for m in messages
    )


def test_an_entry_point_and_a_file_of_one_name_are_both_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = installed(
        tmp_path / "site",
        "ep_clash",
        MINE.format(name="clash"),
        "[pairpilot.strategies]\nclash = ep_clash:Mine\n",
    )
    monkeypatch.syspath_prepend(str(site))  # importlib.metadata reads sys.path as it is
    folder = tmp_path / "user_strategies"
    folder.mkdir()
    (folder / "clash.py").write_text(MINE.format(name="clash"), encoding="utf-8")
    try:
        loaded = load_strategies(folder, explicit=False)
    finally:
        sys.modules.pop("ep_clash", None)
    assert "clash" not in loaded.registry
    assert any(
        "entry point clash = ep_clash:Mine (distribution ep-clash 1.0)" in str(problem)
        and str(folder / "clash.py") in str(problem)
        for problem in loaded.problems
    )


def test_a_missing_folder_named_in_the_config_is_an_error(tmp_path: Path) -> None:
    cfg = config(tmp_path, 'strategies_dir = "nowhere"\n')
    with pytest.raises(ConfigError, match=f"strategies_dir {tmp_path / 'nowhere'} does not exist"):
        load_settings(cfg, None)
    settings = load_settings(config(tmp_path), None)  # the default folder is absent: fine
    assert settings.strategies is not None
    assert settings.strategies.folder is None
    assert settings.strategies.problems == ()


def test_health_backup_and_restore_run_no_user_code(tmp_path: Path) -> None:
    """They read data_dir only: a strategy file's import never runs in a health check."""
    folder = tmp_path / "user_strategies"
    folder.mkdir()
    marker = tmp_path / "imported"
    (folder / "loud.py").write_text(f"open({str(marker)!r}, 'w').close()\n", encoding="utf-8")
    cfg = config(tmp_path, '[[pairs]]\npair = "BTC/USDT"\nstrategy = "mine"\ncapital_share = 1\n')
    run = pairpilot("health", "--config", str(cfg), cwd=tmp_path)
    assert "strategy" not in run.stderr
    assert not marker.exists()
    assert load_settings(cfg, None, strategies=False).pairs[0].strategy == "mine"
    with pytest.raises(ConfigError, match="unknown strategy 'mine'"):
        load_settings(cfg, None)
    assert marker.exists()


def test_a_configured_pair_may_trade_a_user_strategy(tmp_path: Path) -> None:
    folder = tmp_path / "user_strategies"
    folder.mkdir()
    pair = '[[pairs]]\npair = "BTC/USDT"\nstrategy = "mine"\nparams = { length = 400 }\n'
    cfg = config(tmp_path, f"{pair}capital_share = 0.5\n")
    with pytest.raises(ConfigError, match="unknown strategy 'mine'"):
        load_settings(cfg, None)
    (folder / "mine.py").write_text(MINE.format(name="mine"), encoding="utf-8")
    with pytest.raises(ConfigError, match="parameter length=400 is out of bounds"):
        load_settings(cfg, None)
    cfg.write_text(cfg.read_text().replace("400", "30"), encoding="utf-8")
    settings = load_settings(cfg, None)
    assert settings.pairs[0].strategy == "mine"
    assert settings.strategies_dir == folder


def test_strategy_new_then_list_then_backtest(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    made = pairpilot("strategy", "new", "my_trend", "--config", str(cfg), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    written = tmp_path / "user_strategies" / "my_trend.py"
    assert f"wrote {written}" in made.stdout
    listing = pairpilot("strategy", "list", "--config", str(cfg), cwd=tmp_path)
    assert f"my_trend  (file {written})" in listing.stdout
    assert "stop_loss      float default 0.05     [0 .. 0.5]" in listing.stdout
    run = pairpilot(
        "backtest", "--config", str(cfg), "--strategy", "my_trend", "--data", str(SAMPLE),
        "--json", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["metrics"]["trades"] > 0
    before = written.read_text(encoding="utf-8")
    for name, error in (
        ("my_trend", f"strategy name 'my_trend' is taken by file {written}; pick another"),
        ("ema_cross", "strategy name 'ema_cross' is taken by built-in strategies.ema_cross"),
        ("My-Trend", "strategy name 'My-Trend': expected lower-case letters"),
    ):
        refused = pairpilot("strategy", "new", name, "--config", str(cfg), cwd=tmp_path)
        assert refused.returncode == 2
        assert error in refused.stderr
    (written.parent / "notes.py").write_text(MINE.format(name="noted"), encoding="utf-8")
    kept = pairpilot("strategy", "new", "notes", "--config", str(cfg), cwd=tmp_path)
    assert kept.returncode == 2
    assert f"{written.parent / 'notes.py'} exists; not overwritten" in kept.stderr
    assert written.read_text(encoding="utf-8") == before
    assert (written.parent / "notes.py").read_text(encoding="utf-8") == MINE.format(name="noted")
    assert sorted(p.name for p in written.parent.iterdir()) == ["my_trend.py", "notes.py"]
