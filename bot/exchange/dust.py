"""A venue's dust conversion as its API answers it (Binance's Dust Transfer into BNB).

Binance (developers.binance.com, wallet › asset): ``POST /sapi/v1/asset/dust-btc`` lists the
assets it would convert (each worth under 0.001 BTC, BNB never), ``POST /sapi/v1/asset/dust``
with ``asset=A&asset=B`` converts the whole free balance of each into BNB for a 2% charge, at
most once every 6 hours, and ``GET /sapi/v1/asset/dribblet`` is the log of what was converted.
ccxt (4.5.90) has no unified method for the conversion: its implicit methods
``sapiPostAssetDustBtc``, ``sapiPostAssetDust`` (it repeats ``asset`` for a list) and
``sapiGetAssetDribblet`` are called as they are. Refusals arrive as ccxt's exceptions for
Binance's codes: -5003 (not held) InsufficientFunds, -5004 (worth too much), -5006 (within
the window) OperationRejected.

Only parsing lives here; the adapter (``ccxt_account``) sends the requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.core.domain import DustConversion, from_ms

LOG_SPAN_MS = 90 * 86_400_000  # the longest span one dust-log request may cover


def convertible(reply: Mapping[str, Any]) -> dict[str, float]:
    """The assets the venue would convert now, with their free amount (dust-btc's details)."""
    return {
        str(row["asset"]): float(row.get("amountFree") or 0.0) for row in reply.get("details") or []
    }


def transfers(reply: Mapping[str, Any], target: str) -> list[DustConversion]:
    """The conversions of a Dust Transfer reply (``transferResult``). ``transferedAmount`` is
    the BNB bought, before the charge: what is credited is that less ``serviceChargeAmount``."""
    return [
        _conversion(row, str(row.get("tranId")), target)
        for row in reply.get("transferResult") or []
    ]


def log_entries(reply: Mapping[str, Any], target: str) -> list[DustConversion]:
    """Every asset converted in a dust log reply (``userAssetDribblets``)."""
    return [
        _conversion(row, str(row.get("transId") or entry.get("transId")), target)
        for entry in reply.get("userAssetDribblets") or []
        for row in entry.get("userAssetDribbletDetails") or []
    ]


def _conversion(row: Mapping[str, Any], transfer_id: str, target: str) -> DustConversion:
    bought = float(row.get("transferedAmount") or 0.0)
    charge = float(row.get("serviceChargeAmount") or 0.0)
    return DustConversion(
        asset=str(row["fromAsset"]),
        amount=float(row.get("amount") or 0.0),
        received=bought - charge,
        charge=charge,
        target=target,
        transfer_id=transfer_id,
        time=from_ms(int(row.get("operateTime") or 0)),
    )
