"""The first candles of the BTC/USDT 1h sample as a candle file of their own, named as the
sample is (the command reads the pair and timeframe from the name). A `strategy check` of a
strategy with a short live history needs a few hundred candles; its work grows with the
candles, so a test whose point is not the candle count checks a head of the sample."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tests.rigs.builders import SAMPLES

SAMPLE = SAMPLES / "BTC_USDT-1h.csv.gz"


def sample_head(folder: Path, candles: int = 600) -> Path:
    """``folder``/BTC_USDT-1h.csv.gz holding the sample's first ``candles``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SAMPLE.name
    pd.read_csv(SAMPLE).iloc[:candles].to_csv(path, index=False)
    return path
