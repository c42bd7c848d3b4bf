"""Candle download through unmodified ccxt against a local Binance fake; import; list."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from bot.core.errors import ExchangeUnavailable, NotFound, UserInputError
from bot.exchange.ccxt_exchange import CcxtExchange
from bot.market.store import download
from storage.candles import SqliteCandleRepository
from storage.db import Database
from tests.doubles.fake_exchange import FakeBinance, Fault, binance_urls, serve

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "bot" / "sample_data" / "BTC_USDT-1h.csv.gz"
START = datetime(2025, 6, 21, tzinfo=UTC)
HOUR = 3_600_000


def fake_with(candles: pd.DataFrame) -> FakeBinance:
    last_open = int(candles["timestamp"].iloc[-1])
    fake = FakeBinance(now_ms=last_open + 30 * 60_000)  # half-way through the last candle
    fake.add_candles("BTCUSDT", "1h", candles)
    return fake


def ccxt_config(base: str) -> dict[str, object]:
    return {"urls": {"api": binance_urls(base)}}


@pytest.fixture
async def exchange_for(btc_candles: pd.DataFrame) -> AsyncIterator[tuple[FakeBinance, object]]:
    fake = fake_with(btc_candles)
    async with serve(fake) as base:
        exchange = CcxtExchange.create("binance", ccxt_config(base), attempts=4, backoff=0.01)
        await exchange.load_markets()
        try:
            yield fake, exchange
        finally:
            await exchange.close()


def now_of(fake: FakeBinance) -> datetime:
    return datetime.fromtimestamp(fake.now_ms / 1000, tz=UTC)


async def test_download_pages_through_history_and_keeps_closed_candles_only(
    db: Database, btc_candles: pd.DataFrame, exchange_for: tuple[FakeBinance, CcxtExchange]
) -> None:
    fake, exchange = exchange_for
    repo = SqliteCandleRepository(db)
    report = await download(
        exchange, repo, pair="BTC/USDT", timeframe="1h", since=START, until=None, now=now_of(fake)
    )
    stored = await repo.frame("binance", "BTC/USDT", "1h")
    closed = btc_candles.iloc[:-1]  # the last candle was still forming at the fake's "now"
    pd.testing.assert_frame_equal(stored, closed.reset_index(drop=True), check_dtype=False)
    assert (report.count, report.added, report.gaps) == (len(closed), len(closed), [])
    klines = [query for path, query in fake.requests if path == "/api/v3/klines"]
    assert len(klines) == 3  # 2,183 candles in pages of 1,000
    assert [int(q["startTime"]) for q in klines] == [
        int(closed["timestamp"].iloc[0]) + page * 1000 * HOUR for page in range(3)
    ]


async def test_download_resumes_after_what_is_stored(
    db: Database, btc_candles: pd.DataFrame, exchange_for: tuple[FakeBinance, CcxtExchange]
) -> None:
    fake, exchange = exchange_for
    repo = SqliteCandleRepository(db)
    await repo.add_frame("binance", "BTC/USDT", "1h", btc_candles.iloc[:1500])
    report = await download(
        exchange, repo, pair="BTC/USDT", timeframe="1h", since=START, until=None, now=now_of(fake)
    )
    assert report.added == len(btc_candles) - 1 - 1500
    klines = [query for path, query in fake.requests if path == "/api/v3/klines"]
    assert int(klines[0]["startTime"]) == int(btc_candles["timestamp"].iloc[1500])
    again = await download(
        exchange, repo, pair="BTC/USDT", timeframe="1h", since=START, until=None, now=now_of(fake)
    )
    assert again.added == 0
    assert again.count == len(btc_candles) - 1


async def test_gaps_are_reported_and_never_filled(db: Database, btc_candles: pd.DataFrame) -> None:
    holed = pd.concat([btc_candles.iloc[:100], btc_candles.iloc[133:300]], ignore_index=True)
    fake = fake_with(holed)
    async with serve(fake) as base:
        exchange = CcxtExchange.create("binance", ccxt_config(base), backoff=0.01)
        try:
            await exchange.load_markets()
            report = await download(
                exchange,
                SqliteCandleRepository(db),
                pair="BTC/USDT",
                timeframe="1h",
                since=START,
                until=None,
                now=now_of(fake),
            )
        finally:
            await exchange.close()
    (gap,) = report.gaps
    assert gap.missing == 33
    assert gap.after == datetime.fromtimestamp(btc_candles["timestamp"].iloc[99] / 1000, UTC)
    assert report.count == len(holed) - 1


async def test_rate_limits_and_server_errors_are_retried_honouring_retry_after(
    db: Database, exchange_for: tuple[FakeBinance, CcxtExchange]
) -> None:
    fake, exchange = exchange_for
    fake.faults += [
        Fault(
            "/api/v3/klines",
            429,
            {"code": -1003, "msg": "Too many requests"},
            {"Retry-After": "0.2"},
        ),
        Fault("/api/v3/klines", 502, "bad gateway", times=1),
        Fault("/api/v3/klines", 418, {"code": -1003, "msg": "banned"}, {"Retry-After": "0.1"}),
    ]
    started = asyncio.get_running_loop().time()
    report = await download(
        exchange,
        SqliteCandleRepository(db),
        pair="BTC/USDT",
        timeframe="1h",
        since=START,
        until=START + timedelta(days=3),
        now=now_of(fake),
    )
    assert report.count == 72
    assert asyncio.get_running_loop().time() - started >= 0.2  # waited as asked, not less
    assert all(fault.times == 0 for fault in fake.faults)


async def test_a_persistent_outage_gives_up_with_exchange_unavailable(
    db: Database, exchange_for: tuple[FakeBinance, CcxtExchange]
) -> None:
    fake, exchange = exchange_for
    fake.faults.append(Fault("/api/v3/klines", 503, {"code": -1000, "msg": "Unknown"}, times=99))
    repo = SqliteCandleRepository(db)
    with pytest.raises(ExchangeUnavailable):
        await download(
            exchange,
            repo,
            pair="BTC/USDT",
            timeframe="1h",
            since=START,
            until=None,
            now=now_of(fake),
        )
    assert len([p for p, _ in fake.requests if p == "/api/v3/klines"]) == 4  # the attempts
    assert await repo.last_timestamp("binance", "BTC/USDT", "1h") is None


@pytest.mark.parametrize(
    ("pair", "timeframe", "since", "error", "message"),
    [
        ("BTC/USDC", "1h", START, NotFound, "BTC/USDC is not listed on binance"),
        ("BTC/USDT", "7m", START, UserInputError, "binance does not offer 7m candles"),
        ("BTC/USDT", "1h", datetime(2030, 1, 1, tzinfo=UTC), UserInputError, "nothing to download"),
    ],
)
async def test_bad_requests_fail_clearly_and_store_nothing(
    db: Database,
    exchange_for: tuple[FakeBinance, CcxtExchange],
    pair: str,
    timeframe: str,
    since: datetime,
    error: type[Exception],
    message: str,
) -> None:
    fake, exchange = exchange_for
    repo = SqliteCandleRepository(db)
    with pytest.raises(error, match=message):
        await download(
            exchange,
            repo,
            pair=pair,
            timeframe=timeframe,
            since=since,
            until=None,
            now=now_of(fake),
        )
    assert await repo.series() == []


def test_an_unknown_exchange_id_names_close_ones() -> None:
    with pytest.raises(UserInputError, match="did you mean binance"):
        CcxtExchange.create("binanse", {})


async def run_cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli.main",
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, out.decode(), err.decode()


async def test_cli_download_list_and_backtest_from_storage(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = fake_with(btc_candles)
    async with serve(fake) as base:
        (tmp_path / "pairpilot.toml").write_text(
            "[exchange.ccxt_config.urls.api]\n"
            + "".join(f'{key} = "{url}"\n' for key, url in binance_urls(base).items())
        )
        config = str(tmp_path / "pairpilot.toml")
        code, out, err = await run_cli(
            "data",
            "download",
            "--pair",
            "BTC/USDT",
            "--timeframe",
            "1h",
            "--since",
            "2025-06-21",
            "--until",
            "2025-07-21",
            "--config",
            config,
            cwd=tmp_path,
        )
        assert code == 0, err
        assert "binance BTC/USDT 1h: 720 candles, 2025-06-21 00:00 .. 2025-07-20 23:00" in out
        bad = await run_cli(
            "data",
            "download",
            "--pair",
            "DOGE/BTC",
            "--timeframe",
            "1h",
            "--since",
            "2025-06-21",
            "--config",
            config,
            cwd=tmp_path,
        )
        assert bad[0] == 2
        assert "DOGE/BTC is not listed on binance" in bad[2]
    code, out, _ = await run_cli("data", "list", "--config", config, cwd=tmp_path)
    assert "720 candles" in out
    assert "0 gaps" in out
    stored = await run_cli(
        "backtest",
        "--pair",
        "BTC/USDT",
        "--timeframe",
        "1h",
        "--until",
        "2025-07-15",
        "--json",
        "--config",
        config,
        cwd=tmp_path,
    )
    from_file_prefix = btc_candles[btc_candles["timestamp"] < 1752537600000]
    prefix = tmp_path / "BTC_USDT-1h.csv"
    from_file_prefix.to_csv(prefix, index=False)
    direct = await run_cli(
        "backtest", "--data", str(prefix), "--json", "--config", config, cwd=tmp_path
    )  # the same account simulated
    assert stored[0] == direct[0] == 0, stored[2] + direct[2]
    assert stored[1].split('"metrics"')[1] == direct[1].split('"metrics"')[1]


async def test_cli_import_refuses_a_bad_file_and_stores_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "BTC_USDT-1h.csv"
    bad.write_text("timestamp,open,high,low,close,volume\n3600000,1,1,1,1,1\n0,1,1,1,1,1\n")
    code, _, err = await run_cli("data", "import", str(bad), cwd=tmp_path)
    assert code == 2
    assert "not sorted" in err
    code, out, _ = await run_cli("data", "import", str(SAMPLE), cwd=tmp_path)
    assert code == 0
    assert "2,184 candles" in out
    assert "2,184 new" in out
    code, out, _ = await run_cli("data", "import", str(SAMPLE), cwd=tmp_path)
    assert "0 new" in out
