-- Research receipts (issue 17): the fingerprint of a backtest or a sweep that succeeded.
CREATE TABLE receipts (
    id         TEXT    PRIMARY KEY,  -- six characters, typeable from a phone
    created_at INTEGER NOT NULL,
    kind       TEXT    NOT NULL,     -- "backtest" or "sweep"
    strategy   TEXT    NOT NULL,
    body       TEXT    NOT NULL      -- JSON: version, hashes, params, terms, series, result
);
