-- Parameter sweeps: one row per sweep, one per (series, segment, combination) result.
CREATE TABLE sweeps (
    id         INTEGER PRIMARY KEY,
    created_at INTEGER NOT NULL,
    strategy   TEXT    NOT NULL,
    spec       TEXT    NOT NULL,  -- JSON: space, objective, constraint, folds, series
    tasks      INTEGER NOT NULL,
    finished   INTEGER           -- when every task's rows were stored
);
CREATE TABLE sweep_results (
    sweep_id  INTEGER NOT NULL REFERENCES sweeps (id),
    pair      TEXT    NOT NULL,
    timeframe TEXT    NOT NULL,
    segment   TEXT    NOT NULL,  -- "full", or "is-N" / "oos-N" for walk-forward fold N
    params    TEXT    NOT NULL,  -- JSON object, keys sorted
    score     REAL,              -- the objective; NULL when the drawdown constraint failed
    metrics   TEXT    NOT NULL,  -- JSON
    PRIMARY KEY (sweep_id, pair, timeframe, segment, params)
);
