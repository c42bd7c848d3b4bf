-- Fees as exchanges charge them: a maker rebate is a negative fee (the CHECK fee >= 0 made such
-- a fill unbookable), and a fee paid in a third currency (BNB) is kept apart: fee_outside is
-- its value in the quote (a cost of the trade, not taken from the quote cash), fee_asset the
-- asset charged. SQLite cannot alter a CHECK, so the table is rebuilt with its rows.
CREATE TABLE fills_new (
    trade_id        TEXT    PRIMARY KEY,
    client_order_id TEXT    NOT NULL REFERENCES orders (client_order_id),
    pair            TEXT    NOT NULL,
    side            TEXT    NOT NULL CHECK (side IN ('buy', 'sell')),
    amount          REAL    NOT NULL CHECK (amount > 0),
    price           REAL    NOT NULL CHECK (price > 0),
    fee             REAL    NOT NULL,
    time            INTEGER NOT NULL,
    fee_outside     REAL    NOT NULL DEFAULT 0,
    fee_asset       TEXT    NOT NULL DEFAULT ''
);
INSERT INTO fills_new (trade_id, client_order_id, pair, side, amount, price, fee, time)
    SELECT trade_id, client_order_id, pair, side, amount, price, fee, time FROM fills;
DROP TABLE fills;
ALTER TABLE fills_new RENAME TO fills;
CREATE INDEX fills_by_time ON fills (time);
