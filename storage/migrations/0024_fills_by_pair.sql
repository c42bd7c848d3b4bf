-- The drift monitor reads one pair's fills since a time inside the tick (bot/trading/drift.py).
CREATE INDEX fills_by_pair_time ON fills (pair, time);
