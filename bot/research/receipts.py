"""Research receipts: the fingerprint of a backtest or a sweep, enough to run it again and to
prove the rerun made the same trades (issue 17).

What a receipt holds and how each part is fingerprinted:

- ``version``: pairpilot's package version (``importlib.metadata``);
- ``source_hash``: blake2b of the bytes of the source files of the strategy's class and of
  each of its base classes down to ``Strategy`` (``strategies/ema_cross.py`` and
  ``strategies/base.py`` for ema_cross; a user's strategy file or package module, then
  ``strategies/base.py``, for a user strategy), in that order, each preceded by its module's
  name. Other modules a user strategy imports are not hashed;
- ``code``: blake2b of the code that turns candles into results (``code_hash``): each file of
  ``CODE[kind]``, its path then its bytes. For every kind: the kernel (``bot/research/
  kernel.py``, ``kernel_book.py``, ``kernel_inputs.py``, ``kernel_trades.py``), the rules it
  compiles in (``bot/risk/fills.py``, ``bot/risk/rules.py``), the metrics (``bot/portfolio/
  performance.py``) and ``bot/research/backtest.py``; a single pair's run adds ``bot/research/
  simulation.py``, a portfolio's ``bot/research/portfolio.py`` and ``portfolio_inputs.py``.
  The version alone does not move when that code does: a rerun after any change to these
  files refuses, naming "the backtest code changed", before it runs. A receipt stored before
  ``code`` existed (None) reruns as before: its trade hash alone proves the match, and a
  change of trades shows as a difference (exit 1), not as a refusal;
- ``params`` (a backtest's parameters; a sweep's space and objective) and ``terms``
  (``ResearchTerms.as_dict()``: every setting used, ``given`` marking overrides);
- per candle series: where it came from (``source``), its first and last candle's open time,
  its length and ``candle_hash``: blake2b over the timestamps as little-endian int64 bytes,
  then open, high, low, close and volume as little-endian float64 bytes;
- ``result``: a summary (trades, PnL, win rate, drawdown, fees) and, for a backtest,
  ``trade_hash``: blake2b over the trade table's columns (see ``trade_hash``), and
  ``monte_carlo`` when its Monte Carlo was asked for (its resamples, seed and figures: a rerun
  draws them again and must find the same).

Light on purpose (no numpy, pandas or numba at import): the chat imports it at start-up.
"""

from __future__ import annotations

import hashlib
import inspect
import re
import secrets
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.core.domain import RiskLimits, from_ms, to_ms
from bot.core.errors import DataError, UserInputError
from bot.research.account_terms import ResearchTerms

if TYPE_CHECKING:
    import pandas as pd

    from bot.research.backtest import BacktestResult, TradeTable
    from strategies import Strategy

ID_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"  # no 0/o, 1/l/i: typeable from a phone
ID_LENGTH = 6
_ID = re.compile(f"[{ID_ALPHABET}]{{{ID_LENGTH}}}")
CANDLE_COLUMNS = ("open", "high", "low", "close", "volume")
BACKTEST, SWEEP = "backtest", "sweep"
PORTFOLIO, PORTFOLIO_SWEEP = "portfolio", "portfolio sweep"
MONTE_CARLO = "monte_carlo"  # a backtest result's Monte Carlo figures, where asked for
_SHARED_CODE = (
    *(f"bot/research/{name}.py" for name in ("kernel", "kernel_book", "kernel_inputs")),
    *("bot/research/kernel_trades.py", "bot/research/backtest.py"),
    *("bot/risk/fills.py", "bot/risk/rules.py", "bot/portfolio/performance.py"),
)
_SINGLE_CODE = (*_SHARED_CODE, "bot/research/simulation.py")
_PORTFOLIO_CODE = (*_SHARED_CODE, "bot/research/portfolio.py", "bot/research/portfolio_inputs.py")
CODE = {
    BACKTEST: _SINGLE_CODE,
    SWEEP: _SINGLE_CODE,
    PORTFOLIO: _PORTFOLIO_CODE,
    PORTFOLIO_SWEEP: _PORTFOLIO_CODE,
}
_ROOT = Path(__file__).resolve().parents[2]  # the folder holding bot/


def new_id() -> str:
    """A fresh receipt id: six characters of ``ID_ALPHABET`` (31**6, about 890 million)."""
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


def checked_id(text: str) -> str:
    """``text`` as a receipt id (case-insensitive); UserInputError when it cannot be one."""
    wanted = text.strip().lower()
    if not _ID.fullmatch(wanted):
        raise UserInputError(
            f"receipt id {text!r}: expected {ID_LENGTH} letters and digits, like k3m9xq "
            "(every backtest and sweep prints its receipt id)"
        )
    return wanted


def pairpilot_version() -> str:
    return version("pairpilot")


