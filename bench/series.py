"""The benchmark's candle series: real 1m BTC/USDT, and a 525,600-candle year built from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bot.market.candle_files import read_candle_file

YEAR_OF_MINUTES = 525_600


def build_year(source: Path, target: Path) -> Path:
    """525,600 one-minute candles: the real series chained end to end until a year is full.

    Each further copy is scaled so its first open equals the previous copy's last close, and
    its timestamps continue minute by minute; the candles' shapes and returns stay real.
    """
    if target.exists():
        return target
    real = read_candle_file(source)
    pieces, scale, start = [], 1.0, int(real["timestamp"].iloc[0])
    while sum(len(piece) for piece in pieces) < YEAR_OF_MINUTES:
        piece = real.copy()
        if pieces:
            scale = pieces[-1]["close"].iloc[-1] / real["open"].iloc[0]
        for column in ("open", "high", "low", "close"):
            piece[column] = real[column] * scale
        done = sum(len(p) for p in pieces)
        piece["timestamp"] = start + (np.arange(len(piece), dtype=np.int64) + done) * 60_000
        pieces.append(piece)
    year = pd.concat(pieces, ignore_index=True).iloc[:YEAR_OF_MINUTES]
    target.parent.mkdir(parents=True, exist_ok=True)
    year.to_csv(target, index=False, float_format="%.8g")
    return target
