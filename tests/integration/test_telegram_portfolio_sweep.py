"""/sweep portfolio from chat (issue 17: a sweep scores a parameter set on the whole
portfolio), through the real python-telegram-bot client and the Bot API emulator, against
bot.research.portfolio_sweep run directly on the same candles and terms."""

from __future__ import annotations

import json
from pathlib import Path

from bot.app.config import Settings
from bot.app.startup import load_replay
from bot.market.history import ReplayHistory
from bot.research.account_terms import Overrides, research_terms
from bot.research.portfolio_sweep import portfolio_sweep
from bot.research.sweep import PORTFOLIO, SweepSpec, parse_space, ranked
from storage.sweeps import SqliteSweepRepository
from tests.rigs.builders import SAMPLES
from tests.rigs.chat_rig import ADMIN, Chat, chat_stack

FILES = {pair: SAMPLES / f"{pair.replace('/', '_')}-1h.csv.gz" for pair in ("BTC/USDT", "ETH/USDT")}


def _config(tmp_path: Path, pairs: list[dict[str, object]]) -> Settings:
    return Settings.model_validate(
        {
            "data_dir": tmp_path,
            "market_data": {"source": "replay", "replay_files": FILES},
            "pairs": pairs,
        }
    )


async def _stored_sweeps(chat: Chat) -> int:
    row = await chat.db.fetch_one("SELECT count(*) FROM sweeps")
    assert row is not None
    return int(row[0])


