"""Prometheus metrics: what an operator graphs and alerts on.

The metrics are always recorded (a counter increment costs well under a microsecond); they are
served over HTTP only when ``metrics.port`` is set in the config. They live in their own
registry, so nothing else in the process leaks into /metrics.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)

TICKS = Counter("pairpilot_ticks", "Passes over the active pair runs", registry=REGISTRY)
TICK_SECONDS = Histogram(
    "pairpilot_tick_seconds",
    "How long one tick took, exchange calls included",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
ORDERS = Counter(
    "pairpilot_orders", "Orders by the status they ended in", ["status"], registry=REGISTRY
)
EXCHANGE_ERRORS = Counter(
    "pairpilot_exchange_errors",
    "Failed exchange calls by class: ExchangeUnavailable (retried), ClockSkew (retried), "
    "ExchangeRejected, InsufficientFunds, NotFound, ExchangeAuthFailed (halts)",
    ["kind"],
    registry=REGISTRY,
)
OUTBOX_BACKLOG = Gauge("pairpilot_outbox_backlog", "Alerts waiting for delivery", registry=REGISTRY)
EQUITY = Gauge("pairpilot_equity", "Equity in the quote currency", registry=REGISTRY)
PNL_TODAY = Gauge(
    "pairpilot_pnl_today",
    "Equity minus the start-of-day equity (quote currency)",
    registry=REGISTRY,
)
HALTED = Gauge("pairpilot_halted", "1 while trading is halted", registry=REGISTRY)
STORAGE_OK = Gauge(
    "pairpilot_storage_ok",
    "1 while the data directory is writable with room left; 0: new entries are off",
    registry=REGISTRY,
)
DATA_DIR_FREE = Gauge(
    "pairpilot_data_dir_free_bytes",
    "Free bytes on the data directory's file system",
    registry=REGISTRY,
)


@contextmanager
def serving(port: int, host: str) -> Iterator[None]:
    """Serve /metrics on ``host:port`` (a daemon thread) until the block ends; 0: off."""
    if not port:
        yield
        return
    server, thread = start_http_server(port, addr=host, registry=REGISTRY)
    try:
        yield
    finally:
        server.shutdown()
        thread.join(timeout=2)
