"""Sweeps on a real 2-worker LocalCluster, against a plain loop; a worker killed mid-sweep;
bad input through the real command."""

from __future__ import annotations

import collections
import os
import signal
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from distributed import Client, LocalCluster

from bot.domain import SweepRow
from bot.errors import UserInputError
from bot.sweep import Series, SweepSpec, combinations, parse_space, run_on_dask, run_plain
from bot.sweep import walk_forward as folds_of
from tests.integration.test_cli import pairpilot

SPACE = {"fast": [5, 8, 12, 20], "slow": [26, 40, 60]}


@pytest.fixture(scope="module")
def client() -> Client:
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as connected:  # fmt: skip
        yield connected


def by_key(rows: list[SweepRow]) -> dict[tuple, SweepRow]:
    keyed = {row.key: row for row in rows}
    assert len(keyed) == len(rows)  # nothing twice
    return keyed


def test_dask_results_equal_a_plain_loop_with_walk_forward(
    client: Client, btc_candles: pd.DataFrame, eth_candles: pd.DataFrame
) -> None:
    spec = SweepSpec("ema_cross", SPACE, objective="calmar", folds=2)
    series = [Series("BTC/USDT", "1h", btc_candles), Series("ETH/USDT", "1h", eth_candles)]
    received: list[SweepRow] = []
    assert run_on_dask(client, spec, series, received.extend, chunk=5) == 2 * 3  # 12 combos / 5
    plain = by_key(run_plain(spec, series))
    assert by_key(received).keys() == plain.keys()
    assert len(plain) == 2 * 4 * 12  # series x (2 in-sample + 2 out-of-sample windows) x combos
    for key, row in by_key(received).items():
        assert row.score == plain[key].score
        assert row.metrics == plain[key].metrics
    report = folds_of(received, 2)
    assert len(report) == 4  # per series and fold: the best in sample, judged out of sample


def test_a_worker_killed_mid_sweep_loses_and_duplicates_nothing(
    client: Client, btc_candles: pd.DataFrame
) -> None:
    spec = SweepSpec("sma_cross", SPACE, objective="return", max_drawdown=0.05)
    series = [Series("BTC/USDT", "1h", btc_candles)]
    received: list[SweepRow] = []
    killed = []

    def store(rows: list[SweepRow]) -> None:
        received.extend(rows)
        if not killed:  # after the first result: one worker dies with tasks in hand
            victim = sorted(client.scheduler_info()["workers"])[0]
            killed.append(victim)
            pid = client.run(os.getpid, workers=[victim])[victim]
            os.kill(pid, signal.SIGKILL)

    run_on_dask(client, spec, series, store, chunk=1)
    assert killed
    counts = collections.Counter(row.key for row in received)
    assert max(counts.values()) == 1
    assert set(counts) == set(by_key(run_plain(spec, series)))
    assert any(row.score is None for row in received)  # the drawdown constraint bit somewhere


def test_the_space_is_checked_against_the_strategys_bounds() -> None:
    assert parse_space("ema_cross", ["fast=5:15:5", "slow=30,20"]) == {
        "fast": [5, 10, 15], "slow": [20, 30]}  # fmt: skip
    for items, words in [
        ([], "empty"),
        (["fast=1:10:1"], "outside the strategy's bounds"),
        (["speed=5"], "has no parameter 'speed'"),
        (["fast=10:5:1"], "LOW <= HIGH"),
        (["fast=a,b"], "not int values"),
    ]:
        with pytest.raises(UserInputError, match=words):
            parse_space("ema_cross", items)
    with pytest.raises(UserInputError, match="accepts none"):
        combinations(SweepSpec("ema_cross", {"fast": [50], "slow": [20]}))
    drawn = combinations(SweepSpec("ema_cross", SPACE, random_samples=5, seed=9))
    assert len({tuple(c.items()) for c in drawn}) == 5
    assert drawn == combinations(SweepSpec("ema_cross", SPACE, random_samples=5, seed=9))


def test_the_command_stores_results_and_refuses_bad_input_storing_nothing(
    tmp_path: Path, btc_path: Path, client: Client
) -> None:
    data = tmp_path / "BTC_USDT-1h.csv.gz"
    data.write_bytes(btc_path.read_bytes())
    database = tmp_path / "data" / "pairpilot.sqlite"
    for args, words in [
        ([], "the parameter space is empty"),
        (["--param", "fast=1:3:1"], "outside the strategy's bounds"),
        (["--param", "fast=5,8", "--scheduler", "tcp://127.0.0.1:9"], "no Dask scheduler"),
    ]:
        result = pairpilot("sweep", "--data", str(data), *args, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert words in result.stderr
        assert not database.exists() or _sweeps(database) == 0
    good = pairpilot("sweep", "--data", str(data), "--param", "fast=5,8,12", "--param",
                     "slow=26,40", "--scheduler", client.scheduler.address,  # a running cluster
                     "--heatmap", str(tmp_path / "h.png"), cwd=tmp_path)  # fmt: skip
    assert good.returncode == 0, good.stderr
    assert "rank    sharpe" in good.stdout
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM sweep_results").fetchone() == (6,)
        assert db.execute("SELECT finished IS NOT NULL FROM sweeps").fetchall() == [(1,)]


def _sweeps(database: Path) -> int:
    with sqlite3.connect(database) as db:
        return int(db.execute("SELECT count(*) FROM sweeps").fetchone()[0])


def test_the_command_sweeps_stored_candles_of_several_pairs(
    tmp_path: Path, btc_path: Path, client: Client
) -> None:
    eth = btc_path.parent / "ETH_USDT-1h.csv.gz"
    for path in (btc_path, eth):
        imported = pairpilot("data", "import", str(path), cwd=tmp_path)
        assert imported.returncode == 0, imported.stderr
    both = pairpilot("sweep", "--data", str(eth), "--pair", "ETH/USDT", "--param", "fast=5",
                     cwd=tmp_path)  # fmt: skip
    assert both.returncode == 2
    assert "not both" in both.stderr
    result = pairpilot("sweep", "--pair", "BTC/USDT", "--pair", "ETH/USDT", "--timeframe", "1h",
                       "--since", "2025-07-01", "--param", "fast=5,8", "--param", "slow=26",
                       "--scheduler", client.scheduler.address, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "BTC/USDT 1h, by sharpe" in result.stdout
    assert "ETH/USDT 1h, by sharpe" in result.stdout
