from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import generate_latest

from bot.telemetry import REGISTRY

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana-dashboard.json"


def test_the_grafana_dashboard_graphs_only_metrics_we_expose() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    used = {name for panel in panels for target in panel["targets"]
            for name in re.findall(r"pairpilot_\w+", target["expr"])}  # fmt: skip
    exposed = set(re.findall(r"^# TYPE (\w+)", generate_latest(REGISTRY).decode(), re.M))
    exposed |= {f"{name}_{suffix}" for name in exposed for suffix in ("total", "bucket")}
    assert used
    assert used <= exposed, used - exposed
