-- Trades that sold beyond the books' position (the account held more than the books): the
-- part beyond is not a fill of pairpilot's, so it is kept here, by trade id, so that a settle
-- again never alerts it or credits the user twice. A trade wholly beyond the position (a
-- split sale's later trade) has no row in fills at all: this row is its only record.
CREATE TABLE sales_beyond (
    trade_id        TEXT    PRIMARY KEY,
    client_order_id TEXT    NOT NULL,
    pair            TEXT    NOT NULL,
    amount          REAL    NOT NULL CHECK (amount > 0),
    price           REAL    NOT NULL CHECK (price > 0),
    users           REAL    NOT NULL CHECK (users >= 0),
    time            INTEGER NOT NULL
);
