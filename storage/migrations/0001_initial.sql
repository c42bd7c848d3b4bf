-- Times are integer milliseconds since the Unix epoch, UTC. Money is REAL in the quote currency.

CREATE TABLE pair_runs (
    id            INTEGER PRIMARY KEY,
    pair          TEXT    NOT NULL,
    strategy      TEXT    NOT NULL,
    timeframe     TEXT    NOT NULL,
    params        TEXT    NOT NULL,  -- JSON object
    capital_share REAL    NOT NULL CHECK (capital_share > 0 AND capital_share <= 1),
    state         TEXT    NOT NULL CHECK (state IN ('running', 'paused', 'stopped')),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
-- At most one live (running or paused) run per pair.
CREATE UNIQUE INDEX pair_runs_one_active ON pair_runs (pair) WHERE state != 'stopped';

CREATE TABLE orders (
    client_order_id   TEXT    PRIMARY KEY,
    run_id            INTEGER NOT NULL REFERENCES pair_runs (id),
    pair              TEXT    NOT NULL,
    side              TEXT    NOT NULL CHECK (side IN ('buy', 'sell')),
    amount            REAL    NOT NULL CHECK (amount > 0),
    status            TEXT    NOT NULL,
    filled            REAL    NOT NULL DEFAULT 0,
    average_price     REAL,
    exchange_order_id TEXT,
    reason            TEXT    NOT NULL DEFAULT '',
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX orders_by_status ON orders (status);

CREATE TABLE order_status_history (
    id              INTEGER PRIMARY KEY,
    client_order_id TEXT    NOT NULL REFERENCES orders (client_order_id),
    status          TEXT    NOT NULL,
    time            INTEGER NOT NULL,
    note            TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX order_status_history_by_order ON order_status_history (client_order_id, id);

CREATE TABLE fills (
    trade_id        TEXT    PRIMARY KEY,
    client_order_id TEXT    NOT NULL REFERENCES orders (client_order_id),
    pair            TEXT    NOT NULL,
    side            TEXT    NOT NULL CHECK (side IN ('buy', 'sell')),
    amount          REAL    NOT NULL CHECK (amount > 0),
    price           REAL    NOT NULL CHECK (price > 0),
    fee             REAL    NOT NULL CHECK (fee >= 0),
    time            INTEGER NOT NULL
);
CREATE INDEX fills_by_time ON fills (time);

CREATE TABLE positions (
    pair          TEXT    PRIMARY KEY,
    amount        REAL    NOT NULL CHECK (amount >= 0),
    average_price REAL    NOT NULL,
    realised_pnl  REAL    NOT NULL,
    fees          REAL    NOT NULL,
    opened_at     INTEGER,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE equity_snapshots (
    time   INTEGER PRIMARY KEY,
    equity REAL    NOT NULL,
    cash   REAL    NOT NULL
);

CREATE TABLE alerts (
    id           INTEGER PRIMARY KEY,
    kind         TEXT    NOT NULL,
    priority     INTEGER NOT NULL,
    text         TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    delivered_at INTEGER,
    attempts     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX alerts_pending ON alerts (priority, id) WHERE delivered_at IS NULL;

CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY,
    time      INTEGER NOT NULL,
    actor     TEXT    NOT NULL,
    command   TEXT    NOT NULL,
    arguments TEXT    NOT NULL,  -- JSON array
    result    TEXT    NOT NULL
);

CREATE TABLE candles (
    exchange  TEXT    NOT NULL,
    pair      TEXT    NOT NULL,
    timeframe TEXT    NOT NULL,
    timestamp INTEGER NOT NULL,  -- open time
    open      REAL    NOT NULL,
    high      REAL    NOT NULL,
    low       REAL    NOT NULL,
    close     REAL    NOT NULL,
    volume    REAL    NOT NULL,
    PRIMARY KEY (exchange, pair, timeframe, timestamp)
) WITHOUT ROWID;

CREATE TABLE bot_state (
    key        TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL,  -- JSON
    updated_at INTEGER NOT NULL
);
