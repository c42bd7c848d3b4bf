-- A fee as the exchange charged it, in its own currency (fee_asset): 0.000625 BNB, not only its
-- value in the quote. A fee paid in BNB comes out of the one BNB balance the account holds, the
-- user's own and a BNB/USDT position's alike: the books take it from them in BNB (see
-- bot/execution.py). Fills booked before this column have 0: the amount was not kept.
ALTER TABLE fills ADD COLUMN fee_amount REAL NOT NULL DEFAULT 0;
