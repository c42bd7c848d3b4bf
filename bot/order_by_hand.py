"""/order: an admin settles by hand an order whose outcome the venue cannot tell.

Only an order in that state (``OrderOutcomeUnknown``, bot/unknown_orders.py) is settled here:
any other order is settled by reading the venue, and settling it by hand could book it twice.
The admin looks the order up on the venue's website and says what it did: ``never`` (it was
never placed, or filled nothing) closes it as rejected; ``filled AMOUNT PRICE [FEE]`` books
one fill of AMOUNT base coins at the average PRICE, FEE in the quote (0 when not given), as
any fill (announced, a sale closing the position closes its trade). Bad input changes
nothing. The chat audits the confirmed command; the journal's note names who settled it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from bot.domain import ExecutionReport, Fill, Order, OrderStatus, Side
from bot.errors import NotFound, UserInputError
from bot.execution import Executor

USAGE = "/order ID never | /order ID filled AMOUNT PRICE [FEE]"
_BUY_SLACK = 1.2  # a market buy is sized in the quote: its coins may exceed the estimate
_SELL_SLACK = 1 + 1e-9


@dataclass(frozen=True, slots=True)
class Settlement:
    """What the admin says the order did: ``amount`` 0 for never placed."""

    client_order_id: str
    amount: float = 0.0
    price: float = 0.0
    fee: float = 0.0

    @property
    def filled(self) -> bool:
        return self.amount > 0


def parse(arguments: list[str]) -> Settlement:
    """The settlement ``arguments`` say; UserInputError with the usage otherwise."""
    if len(arguments) == 2 and arguments[1].lower() == "never":
        return Settlement(arguments[0])
    if len(arguments) in (4, 5) and arguments[1].lower() == "filled":
        given = zip(arguments[2:], ("AMOUNT", "PRICE", "FEE"), strict=False)
        amount, price, *fee = (_number(text, name) for text, name in given)
        if amount <= 0 or price <= 0:
            raise UserInputError(f"AMOUNT and PRICE must be above 0; usage: {USAGE}")
        if fee and fee[0] < 0:
            raise UserInputError(f"FEE must be 0 or more; usage: {USAGE}")
        return Settlement(arguments[0], amount, price, fee[0] if fee else 0.0)
    raise UserInputError(f"usage: {USAGE}")


def _number(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UserInputError(f"{name} {text!r} is not a number; usage: {USAGE}") from None
    if not math.isfinite(value):
        raise UserInputError(f"{name} {text!r} is not a number; usage: {USAGE}")
    return value


async def checked(executor: Executor, settlement: Settlement) -> Order:
    """The order ``settlement`` names, when it may be settled so; raises why not."""
    order = await executor.journal.get(settlement.client_order_id)
    if order is None:
        raise NotFound(f"no order {settlement.client_order_id!r} in the journal")
    waiting = {o.client_order_id for o in executor.unknown.blocking.values()}
    if order.status is not OrderStatus.NEW or order.client_order_id not in waiting:
        named = ", ".join(sorted(waiting)) or "none"
        raise UserInputError(f"order {order.client_order_id} is {order.status.value} and read "
                             "from the exchange as usual; only an order whose outcome the "
                             f"exchange cannot tell is settled by hand (now: {named})")  # fmt: skip
    most = order.amount * (_BUY_SLACK if order.side is Side.BUY else _SELL_SLACK)
    if settlement.amount > most:
        raise UserInputError(f"{settlement.amount:.8g} is more than order "
                             f"{order.client_order_id} could have filled (it was for "
                             f"{order.amount:.8g} {order.pair})")  # fmt: skip
    return order


def preview(order: Order, settlement: Settlement) -> str:
    """What a Confirm would do, in words."""
    if not settlement.filled:
        return (f"close order {order.client_order_id} ({order.side.value} {order.pair}) as "
                f"never placed: nothing is booked, and {order.pair} trades again")  # fmt: skip
    quote = order.pair.split("/")[1]
    return (f"book order {order.client_order_id} as filled: {order.side.value} "
            f"{settlement.amount:.8g} {order.pair} at {settlement.price:.8g}, fee "
            f"{settlement.fee:.8g} {quote}; then {order.pair} trades again")  # fmt: skip


async def settle(
    executor: Executor, settlement: Settlement, actor: str, now: datetime
) -> tuple[Order, str]:
    """Settle the order as ``settlement`` says (checked again: the caller holds the tick
    lock); the pair trades again from the next tick. Returns the order and what was done."""
    order = await checked(executor, settlement)
    note = f"settled by hand by {actor}"
    if not settlement.filled:
        await executor.journal.update(order.client_order_id, OrderStatus.REJECTED, now,
                                      note=f"{note}: never placed")  # fmt: skip
    else:
        fill = Fill(order.client_order_id, order.pair, order.side, settlement.amount,
                    settlement.price, settlement.fee, now,
                    f"by-hand-{order.client_order_id}")  # fmt: skip
        report = ExecutionReport(order.client_order_id, "", OrderStatus.FILLED,
                                 settlement.amount, settlement.price, (fill,))  # fmt: skip
        await executor.settle(report)
        await executor.journal.update(order.client_order_id, OrderStatus.FILLED, now, note=note)
    executor.unknown.blocking.pop(order.pair, None)
    return order, f"Done: {preview(order, settlement)}."
