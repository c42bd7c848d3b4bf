-- How an order was sent ('market', 'limit' or 'stop') and, for a buy sized in the quote, that
-- quote size. /order (bot/order_by_hand.py) warns that an order which may still rest on the
-- venue fills later unbooked if closed by hand, and refuses a fill worth more than the order
-- could spend. Orders journaled before this column have NULL: kind unknown (treated as one
-- that may rest), the quote size not kept (its amount x reference price is used).
ALTER TABLE orders ADD COLUMN kind TEXT;
ALTER TABLE orders ADD COLUMN quote_amount REAL;
