from __future__ import annotations

import gzip
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from bot.core.domain import from_ms
from bot.core.errors import DataError, NotFound
from bot.market.candle_files import (
    ReplaySource,
    check_alignment,
    describe_file_name,
    infer_timeframe,
    read_candle_file,
)

HEADER = "timestamp,open,high,low,close,volume\n"
GOOD_ROWS = [
    "1750464000000,100,110,90,105,1\n",
    "1750467600000,105,112,101,110,2\n",
    "1750471200000,110,115,108,109,3\n",
]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_sample_file_loads_with_exact_values(btc_candles: pd.DataFrame) -> None:
    assert len(btc_candles) == 2184
    assert list(btc_candles.columns) == ["timestamp", "open", "high", "low", "close", "volume"]
    first = btc_candles.iloc[0]
    assert first["timestamp"] == 1750464000000
    assert first["close"] == 103248.07


def test_gzip_and_plain_files_read_the_same(tmp_path: Path) -> None:
    plain = write(tmp_path / "a.csv", HEADER + "".join(GOOD_ROWS))
    packed = tmp_path / "a.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    pd.testing.assert_frame_equal(read_candle_file(plain), read_candle_file(packed))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("time,open,high,low,close,volume\n1,1,1,1,1,1\n", "expected 'timestamp,open"),
        (HEADER, "holds no candles"),
        (HEADER + "1750464000000,abc,110,90,105,1\n", "line 2: open 'abc' is not a number"),
        (HEADER + "1750464000000,100,110,90,105\n", "line 2: volume '' is not a number"),
        (HEADER + GOOD_ROWS[1] + GOOD_ROWS[0], "not sorted"),
        (HEADER + GOOD_ROWS[0] + GOOD_ROWS[0], "duplicated timestamp 2025-06-21T00:00Z"),
        (HEADER + "1750464000000,0,110,0,105,1\n", "non-positive open"),
        (HEADER + "1750464000000,100,101,90,105,1\n", "high/low outside open/close"),
        (HEADER + "1750464000000,100,110,90,105,-1\n", "negative volume"),
        (HEADER + "1750464000000.5,100,110,90,105,1\n", "whole milliseconds"),
    ],
)
def test_bad_files_are_refused_with_the_problem_named(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        read_candle_file(write(tmp_path / "bad.csv", text))


def test_missing_and_binary_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_candle_file(tmp_path / "nope.csv.gz")
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(DataError, match="cannot be read"):
        read_candle_file(broken)


def test_file_names_and_timeframes_are_recognised(
    btc_path: Path, btc_candles: pd.DataFrame
) -> None:
    assert describe_file_name(btc_path) == ("BTC/USDT", "1h")
    assert describe_file_name(Path("prices.csv")) is None
    assert infer_timeframe(btc_candles) == "1h"
    check_alignment(btc_candles, "1h", "sample")
    with pytest.raises(DataError, match="does not start on a 1d boundary"):
        check_alignment(btc_candles.iloc[1:], "1d", "sample")


async def test_replay_hands_out_closed_candles_only(btc_candles: pd.DataFrame) -> None:
    source = ReplaySource({"BTC/USDT": btc_candles}, {"BTC/USDT": "1h"})
    third_open = from_ms(int(btc_candles["timestamp"].iloc[2]))
    just_before_close = third_open + timedelta(hours=1) - timedelta(milliseconds=1)
    closed = await source.closed_candles("BTC/USDT", just_before_close, limit=100)
    assert len(closed) == 2  # the third candle is still forming
    at_close = await source.closed_candles("BTC/USDT", third_open + timedelta(hours=1), 100)
    assert len(at_close) == 3
    assert len(await source.closed_candles("BTC/USDT", third_open + timedelta(hours=1), 2)) == 2


async def test_replay_price_is_the_open_of_the_forming_candle(btc_candles: pd.DataFrame) -> None:
    source = ReplaySource({"BTC/USDT": btc_candles}, {"BTC/USDT": "1h"})
    second_open = from_ms(int(btc_candles["timestamp"].iloc[1]))
    assert await source.price("BTC/USDT", second_open) == btc_candles["open"].iloc[1]
    assert (
        await source.price("BTC/USDT", second_open + timedelta(minutes=59))
        == (btc_candles["open"].iloc[1])
    )
    with pytest.raises(NotFound):
        await source.price("BTC/USDT", source.last_close("BTC/USDT"))
    with pytest.raises(NotFound, match="no replay data for ETH/USDT"):
        await source.price("ETH/USDT", second_open)
