-- What a stored strategy check stands for (issue 18). A pass clears live trading only for the
-- parameters it ran with (params) and only when made by the current version of the check's own
-- code (check_version: bot/research/check_version.py); rows stored before this have '' and
-- clear nothing. seed: the random prefixes' seed the check drew.
ALTER TABLE strategy_checks ADD COLUMN check_version TEXT NOT NULL DEFAULT '';
ALTER TABLE strategy_checks ADD COLUMN seed INTEGER;
CREATE INDEX strategy_checks_by_params ON strategy_checks (strategy, source_hash, params, id);
