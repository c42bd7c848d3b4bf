"""Where the benches find their data: every path from this package's location, none from the cwd."""

from __future__ import annotations

from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SAMPLE_DATA = ROOT / "bot" / "sample_data"
# The real candle series beside the checkout (../shared/data, as in CI).
SHARED_DATA = ROOT.parent / "shared" / "data"
