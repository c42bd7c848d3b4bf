-- Strategy overrides (issue 18): an admin's /allow lets a strategy whose check has not passed
-- trade real money, for one source hash only (an edit of the file voids it). A revoked
-- override stays, with who revoked it and when: the record of who let what trade.
CREATE TABLE strategy_overrides (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at  INTEGER NOT NULL,
    strategy    TEXT    NOT NULL,
    source_hash TEXT    NOT NULL,
    actor       TEXT    NOT NULL,  -- who gave it (the chat user's id)
    overrode    TEXT    NOT NULL,  -- the check state it overrode: "not checked", "FAILED (...)"
    revoked_at  INTEGER,
    revoked_by  TEXT
);
CREATE INDEX strategy_overrides_by_source ON strategy_overrides (strategy, source_hash, id);