async def test_sweep_portfolio_scores_each_set_on_the_portfolio_with_the_limits_now(
    tmp_path: Path,
) -> None:
    config = _config(
        tmp_path,
        [
            {"pair": "BTC/USDT", "capital_share": 0.5, "params": {"fast": 5, "slow": 40}},
            {
                "pair": "ETH/USDT",
                "strategy": "rsi",
                "capital_share": 0.5,
                "params": {"length": 10, "oversold": 35.0},
            },
        ],
    )
    async with chat_stack(tmp_path, config) as chat:
        for _ in range(24 * 25):
            await chat.trading.driver.step()
        await chat.ask(ADMIN, "/risk set max_open_positions 1")  # the limits now, not the config's
        shown = " ".join((await chat.ask(ADMIN, "/help sweep")).split())
        assert "/sweep portfolio STRATEGY [DAYS] NAME=LOW:HIGH:STEP" in shown
        for text, expected in [
            ("/sweep portfolio", "usage: /sweep portfolio STRATEGY"),
            ("/sweep portfolio ema_cross 1h 20 fast=5", "usage: /sweep portfolio STRATEGY"),
            ("/sweep portfolio macd fast=5", "no configured pair runs macd"),
            ("/sweep portfolio magic fast=5", "no configured pair runs magic"),
            ("/sweep portfolio ema_cross", "parameter space is empty"),
            ("/sweep portfolio ema_cross fast=1:3:1", "outside the strategy"),
            ("/sweep portfolio ema_cross 3 fast=5", "DAYS 3 must be"),
            ("/sweep portfolio ema_cross fast=5 objective=luck", "objective"),
            ("/sweep portfolio ema_cross fast=5 fee=2", "fee"),
            ("/sweep portfolio ema_cross fast=5 random=", "'random=': expected NAME=LOW:HIGH"),
            (
                "/sweep portfolio ema_cross fast=2:200:1 slow=10:400:1",
                "77,809 combinations; at most 5,000 from chat",
            ),
        ]:
            answer = await chat.ask(ADMIN, text)
            assert expected in answer, (text, answer)
            assert "\n" not in answer.strip() or "usage" in answer, answer  # one clear line
        assert await _stored_sweeps(chat) == 0  # nothing ran

        before = len(chat.emulator.to(ADMIN))
        chat.emulator.say(
            ADMIN, "/sweep portfolio ema_cross fast=4:8:2 slow=20,30 20 slippage=0.001"
        )
        chat.emulator.say(ADMIN, "/sweep BTC/USDT ema_cross fast=5")  # the gate is /sweep's
        progress = await chat.reply(ADMIN, after=before)
        for _ in range(1200):
            sent = chat.emulator.to(ADMIN)[before:]
            if any(m.photo for m in sent) and progress.text == "Done.":
                break
            await chat.emulator.quiet(0.1)
        replies = chat.emulator.to(ADMIN)[before:]
        (photo,) = [m for m in replies if m.photo is not None]
        assert any(
            "a sweep is running (portfolio ema_cross 1h 20d, 6 combinations)" in m.text
            for m in replies
        ), [m.text for m in replies]
        assert progress.edits >= 3  # loading each pair, the first set, percentages, done
        assert progress.text == "Done."

        now = chat.trading.clock.now()
        history = ReplayHistory(load_replay(config).source)
        candles = {pair: await history.candles(pair, "1h", 20, now) for pair in FILES}
        limits = chat.trading.engine.guard.limits
        assert limits.max_open_positions == 1
        given = Overrides(slippage=0.001)  # a term word, as /sweep takes them
        terms = research_terms(config, None, given, limits=limits)
        space = parse_space("ema_cross", ["fast=4:8:2", "slow=20,30"])
        spec = SweepSpec("ema_cross", space, terms={PORTFOLIO: terms})
        expected = ranked(
            list(portfolio_sweep(spec, config, candles, overrides=given, limits=limits).rows)
        )
        assert photo.photo is not None
        assert photo.photo.startswith(b"\x89PNG")  # the heatmap: two parameters vary
        assert len(photo.photo) <= 300_000
        lines = photo.text.splitlines()
        assert lines[0] == "Sweep 1: 6 results, best by sharpe:"
        assert lines[1] == (
            "ema_cross swept on BTC/USDT over 20 days of 1h candles; "
            "ETH/USDT keeps its configured parameters"
        )
        for line, row in zip(lines[2:7], expected[:5], strict=True):
            params = " ".join(f"{k}={v:g}" for k, v in row.params)
            assert row.score is not None
            assert line == (
                f"{params}: {row.score:.2f}, return {row.metrics['total_return']:+.1%}, "
                f"max DD {row.metrics['max_drawdown']:.1%}"
            )
        best = expected[0]
        assert best.metrics["total_return"] != 0  # a set that traded, not an empty portfolio
        assert "capital shares BTC/USDT 50%, ETH/USDT 50%" in photo.text
        assert "<= 1 open" in photo.text  # the statement of the limits simulated
        assert "slippage 0.1000% (given)" in photo.text
        stored = await SqliteSweepRepository(chat.db).rows(1)
        assert sorted(stored, key=lambda r: r.params) == sorted(expected, key=lambda r: r.params)
        assert all(row.pair == PORTFOLIO for row in stored)
        # Its receipt, as /sweep keeps one: the sweep, its best set and that set's figures.
        receipt_line = next(line for line in lines if line.startswith("receipt "))
        ((receipt_id, text),) = [
            (row["id"], row["body"])
            for row in await chat.db.fetch_all("SELECT id, body FROM receipts")
        ]
        assert receipt_line == f"receipt {receipt_id}: /compare it with another"
        body = json.loads(text)
        assert body["params"]["sweep"] == 1
        assert body["params"]["swept"] == ["BTC/USDT"]
        assert body["result"]["best"]["params"] == dict(best.params)
        assert body["result"]["total_return"] == best.metrics["total_return"]


async def test_sweep_portfolio_with_no_pairs_configured_says_so_and_runs_nothing(
    tmp_path: Path,
) -> None:
    async with chat_stack(tmp_path, _config(tmp_path, [])) as chat:
        answer = await chat.ask(ADMIN, "/sweep portfolio ema_cross fast=4:8:2")
        assert answer.endswith("no pairs are configured ([[pairs]] in the config)")
        assert answer.count("\n") == 0
        assert await _stored_sweeps(chat) == 0
