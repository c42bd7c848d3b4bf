"""The venue model: each exchange's client order id rule and how ours is carried."""

from __future__ import annotations

import re

import pytest

from bot.core.errors import ExchangeRejected
from bot.exchange.ccxt_exchange import CcxtExchange
from bot.exchange.venues import PROFILES, profile_for


def test_an_id_from_another_venues_format_is_refused_before_sending() -> None:
    with pytest.raises(ExchangeRejected, match="okx: client order id 'pp1-1-buy' breaks"):
        PROFILES["okx"].wire_id("pp1-1-buy")  # Binance's old form: dashes
    with pytest.raises(ExchangeRejected, match="at most 36"):
        PROFILES["bybit"].wire_id("a" * 37)
    assert PROFILES["binance"].wire_id("pp1-1-buy") == "pp1-1-buy"  # journaled before: valid


def test_venues_that_cannot_carry_our_id_get_one_derived_from_it_every_time() -> None:
    ours = "pp12x1751328000000strail"
    uuid_like = PROFILES["coinbase"].wire_id(ours)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", uuid_like)
    assert PROFILES["coinbase"].wire_id(ours) == uuid_like  # a crash can look it up again
    kraken = PROFILES["kraken"]
    wire = kraken.wire_id(ours)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", wire)
    assert kraken.wire_id(ours + "x") != wire
    # An order an earlier version placed carries the short form: looked for under it too.
    (short,) = kraken.wire_ids(ours)[1:]
    assert short.isdigit()
    assert len(short) <= 18


def test_kraken_ids_that_collided_as_short_cl_ord_ids_go_as_distinct_uuids() -> None:
    """Two real ids of ours that share a 31-bit short form (found by brute force): Kraken keeps
    cl_ord_id unique among open orders only, so the short form could name an older order."""
    first, second = "pp3x1782309600000sstop", "pp7x1760169600000s"
    kraken = PROFILES["kraken"]
    assert kraken.wire_ids(first)[1] == kraken.wire_ids(second)[1]
    assert kraken.wire_id(first) != kraken.wire_id(second)


def test_lookups_use_each_venues_own_parameter() -> None:
    ours = "pp1x1751328000000b"
    assert PROFILES["binance"].lookup_by_id(ours) == {"origClientOrderId": ours}
    assert PROFILES["okx"].lookup_by_id(ours, stop=True) == {"clOrdId": ours, "trigger": True}
    assert PROFILES["okx"].id_params(ours, stop=True) == {"algoClOrdId": ours}
    assert PROFILES["bybit"].lookup_by_id(ours) == {"orderLinkId": ours, "acknowledged": True}


def test_an_exchange_without_a_profile_runs_conservatively_and_says_what_is_unverified() -> None:
    profile = profile_for("gate")
    assert (profile.name, profile.stop_orders, profile.reply_complete) == ("gate", False, False)
    exchange = CcxtExchange.create("gate", {})
    assert exchange.supports_stop_orders is False
    warning = exchange.profile.warning()
    assert warning is not None
    assert "gate: unverified" in warning
    assert "stops (checked per candle" in warning
    assert PROFILES["binance"].warning() is None


def test_only_venues_never_run_against_a_model_of_them_warn() -> None:
    verified = [name for name, profile in PROFILES.items() if profile.warning() is None]
    # each has a fake the soaks run on
    assert verified == ["binance", "okx", "bybit", "kraken", "coinbase"]


def test_a_profiles_client_options_fill_what_ccxt_leaves_open_and_never_the_users() -> None:
    bybit = CcxtExchange.create("bybit", {}).client
    assert bybit.options["enableUnifiedAccount"] is True  # ccxt's own default is None: ask
    assert bybit.options["enableUnifiedMargin"] is False
    mine = CcxtExchange.create("bybit", {"options": {"enableUnifiedAccount": False}}).client
    assert mine.options["enableUnifiedAccount"] is False


def test_a_profiles_client_options_stand_before_ccxts_own_defaults_but_not_the_users() -> None:
    coinbase = CcxtExchange.create("coinbase", {}).client
    # ccxt's default is /v2/accounts, whose balances count what orders hold as free
    assert coinbase.options["fetchBalance"] == "v3PrivateGetBrokerageAccounts"
    mine = CcxtExchange.create("coinbase", {"options": {"fetchBalance": "v2PrivateGetAccounts"}})
    assert mine.client.options["fetchBalance"] == "v2PrivateGetAccounts"