def source_hash(strategy: Strategy | type[Strategy]) -> str:
    """The fingerprint of the strategy's code: see the module's docstring."""
    digest = hashlib.blake2b(digest_size=16)
    kind = strategy if isinstance(strategy, type) else type(strategy)
    for cls in kind.__mro__:
        module = sys.modules[cls.__module__]
        digest.update(module.__name__.encode())
        digest.update(Path(inspect.getfile(module)).read_bytes())
        if cls.__module__ == "strategies.base":  # Strategy itself: the interface, hashed last
            break
    return digest.hexdigest()


def source_changed(name: str, strategy: Strategy | type[Strategy]) -> str:
    """Why a rerun refuses a strategy whose source hash moved. A user strategy's file is named
    (``mine.py``; an installed package's ``package/module.py``), the one its trader edited, as
    short as the chat can quote it; a built-in's source moves only with pairpilot's code."""
    kind = strategy if isinstance(strategy, type) else type(strategy)
    if kind.__module__.split(".")[0] == "strategies":
        return f"the source of strategy {name} changed"
    file = Path(inspect.getfile(kind))
    shown = f"{file.parent.name}/{file.name}" if file.name == "__init__.py" else file.name
    return f"the source of strategy {name} changed ({shown})"


def code_hash(kind: str) -> str:
    """The fingerprint of the code that computes a ``kind``'s results: see the docstring."""
    digest = hashlib.blake2b(digest_size=16)
    for name in CODE[kind]:
        digest.update(name.encode())
        digest.update((_ROOT / name).read_bytes())
    return digest.hexdigest()


def candle_hash(candles: pd.DataFrame) -> str:
    """blake2b of the candle arrays: the timestamps as int64, then OHLCV as float64 bytes."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(candles["timestamp"].to_numpy(dtype="<i8").tobytes())
    for column in CANDLE_COLUMNS:
        digest.update(candles[column].to_numpy(dtype="<f8").tobytes())
    return digest.hexdigest()


def trade_hash(table: TradeTable) -> str:
    """blake2b of the trade table: its pair, then entry and exit times (int64), entry and exit
    prices, amounts, fees and PnL (float64), exit reasons (int8) and whether the last is open."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(table.pair.encode())
    for times in (table.entry_ms, table.exit_ms):
        digest.update(times.astype("<i8").tobytes())
    for values in (table.entry_price, table.exit_price, table.amount, table.fee, table.pnl):
        digest.update(values.astype("<f8").tobytes())
    digest.update(table.reason.astype("i1").tobytes())
    digest.update(b"\x01" if table.still_open else b"\x00")
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class SeriesPrint:
    """One candle series a run read: where from, which candles, and their hash."""

    pair: str
    timeframe: str
    source: Mapping[str, Any]  # {"kind": "file"|"stored"|"chat", ...}: how to read it again
    first_ms: int  # the first candle's open time
    last_ms: int  # the last candle's open time
    candles: int
    candle_hash: str

    @classmethod
    def of(
        cls, pair: str, timeframe: str, source: Mapping[str, Any], candles: pd.DataFrame
    ) -> SeriesPrint:
        stamps = candles["timestamp"]
        return cls(
            pair,
            timeframe,
            dict(source),
            int(stamps.iloc[0]),
            int(stamps.iloc[-1]),
            len(candles),
            candle_hash(candles),
        )

    def span(self) -> str:
        return f"{from_ms(self.first_ms):%Y-%m-%d %H:%M} .. {from_ms(self.last_ms):%Y-%m-%d %H:%M}"


