"""scripts/warm-numba.sh, which scripts/bootstrap.sh runs on install: after it, backtests load
the compiled kernel from numba's cache instead of compiling it (the first backtest paid about
14 s for that: bench/RESULTS.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "bot" / "sample_data"
# A portfolio and a single pair unlike the warm-up's (other pairs' shares, stops on): the
# compiled code depends on the arguments' types only, so the cache serves these too.
PROBE = """
import contextlib, io, json, sys
from bot.cli.main import main
from bot.research import kernel
from bot.research.kernel_book import union_clock
from bot.risk.rules import volatility_scales
for argv in (["backtest", "--config", sys.argv[1], "--json"],
             ["backtest", "--data", sys.argv[2], "--config", sys.argv[1], "--param",
              "stop_loss=0.02", "--json"]):
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(argv) == 0
print(json.dumps({
    name: {"hits": sum(f.stats.cache_hits.values()), "misses": sum(f.stats.cache_misses.values())}
    for name, f in (("run", kernel.run), ("union_clock", union_clock),
                    ("volatility_scales", volatility_scales))
}))
"""


def test_after_the_warm_up_backtests_compile_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    subprocess.run([ROOT / "scripts" / "warm-numba.sh"], env=env, check=True, timeout=600)
    config = tmp_path / "portfolio.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        '[market_data]\nsource = "replay"\n[market_data.replay_files]\n'
        f'"ETH/USDT" = "{SAMPLES / "ETH_USDT-1h.csv.gz"}"\n'
        f'"BTC/USDT" = "{SAMPLES / "BTC_USDT-1h.csv.gz"}"\n'
        '[[pairs]]\npair = "ETH/USDT"\nstrategy = "ema_cross"\ntimeframe = "1h"\n'
        "capital_share = 0.7\nparams = { stop_loss = 0.01, take_profit = 0.02 }\n"
        '[[pairs]]\npair = "BTC/USDT"\nstrategy = "ema_cross"\ntimeframe = "1h"\n'
        "capital_share = 0.3\n",
        encoding="utf-8",
    )
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, str(config), str(SAMPLES / "BTC_USDT-1h.csv.gz")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
        cwd=ROOT,
    )
    stats = json.loads(probe.stdout.splitlines()[-1])
    assert all(s["misses"] == 0 for s in stats.values()), stats
    assert all(s["hits"] > 0 for s in stats.values()), stats
