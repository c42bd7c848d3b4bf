-- The price an order was sent at (its limit) or expected at (the close it was decided on): an
-- order settled by hand with /order is checked against it, so a PRICE typed with a digit too
-- many is refused, and a true fill after the market moved away is not (bot/order_by_hand.py).
-- Orders journaled before this column have NULL: the price was not kept.
ALTER TABLE orders ADD COLUMN reference_price REAL;
