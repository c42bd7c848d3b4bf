from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import generate_latest

from bot.ops.telemetry import REGISTRY

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana-dashboard.json"


def test_the_grafana_dashboard_graphs_only_metrics_we_expose() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    used = {
        name
        for panel in panels
        for target in panel["targets"]
        for name in re.findall(r"pairpilot_\w+", target["expr"])
    }
    exposed = set(re.findall(r"^# TYPE (\w+)", generate_latest(REGISTRY).decode(), re.M))
    exposed |= {f"{name}_{suffix}" for name in exposed for suffix in ("total", "bucket")}
    assert used
    assert used <= exposed, used - exposed


def test_the_dashboard_names_its_data_source_through_a_variable_it_defines() -> None:
    # ${DS_PROMETHEUS}-style inputs resolve only in the UI's import; under file provisioning
    # they stay literal and every panel breaks. A datasource variable works both ways.
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {
        item["name"]
        for item in dashboard["templating"]["list"]
        if item["type"] == "datasource" and item["query"] == "prometheus"
    }
    uids = {
        thing["datasource"]["uid"]
        for panel in dashboard["panels"]
        for thing in [panel, *panel["targets"]]
    }
    assert uids == {f"${{{name}}}" for name in variables}
    assert "__inputs" not in dashboard
