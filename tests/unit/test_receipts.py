"""The fingerprints a research receipt is made of (bot/research/receipts.py): ids, the candle
hash, the strategy source hash and the terms, each rebuilt or compared as a rerun does."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from bot.app.config import load_settings
from bot.core.errors import DataError, UserInputError
from bot.research.account_terms import Overrides, research_terms
from bot.research.receipts import (
    BACKTEST,
    CODE,
    PORTFOLIO,
    Receipt,
    SeriesPrint,
    candle_hash,
    changes,
    checked_id,
    code_hash,
    new_id,
    pairpilot_version,
    source_hash,
    stored_terms,
)
from strategies import build_strategy
from strategies.base import Strategy

CANDLES = pd.DataFrame(
    {
        "timestamp": [0, 3_600_000, 7_200_000],
        "open": [1.0, 2.0, 3.0],
        "high": [2.0, 3.0, 4.0],
        "low": [0.5, 1.5, 2.5],
        "close": [1.5, 2.5, 3.5],
        "volume": [10.0, 20.0, 30.0],
    }
)
STRATEGY = """
from strategies.ema_cross import EmaCross


class Edited(EmaCross):
    name = "edited"
    # VERSION
"""


def test_ids_are_six_typeable_characters_and_bad_ones_are_named() -> None:
    ids = {new_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(checked_id(i.upper()) == i for i in ids)
    assert not any(set(i) & set("01ilo") for i in ids)  # nothing to misread on a phone
    for bad in ("", "abc", "abcdefg", "abcd0f", "ab cde", "<b>xyz"):
        with pytest.raises(UserInputError, match="expected 6 letters and digits"):
            checked_id(bad)


def test_the_candle_hash_sees_one_changed_value_and_not_the_dtype() -> None:
    same = CANDLES.astype({"volume": "float32", "timestamp": "int32"})
    assert candle_hash(same) == candle_hash(CANDLES)
    for column in ("timestamp", "open", "high", "low", "close", "volume"):
        moved = CANDLES.copy()
        moved.loc[1, column] += 1
        assert candle_hash(moved) != candle_hash(CANDLES), column
    assert candle_hash(CANDLES.iloc[:2]) != candle_hash(CANDLES)


def _load(path: Path, version: str) -> ModuleType:
    path.write_text(STRATEGY.replace("VERSION", version), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("strategies.edited_for_test", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_a_changed_strategy_source_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source hash covers the strategy's own file and those of its bases in `strategies`."""
    monkeypatch.setitem(sys.modules, "strategies.edited_for_test", None)
    path = tmp_path / "edited.py"
    first: Strategy = _load(path, "one").Edited({})
    receipt = Receipt(
        id=new_id(),
        created=pd.Timestamp(0, tz="UTC").to_pydatetime(),
        kind=BACKTEST,
        version=pairpilot_version(),
        strategy="edited",
        source_hash=source_hash(first),
        params=first.params,
        terms={},
        series=(SeriesPrint.of("BTC/USDT", "1h", {"kind": "stored"}, CANDLES),),
        result={},
        code=code_hash(BACKTEST),
    )
    assert source_hash(first) != source_hash(build_strategy("ema_cross"))  # its own file counts
    assert changes(receipt, first, [candle_hash(CANDLES)]) == []
    edited = _load(path, "two").Edited({})
    assert changes(receipt, edited, [candle_hash(CANDLES)]) == [
        "the source of strategy edited changed"
    ]
    assert changes(receipt, edited, [None]) == [  # every change named at once
        "the source of strategy edited changed",
        "the BTC/USDT 1h candles are gone (? candles)",
    ]


def test_stored_terms_rebuild_the_terms_exactly() -> None:
    terms = research_terms(
        load_settings(None, None),
        "BTC/USDT",
        Overrides(fee_rate=0.002, risk={"max_drawdown": "0"}),
    )
    record = {
        "id": "abcdef",
        "created_ms": 0,
        "kind": BACKTEST,
        "version": pairpilot_version(),
        "strategy": "ema_cross",
        "source_hash": "x",
        "params": {},
        "terms": json.loads(json.dumps(terms.as_dict())),  # as the database gives it back
        "series": [],
        "result": {},
    }
    assert stored_terms(Receipt.from_record(record)) == terms
    broken = {**record, "terms": {k: v for k, v in terms.as_dict().items() if k != "timezone"}}
    with pytest.raises(DataError, match="lacks the terms timezone"):
        stored_terms(Receipt.from_record(broken))
    with pytest.raises(DataError, match="cannot be read"):
        Receipt.from_record({"id": "abcdef"})


def test_a_changed_backtest_code_is_named_and_an_old_receipt_without_it_still_loads() -> None:
    """The version does not move with the kernel: the code's own fingerprint does (issue 17)."""
    root = Path(__file__).resolve().parents[2]
    for kind, names in CODE.items():
        assert all((root / name).is_file() for name in names), kind
    assert "bot/research/kernel.py" in CODE[BACKTEST]
    assert "bot/research/portfolio_inputs.py" in CODE[PORTFOLIO]
    assert "bot/research/portfolio_inputs.py" not in CODE[BACKTEST]  # no false alarms
    assert code_hash(BACKTEST) != code_hash(PORTFOLIO)
    strategy = build_strategy("ema_cross")
    record = {
        "id": "abcdef",
        "created_ms": 0,
        "kind": BACKTEST,
        "version": pairpilot_version(),
        "strategy": "ema_cross",
        "source_hash": source_hash(strategy),
        "params": {},
        "terms": {},
        "series": [],
        "result": {},
    }
    old = Receipt.from_record(record)  # stored before the code was fingerprinted
    assert old.code is None
    assert changes(old, strategy, []) == []
    assert Receipt.from_record({**record, "code": code_hash(BACKTEST)}).record()["code"] == (
        code_hash(BACKTEST)
    )
    edited = Receipt.from_record({**record, "code": "0" * 32})
    assert changes(edited, strategy, []) == [
        "the backtest code changed (the kernel, its rules or the metrics)"
    ]
