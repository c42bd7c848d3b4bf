-- Every entry the risk rules refused, with the reason.
CREATE TABLE vetoes (
    id      INTEGER PRIMARY KEY,
    time    INTEGER NOT NULL,
    run_id  INTEGER NOT NULL,
    pair    TEXT    NOT NULL,
    reason  TEXT    NOT NULL
);
CREATE INDEX vetoes_by_time ON vetoes (time);
