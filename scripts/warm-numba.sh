#!/usr/bin/env bash
# Compile the backtest kernel into numba's on-disk cache now, so the first backtest after an
# install does not pay for it (about 14 s on the project's 2-core machine: bench/RESULTS.md).
# Runs the two backtest paths on the bundled sample candles: a portfolio of both sample pairs
# and one pair alone, each with the argument types it compiles for. Their receipts go to a
# database in a temporary directory, removed after: nothing stays but the cache (beside the
# modules, or in $NUMBA_CACHE_DIR). scripts/bootstrap.sh runs it on install;
# run it again after changing compiled code to move the compile out of the next backtest.
set -euo pipefail
cd "$(dirname "$0")/.."

pairpilot=.venv/bin/pairpilot
samples="$PWD/bot/sample_data"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
config="$scratch/portfolio.toml"
cat >"$config" <<TOML
data_dir = "$scratch/data"
[market_data]
source = "replay"
[market_data.replay_files]
"BTC/USDT" = "$samples/BTC_USDT-1h.csv.gz"
"ETH/USDT" = "$samples/ETH_USDT-1h.csv.gz"
[[pairs]]
pair = "BTC/USDT"
strategy = "ema_cross"
timeframe = "1h"
capital_share = 0.5
[[pairs]]
pair = "ETH/USDT"
strategy = "ema_cross"
timeframe = "1h"
capital_share = 0.5
TOML
"$pairpilot" backtest --config "$config" --json >/dev/null
"$pairpilot" backtest --data "$samples/BTC_USDT-1h.csv.gz" --config "$config" --json >/dev/null
