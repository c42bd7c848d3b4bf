-- Strategy checks (issue 18): `pairpilot strategy check`'s verdicts, by the hash of the
-- strategy's source (bot/research/receipts.py source_hash), so a later gate can ask whether
-- the code about to trade passed.
CREATE TABLE strategy_checks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at  INTEGER NOT NULL,
    strategy    TEXT    NOT NULL,
    source_hash TEXT    NOT NULL,
    params      TEXT    NOT NULL,  -- JSON: every parameter's value
    pair        TEXT    NOT NULL,
    timeframe   TEXT    NOT NULL,
    first_ms    INTEGER NOT NULL,  -- the first and last candle checked (open times)
    last_ms     INTEGER NOT NULL,
    candles     INTEGER NOT NULL,
    candle_hash TEXT    NOT NULL,
    passed      INTEGER NOT NULL,  -- 1 when every check passed
    body        TEXT    NOT NULL   -- JSON: CheckReport.record(), every verdict and figure
);
CREATE INDEX strategy_checks_by_source ON strategy_checks (strategy, source_hash, id);
