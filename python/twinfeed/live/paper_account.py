"""The paper venue's account endpoints in Binance USD-M's shapes (a mixin of PaperVenue).

Each answer follows the endpoint's documented response (field names, types: numbers as
strings where Binance sends strings, numbers and booleans where it sends those):

- ``GET /fapi/v2/account``, ``GET /fapi/v3/account``: Account Information V2 / V3,
  https://developers.binance.com/docs/derivatives/usds-margined-futures/account/rest-api/Account-Information-V2
  and .../Account-Information-V3 (V3 lists only symbols with a position or open orders).
- ``GET /fapi/v2/balance``, ``GET /fapi/v3/balance``: Futures Account Balance V2 / V3,
  .../account/rest-api/Futures-Account-Balance-V2 and ...-V3.
- ``GET /fapi/v2/positionRisk``, ``GET /fapi/v3/positionRisk``: Position Information V2 / V3,
  .../trade/rest-api/Position-Information-V2 and ...-V3 (V3: only symbols with a position).
- ``POST /fapi/v1/leverage`` (Change Initial Leverage, .../trade/rest-api/Change-Initial-Leverage),
  ``GET /fapi/v1/leverageBracket`` (Notional and Leverage Brackets,
  .../account/rest-api/Notional-and-Leverage-Brackets), ``GET /fapi/v1/commissionRate``
  (User Commission Rate, .../account/rest-api/User-Commission-Rate),
  ``GET|POST /fapi/v1/positionSide/dual`` (Get / Change Position Mode,
  .../account/rest-api/Get-Current-Position-Mode, .../trade/rest-api/Change-Position-Mode).
- ``GET /fapi/v1/ticker/bookTicker`` (Symbol Order Book Ticker,
  .../market-data/rest-api/Symbol-Order-Book-Ticker) from the engine's touch.

The paper account is one-way (``positionSide`` BOTH), cross margin, one asset (the quote of
its symbols); leverage is recorded and reported but margin is not modelled (no liquidation).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from twinfeed.instruments import Instrument
from twinfeed.live.paper_params import ApiError, flag_param, int_param, missing
from twinfeed.matching import MatchingEngine
from twinfeed.portfolio import Portfolio

__all__ = ["AccountEndpoints", "num"]

#: Binance's largest initial leverage; the paper venue's one bracket allows 1..MAX_LEVERAGE.
MAX_LEVERAGE = 125
_NOTIONAL_CAP = 1_000_000_000


def num(value: float) -> str:
    """A float as Binance prints amounts: plain decimal, at most 8 places, no exponent."""
    if value != value:
        return "0"
    text = f"{value:.8f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _fixed(value: float, places: int) -> str:
    return f"{Decimal(repr(value)):.{places}f}"


def _places(step: Decimal) -> int:
    """Decimals of a tick or step as the venue writes it (``0.10`` -> 2)."""
    return max(0, -int(step.as_tuple().exponent))


class AccountEndpoints:
    """Account, position and market-touch endpoints (see the module docstring)."""

    # Provided by PaperVenue.
    _lock: threading.Condition
    _symbols: list[str]
    _now_ns: int
    engine: MatchingEngine
    portfolio: Portfolio
    initial_balance: float
    instruments: dict[str, Instrument] | None
    _leverage: dict[str, int]

    def _symbol(self, params: Mapping[str, str], required: bool = True) -> tuple[str, int] | None:
        raise NotImplementedError

    def _marked(self) -> list[tuple[str, Any, float]]:
        raise NotImplementedError

    def _open_symbols(self) -> set[str]:
        raise NotImplementedError

    # ---- balances ------------------------------------------------------------------------

    def _asset(self) -> str:
        for instrument in (self.instruments or {}).values():
            return instrument.settlement
        return "USDT"

    def _totals(self) -> dict[str, float]:
        positions = self._marked()
        realized = sum(position.realized for _, position, _ in positions)
        fees = sum(position.fees for _, position, _ in positions)
        unrealized = sum(position.unrealized for _, position, _ in positions)
        wallet = self.initial_balance + realized - fees
        initial = sum(
            abs(position.qty * mark) / self._leverage.get(name, 1)
            for name, position, mark in positions
            if mark == mark
        )
        return {
            "wallet": wallet,
            "unrealized": unrealized,
            "margin": wallet + unrealized,
            "available": wallet + unrealized - initial,
            "initial": initial,
            "realized": realized,
            "fees": fees,
        }

    def balance(self, _params: Mapping[str, str]) -> list[dict[str, Any]]:
        """``GET /fapi/v2/balance`` and ``/fapi/v3/balance``."""
        with self._lock:
            totals = self._totals()
            return [
                {
                    "accountAlias": "paper",
                    "asset": self._asset(),
                    "balance": num(totals["wallet"]),
                    "crossWalletBalance": num(totals["wallet"]),
                    "crossUnPnl": num(totals["unrealized"]),
                    "availableBalance": num(totals["available"]),
                    "maxWithdrawAmount": num(totals["available"]),
                    "marginAvailable": True,
                    "updateTime": self._now_ns // 1_000_000,
                }
            ]

    def account(self, params: Mapping[str, str], version: int = 2) -> dict[str, Any]:
        """``GET /fapi/v2/account`` (``version`` 2) and ``/fapi/v3/account`` (3)."""
        with self._lock:
            totals = self._totals()
            now_ms = self._now_ns // 1_000_000
            wallet, unrealized = num(totals["wallet"]), num(totals["unrealized"])
            asset = {
                "asset": self._asset(),
                "walletBalance": wallet,
                "unrealizedProfit": unrealized,
                "marginBalance": num(totals["margin"]),
                "maintMargin": "0",
                "initialMargin": num(totals["initial"]),
                "positionInitialMargin": num(totals["initial"]),
                "openOrderInitialMargin": "0",
                "crossWalletBalance": wallet,
                "crossUnPnl": unrealized,
                "availableBalance": num(totals["available"]),
                "maxWithdrawAmount": num(totals["available"]),
                "marginAvailable": True,
                "updateTime": now_ms,
            }
            open_symbols = self._open_symbols()
            positions = []
            for name, position, mark in self._marked():
                if version == 3 and position.qty == 0 and name not in open_symbols:
                    continue
                leverage = self._leverage.get(name, 1)
                notional = position.qty * mark if mark == mark else 0.0
                row: dict[str, Any] = {
                    "symbol": name,
                    "positionSide": "BOTH",
                    "positionAmt": num(position.qty),
                    "unrealizedProfit": num(position.unrealized),
                    "isolatedMargin": "0",
                    "notional": num(notional),
                    "isolatedWallet": "0",
                    "initialMargin": num(abs(notional) / leverage),
                    "maintMargin": "0",
                    "updateTime": now_ms,
                }
                if version == 2:
                    row.update(
                        {
                            "positionInitialMargin": num(abs(notional) / leverage),
                            "openOrderInitialMargin": "0",
                            "leverage": str(leverage),
                            "isolated": False,
                            "entryPrice": num(position.avg_price if position.units else 0.0),
                            "breakEvenPrice": "0",
                            "maxNotional": str(_NOTIONAL_CAP),
                            "bidNotional": "0",
                            "askNotional": "0",
                        }
                    )
                positions.append(row)
            answer: dict[str, Any] = {
                "totalInitialMargin": num(totals["initial"]),
                "totalMaintMargin": "0",
                "totalWalletBalance": wallet,
                "totalUnrealizedProfit": unrealized,
                "totalMarginBalance": num(totals["margin"]),
                "totalPositionInitialMargin": num(totals["initial"]),
                "totalOpenOrderInitialMargin": "0",
                "totalCrossWalletBalance": wallet,
                "totalCrossUnPnl": unrealized,
                "availableBalance": num(totals["available"]),
                "maxWithdrawAmount": num(totals["available"]),
                "assets": [asset],
                "positions": positions,
            }
            if version == 2:
                answer.update(
                    {
                        "feeTier": 0,
                        "feeBurn": False,
                        "canTrade": True,
                        "canDeposit": False,
                        "canWithdraw": False,
                        "multiAssetsMargin": False,
                        "tradeGroupId": -1,
                        "updateTime": 0,
                        # Not Binance's: the paper account's realized PnL and fees so far.
                        "totalRealizedProfit": num(totals["realized"]),
                        "totalFees": num(totals["fees"]),
                    }
                )
            return answer

    def account_v3(self, params: Mapping[str, str]) -> dict[str, Any]:
        return self.account(params, version=3)

    # ---- positions -----------------------------------------------------------------------

    def position_risk(self, params: Mapping[str, str], version: int = 2) -> list[dict[str, Any]]:
        """``GET /fapi/v2/positionRisk`` (every traded symbol) and ``/fapi/v3/positionRisk``
        (symbols with a position only)."""
        symbol = self._symbol(params, required=False)
        with self._lock:
            rows = []
            for name, position, mark in self._marked():
                if symbol is not None and name != symbol[0]:
                    continue
                if version == 3 and position.qty == 0:
                    continue
                leverage = self._leverage.get(name, 1)
                notional = position.qty * mark if mark == mark else 0.0
                row: dict[str, Any] = {
                    "symbol": name,
                    "positionSide": "BOTH",
                    "positionAmt": num(position.qty),
                    "entryPrice": num(position.avg_price if position.units else 0.0),
                    "breakEvenPrice": num(position.avg_price if position.units else 0.0),
                    "markPrice": num(mark),
                    "unRealizedProfit": num(position.unrealized),
                    "liquidationPrice": "0",
                    "isolatedMargin": "0",
                    "notional": num(notional),
                    "isolatedWallet": "0",
                    "updateTime": self._now_ns // 1_000_000,
                }
                if version == 2:
                    row.update(
                        {
                            "leverage": str(leverage),
                            "maxNotionalValue": str(_NOTIONAL_CAP),
                            "marginType": "cross",
                            "isAutoAddMargin": "false",
                        }
                    )
                else:
                    row.update(
                        {
                            "marginAsset": self._asset(),
                            "initialMargin": num(abs(notional) / leverage),
                            "maintMargin": "0",
                            "positionInitialMargin": num(abs(notional) / leverage),
                            "openOrderInitialMargin": "0",
                            "adl": 0,
                            "bidNotional": "0",
                            "askNotional": "0",
                        }
                    )
                rows.append(row)
            return rows

    def position_risk_v3(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        return self.position_risk(params, version=3)

    # ---- leverage, fees, position mode ---------------------------------------------------

    def change_leverage(self, params: Mapping[str, str]) -> dict[str, Any]:
        """``POST /fapi/v1/leverage``: 1..125, else -4028 "Leverage %s is not valid"."""
        symbol = self._symbol(params)
        assert symbol is not None
        leverage = int_param(params, "leverage", required=True)
        assert leverage is not None
        if not 1 <= leverage <= MAX_LEVERAGE:
            raise ApiError(-4028, f"Leverage {leverage} is not valid")
        with self._lock:
            self._leverage[symbol[0]] = leverage
        return {
            "leverage": leverage,
            "maxNotionalValue": str(_NOTIONAL_CAP),
            "symbol": symbol[0],
        }

    def leverage_bracket(self, params: Mapping[str, str]) -> Any:
        """``GET /fapi/v1/leverageBracket``: one bracket per symbol (margin is not modelled);
        a list, or the one symbol's object when ``symbol`` is sent, as Binance answers."""
        symbol = self._symbol(params, required=False)
        names = [symbol[0]] if symbol is not None else sorted(self.instruments or {})
        entries = [
            {
                "symbol": name,
                "notionalCoef": 1.0,
                "brackets": [
                    {
                        "bracket": 1,
                        "initialLeverage": MAX_LEVERAGE,
                        "notionalCap": _NOTIONAL_CAP,
                        "notionalFloor": 0,
                        "maintMarginRatio": 0.004,
                        "cum": 0.0,
                    }
                ],
            }
            for name in names
        ]
        return entries[0] if symbol is not None else entries

    def commission_rate(self, params: Mapping[str, str]) -> dict[str, Any]:
        """``GET /fapi/v1/commissionRate``: the venue's maker and taker fees."""
        symbol = self._symbol(params)
        assert symbol is not None
        return {
            "symbol": symbol[0],
            "makerCommissionRate": num(self.engine.maker_fee_bps / 10_000),
            "takerCommissionRate": num(self.engine.taker_fee_bps / 10_000),
            "rpiCommissionRate": "0",
        }

    def position_mode(self, _params: Mapping[str, str]) -> dict[str, Any]:
        """``GET /fapi/v1/positionSide/dual``: always one-way."""
        return {"dualSidePosition": False}

    def change_position_mode(self, params: Mapping[str, str]) -> dict[str, Any]:
        """``POST /fapi/v1/positionSide/dual``: one-way stays (-4059 "No need to change
        position side."); hedge mode is refused with -1020 "This operation is not supported."
        (the paper account has one position per symbol)."""
        if not params.get("dualSidePosition"):
            raise missing("dualSidePosition")
        if flag_param(params, "dualSidePosition"):
            raise ApiError(-1020, "This operation is not supported.")
        raise ApiError(-4059, "No need to change position side.")

    # ---- market --------------------------------------------------------------------------

    def book_ticker(self, params: Mapping[str, str]) -> Any:
        """``GET /fapi/v1/ticker/bookTicker`` from the engine's touch (prices and sizes in
        the symbol's tick and step decimals); symbols without a touch yet are left out."""
        symbol = self._symbol(params, required=False)
        with self._lock:
            rows = []
            for index, name in enumerate(self._symbols):
                if symbol is not None and index != symbol[1]:
                    continue
                touch = self.engine.touch(index)
                if touch is None:
                    continue
                instrument = (self.instruments or {}).get(name)
                price_places = _places(instrument.tick_size) if instrument else 8
                qty_places = _places(instrument.step_size) if instrument else 8
                rows.append(
                    {
                        "symbol": name,
                        "bidPrice": _fixed(touch.bid_px, price_places),
                        "bidQty": _fixed(max(touch.bid_qty, 0.0), qty_places),
                        "askPrice": _fixed(touch.ask_px, price_places),
                        "askQty": _fixed(max(touch.ask_qty, 0.0), qty_places),
                        "time": self._now_ns // 1_000_000,
                        "lastUpdateId": touch.update_id,
                    }
                )
        if symbol is not None:
            if not rows:
                raise ApiError(-1112, "No orders on book for symbol.")
            return rows[0]
        return rows