@dataclass(frozen=True, slots=True)
class Receipt:
    id: str
    created: datetime
    kind: str  # BACKTEST or SWEEP
    version: str
    strategy: str
    source_hash: str
    params: Mapping[str, Any]  # a backtest's parameters; a sweep's space and objective
    terms: Mapping[str, Any]  # ResearchTerms.as_dict()
    series: tuple[SeriesPrint, ...]
    result: Mapping[str, Any]
    code: str | None  # code_hash(kind); None: stored before receipts fingerprinted the code

    def record(self) -> dict[str, Any]:
        """Plain JSON values, as a ReceiptStore keeps them."""
        return {
            "id": self.id,
            "created_ms": to_ms(self.created),
            "kind": self.kind,
            "version": self.version,
            "strategy": self.strategy,
            "source_hash": self.source_hash,
            "params": dict(self.params),
            "terms": dict(self.terms),
            "series": [
                {field.name: getattr(s, field.name) for field in fields(SeriesPrint)}
                for s in self.series
            ],
            "result": dict(self.result),
            "code": self.code,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Receipt:
        try:
            return cls(
                id=record["id"],
                created=from_ms(int(record["created_ms"])),
                kind=record["kind"],
                version=record["version"],
                strategy=record["strategy"],
                source_hash=record["source_hash"],
                params=record["params"],
                terms=record["terms"],
                series=tuple(SeriesPrint(**s) for s in record["series"]),
                result=record["result"],
                code=record.get("code"),
            )
        except (KeyError, TypeError) as error:
            raise DataError(f"receipt {record.get('id')} cannot be read: {error}") from None

    @property
    def only_series(self) -> SeriesPrint:
        """A backtest's one series."""
        (series,) = self.series
        return series


def backtest_receipt(
    result: BacktestResult,
    terms: ResearchTerms,
    source: Mapping[str, Any],
    now: datetime,
    monte_carlo: Mapping[str, Any] | None = None,
) -> Receipt:
    """The receipt of a backtest that succeeded; ``source`` says how to read its candles again;
    ``monte_carlo``: its Monte Carlo figures (``MonteCarlo.as_dict()``), when asked for."""
    figures = {} if monte_carlo is None else {MONTE_CARLO: dict(monte_carlo)}
    return Receipt(
        id=new_id(),
        created=now,
        kind=BACKTEST,
        version=pairpilot_version(),
        strategy=result.strategy.name,
        source_hash=source_hash(result.strategy),
        params=dict(result.strategy.params),
        terms=terms.as_dict(),
        series=(SeriesPrint.of(result.setup.pair, result.setup.timeframe, source, result.candles),),
        result={**result_summary(result), **figures},
        code=code_hash(BACKTEST),
    )


def result_summary(result: BacktestResult) -> dict[str, Any]:
    """What a rerun must reproduce and what /compare shows."""
    metrics = result.metrics.as_dict()
    return {
        **{
            key: metrics[key]
            for key in ("trades", "pnl", "total_return", "win_rate", "max_drawdown", "fees")
        },
        "rows": len(result.table),
        "trade_hash": trade_hash(result.table),
    }


def stored_terms(receipt: Receipt) -> ResearchTerms:
    """The receipt's terms as the run used them; DataError when they cannot be rebuilt (a
    receipt written by a pairpilot whose terms had other fields)."""
    return rebuilt_terms(receipt, receipt.terms)


def rebuilt_terms(receipt: Receipt, values: Mapping[str, Any]) -> ResearchTerms:
    """``values`` (a ``ResearchTerms.as_dict()`` stored in ``receipt``) as the run used them."""
    names = [field.name for field in fields(ResearchTerms)]
    missing = [name for name in names if name not in values]
    if missing:
        raise DataError(
            f"receipt {receipt.id} lacks the terms {', '.join(missing)}: "
            f"written by pairpilot {receipt.version}, this is {pairpilot_version()}"
        )
    given = {name: values[name] for name in names}
    given.update(limits=RiskLimits(**values["limits"]), given=frozenset(values["given"]))
    terms = ResearchTerms(**given)
    if terms.as_dict() != dict(values):
        raise DataError(f"receipt {receipt.id}'s terms do not rebuild as they were stored")
    return terms


def rerun_verdict(receipt: Receipt, differences: Sequence[str], matched: str = "") -> str:
    """A rerun's one line: identical to ``receipt`` (``matched`` says what more was equal), or
    which of its figures and hashes differ now."""
    if not differences:
        return f"identical to receipt {receipt.id}{matched}"
    return f"differs from receipt {receipt.id}: " + "; ".join(differences)


def changes(receipt: Receipt, strategy: Strategy, now_hashes: Sequence[str | None]) -> list[str]:
    """What differs between the receipt and what a rerun would read now: pairpilot's version,
    the strategy's source, each series' candles (``now_hashes``: None where they are gone)."""
    found = code_changes(receipt)
    if receipt.source_hash != source_hash(strategy):
        found.append(source_changed(receipt.strategy, strategy))
    for series, now in zip(receipt.series, now_hashes, strict=True):
        if (change := series_change(series, now)) is not None:
            found.append(change)
    return found


def code_changes(receipt: Receipt) -> list[str]:
    """pairpilot's version and the backtest code (``code``), where they differ from now."""
    found = []
    if receipt.version != pairpilot_version():
        found.append(f"pairpilot version {receipt.version} is now {pairpilot_version()}")
    if receipt.code is not None and receipt.code != code_hash(receipt.kind):
        found.append("the backtest code changed (the kernel, its rules or the metrics)")
    return found


def series_change(series: SeriesPrint, now: str | None) -> str | None:
    """What happened to ``series``' candles, ``now`` their hash (None: gone); None: nothing."""
    if now is None:
        return f"the {series.pair} {series.timeframe} candles are gone ({where(series)})"
    if now != series.candle_hash:
        return (
            f"the {series.pair} {series.timeframe} candles of {series.span()} changed "
            f"({where(series)})"
        )
    return None


def where(series: SeriesPrint) -> str:
    """Where a series' candles were read, as an error names it."""
    source = series.source
    if source.get("kind") == "file":
        return f"file {source['path']}, {source['size']:,} bytes then"
    return f"{source.get('exchange', '?')} candles"
