"""Real parts wired for tests: an Executor on a SQLite database and any exchange."""

from __future__ import annotations

from pathlib import Path

from bot.alerts.outbox import AlertOutbox
from bot.app.config import Settings, load_settings
from bot.core.clock import FakeClock, SystemClock
from bot.core.ports import Exchange
from bot.execution.executor import Executor
from bot.portfolio.books import Portfolio
from bot.research.account_terms import Overrides, ResearchTerms, research_terms
from storage.alerts import SqliteAlertRepository
from storage.db import Database
from storage.fills import SqliteFillRepository
from storage.orders import SqliteOrderRepository
from storage.positions import SqlitePositionRepository
from storage.state import SqliteStateRepository


def executor_on(
    db: Database, exchange: Exchange, clock: FakeClock, portfolio: Portfolio | None = None
) -> Executor:
    return Executor(
        transactions=db,
        exchange=exchange,
        portfolio=portfolio or Portfolio(1000.0),
        orders=SqliteOrderRepository(db),
        fills=SqliteFillRepository(db),
        positions=SqlitePositionRepository(db),
        state=SqliteStateRepository(db),
        alerts=AlertOutbox(SqliteAlertRepository(db), clock),
        clock=clock,
    )


SAMPLES = Path(__file__).resolve().parents[2] / "bot" / "sample_data"


def replay_settings(tmp_path: Path) -> Settings:
    """Replaying the bundled BTC/USDT and ETH/USDT 1h samples, BTC/USDT running on half."""
    files = {
        pair: SAMPLES / f"{pair.replace('/', '_')}-1h.csv.gz" for pair in ("BTC/USDT", "ETH/USDT")
    }
    return Settings.model_validate(
        {
            "data_dir": tmp_path,
            "market_data": {"source": "replay", "replay_files": files},
            "pairs": [{"pair": "BTC/USDT", "capital_share": 0.5}],
        }
    )


# A plain account for tests that pin the kernel: no slippage, no volume cap, stops per candle
# (the default config's otherwise: its fee, balance, timezone and [risk]).
PLAIN = Overrides(slippage=0.0, volume_share=0.0, resting_stops=False)


def plain_terms(*pairs: str, overrides: Overrides = PLAIN) -> dict[str, ResearchTerms]:
    """Each pair's terms as ``research_terms`` builds them on the default config."""
    settings = load_settings(None, None)
    return {pair: research_terms(settings, pair, overrides) for pair in pairs or ("BTC/USDT",)}


def wall_ms() -> int:
    """Now in epoch ms: a venue fake's clock for signed calls (within recvWindow of "now")."""
    return int(SystemClock().now().timestamp() * 1000)
