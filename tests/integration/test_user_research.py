"""Research on user strategies (issue 18): `pairpilot backtest` (its receipt and `--rerun`),
`pairpilot sweep` on Dask workers and its walk-forward, with tests/strategy_fixtures.py's
``UserTrend`` loaded from a strategies folder and from an installed package's entry point
(tests/rigs/user_loads.py), through the real `pairpilot` command and a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.integration.test_user_strategies import SAMPLE, config, pairpilot
from tests.rigs.user_loads import NAME, PACKAGE, install_package, write_folder


def user_setup(how: str, tmp_path: Path) -> tuple[Path, Path | None, Path]:
    """The config, the site to put on the path (an entry point's), and the user's source file
    (what a trader edits)."""
    if how == "folder":
        folder = write_folder(tmp_path / "user_strategies")
        return config(tmp_path), None, folder / f"{NAME}.py"
    site = install_package(tmp_path / "site")
    return config(tmp_path), site, site / PACKAGE / "__init__.py"


def rows(cfg: Path, table: str) -> int:
    path = cfg.parent / "data" / "pairpilot.sqlite"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as connection:
        return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_a_user_backtests_receipt_reruns_and_refuses_once_the_file_is_edited(
    tmp_path: Path,
) -> None:
    """The folder's file. An entry point's backtest: test_user_strategies.py; its receipt, rerun
    and the refusal naming its package's file: test_user_chat_research.py (/backtest, /rerun;
    the receipt code is one for the chat and the command)."""
    cfg, site, source = user_setup("folder", tmp_path)
    run = pairpilot(
        "backtest", "--config", str(cfg), "--strategy", NAME, "--param", "length=20",
        "--data", str(SAMPLE), "--json", cwd=tmp_path, path=site,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    document = json.loads(run.stdout)
    assert document["metrics"]["trades"] > 0
    receipt = document["receipt"]
    rerun = ("backtest", "--config", str(cfg), "--rerun", receipt, "--json")
    again = pairpilot(*rerun, cwd=tmp_path, path=site)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["rerun"]["matched"] is True
    stored = rows(cfg, "receipts")
    source.write_text(
        source.read_text(encoding="utf-8").replace(
            '"rsi_floor", float, 45.0', '"rsi_floor", float, 40.0'
        ),
        encoding="utf-8",
    )  # a trader tunes a default: the same parameters given now trade otherwise
    refused = pairpilot(*rerun[:-1], cwd=tmp_path, path=site)
    assert refused.returncode == 2, refused.stdout
    assert f"the source of strategy {NAME} changed ({source.name})." in refused.stderr
    assert "Nothing was run." in refused.stderr
    assert rows(cfg, "receipts") == stored


def test_an_entry_point_strategy_sweeps_on_dask_workers_and_walks_forward(tmp_path: Path) -> None:
    """The workers are other processes: the installed package's strategy reaches them (a
    folder's: test_user_strategies.py; both go through the registry's recipe)."""
    cfg, site, _ = user_setup("entry point", tmp_path)
    run = pairpilot(
        "sweep", "--config", str(cfg), "--strategy", NAME, "--param", "length=10,40",
        "--param", "rsi_cap=60,70", "--data", str(SAMPLE), "--workers", "2",
        "--walk-forward", "2", cwd=tmp_path, path=site,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    # 4 combinations, each on 2 folds' in-sample and out-of-sample windows
    assert "sweep 1: 16 results stored" in run.stdout
    assert rows(cfg, "sweep_results") == 16
    assert "walk-forward, sharpe: best in sample -> out of sample" in run.stdout
    for fold in (0, 1):
        assert f"BTC/USDT 1h fold {fold}: length=" in run.stdout
    assert "out of sample, chained" in run.stdout
