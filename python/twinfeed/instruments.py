"""Instruments: every symbol's trading rules, from the venue's own exchange information.

One :class:`Instrument` per (venue, symbol) says what the venue accepts and how a position is
valued: market kind (``spot``, ``linear`` USD-margined futures, ``inverse`` coin-margined
futures), base / quote / settlement asset, the price grid (``tickSize``), the quantity grid
(``stepSize``), minimum quantity and notional, contract size and the precisions. Grids are
exact :class:`decimal.Decimal` values; the float helpers (:meth:`Instrument.round_price`, ...)
return the float nearest the decimal on the grid, the float the feature records hold.

Instruments are built from Binance's exchangeInfo answers as they are:

- spot ``GET /api/v3/exchangeInfo``: filters ``PRICE_FILTER`` (``minPrice``, ``maxPrice``,
  ``tickSize``), ``LOT_SIZE`` / ``MARKET_LOT_SIZE`` (``minQty``, ``maxQty``, ``stepSize``),
  ``NOTIONAL`` (``minNotional``, ``maxNotional``) or the older ``MIN_NOTIONAL``
  (``minNotional``); precisions ``baseAssetPrecision`` / ``quoteAssetPrecision``
  (https://developers.binance.com/docs/binance-spot-api-docs/filters);
- USD-M ``GET /fapi/v1/exchangeInfo``: the same ``PRICE_FILTER``, ``LOT_SIZE``,
  ``MARKET_LOT_SIZE`` and ``MIN_NOTIONAL`` with the key ``notional``; ``pricePrecision``,
  ``quantityPrecision``, ``marginAsset``
  (https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Exchange-Information);
- COIN-M ``GET /dapi/v1/exchangeInfo``: ``contractSize`` (USD per contract), ``marginAsset``
  (the coin that settles), ``PRICE_FILTER``, ``LOT_SIZE`` in contracts and no notional filter
  (https://developers.binance.com/docs/derivatives/coin-margined-futures/market-data/Exchange-Information).

Where the rules come from, in order: the ``--instruments FILE`` a command was given (same
shape), then the capture's own ``{"twinfeed":"instruments",...}`` line (the exchangeInfo the
live ingest fetched when it recorded, :func:`instruments_from_capture`), then the table
shipped in the repository (``data/instruments/binance.json``, each symbol with its
``_source``). A symbol found in neither is an :class:`UnknownInstrumentError`
that says so: there is no default tick.

Order checks (:meth:`Instrument.check_order`) answer with Binance's own error codes and
messages (https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code and
the spot API's ``-1013 Filter failure: ...``), so the matching engine, the backtester, the
paper venue and risk refuse the same orders for the same reason.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from decimal import (
    ROUND_CEILING,
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    Decimal,
    InvalidOperation,
    getcontext,
    localcontext,
)
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "BUNDLED_TABLE",
    "VENUES",
    "Instrument",
    "InstrumentTable",
    "Market",
    "OrderRefusal",
    "SymbolInstruments",
    "UnknownInstrumentError",
    "detect_venue",
    "instruments_from_capture",
    "load_table",
    "with_capture_rules",
]

Market = Literal["spot", "linear", "inverse"]
Rounding = Literal["down", "up", "nearest"]

#: Venue name -> (market kind, exchangeInfo path).
VENUES: dict[str, tuple[Market, str]] = {
    "binance-spot": ("spot", "/api/v3/exchangeInfo"),
    "binance-usdm": ("linear", "/fapi/v1/exchangeInfo"),
    "binance-coinm": ("inverse", "/dapi/v1/exchangeInfo"),
}

#: The table shipped with the repository (exchangeInfo shape, one answer per venue).
BUNDLED_TABLE = Path(__file__).resolve().parents[2] / "data" / "instruments" / "binance.json"

_ROUNDING = {"down": ROUND_FLOOR, "up": ROUND_CEILING, "nearest": ROUND_HALF_EVEN}


class UnknownInstrumentError(LookupError):
    """A symbol without known trading rules (never silently given a default tick)."""


@dataclass(frozen=True, slots=True)
class OrderRefusal:
    """Why a venue refuses an order: Binance's ``code`` and ``msg``."""

    code: int
    msg: str

    def __str__(self) -> str:
        return f"{self.code}: {self.msg}"


def _dec(value: Any, where: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError) as error:
        raise ValueError(f"{where}: expected a decimal number, got {value!r}") from error
    if not number.is_finite():
        raise ValueError(f"{where}: expected a finite decimal number, got {value!r}")
    return number


def _places(value: Decimal) -> int:
    """Decimal places of ``value`` (0.010 -> 2, 5 -> 0)."""
    exponent = int(value.normalize().as_tuple().exponent)
    return max(0, -exponent)


# Digits of the quotient a grid check computes exactly; a value further than this from its
# step's scale (a quantity of 1e400 lots) is off every grid the venue has.
_GRID_DIGITS = 400


def _on_grid(value: Decimal, step: Decimal) -> bool:
    """``value`` is a whole number of ``step``s, exactly. The default 28-digit context cannot
    divide 1e308 by 0.001 (InvalidOperation), so the precision follows the operands."""
    if not step:
        return True
    digits = max(value.adjusted() - step.adjusted(), 0) + 2
    if digits > _GRID_DIGITS:
        return False
    if digits <= getcontext().prec:  # every real price and size: no context switch needed
        return value % step == 0
    with localcontext() as context:
        context.prec = max(context.prec, digits)
        return value % step == 0


def _to_decimal(value: float | str | Decimal) -> Decimal:
    # repr of a float is its shortest round-tripping decimal: 61800.1 stays 61800.1.
    if isinstance(value, Decimal):
        return value
    return Decimal(value if isinstance(value, str) else repr(float(value)))


@dataclass(frozen=True)
class Instrument:
    """One symbol's trading rules on one venue (see the module docstring).

    Attributes:
        venue: ``binance-spot``, ``binance-usdm`` or ``binance-coinm``; ``okx`` and
            ``hyperliquid`` from :meth:`from_okx` and :meth:`from_hyperliquid`.
        symbol: The venue's symbol (``BTCUSDT``, ``BTCUSD_PERP``, OKX ``BTC-USDT-SWAP``,
            Hyperliquid ``BTC``).
        market: ``spot``, ``linear`` (USD-M) or ``inverse`` (COIN-M).
        base, quote: Assets of the pair.
        settlement: The asset PnL and fees are paid in (quote for spot and linear, the coin for
            inverse contracts: ``marginAsset``).
        tick_size: Price grid (``PRICE_FILTER.tickSize``).
        step_size: Quantity grid (``LOT_SIZE.stepSize``); contracts for inverse.
        min_qty, max_qty: ``LOT_SIZE`` bounds.
        min_price, max_price: ``PRICE_FILTER`` bounds (0: no bound).
        min_notional: ``MIN_NOTIONAL.notional`` / ``NOTIONAL.minNotional`` (0: none).
        market_step_size, market_min_qty, market_max_qty: ``MARKET_LOT_SIZE`` (defaults to
            LOT_SIZE's when absent or 0).
        contract_size: Quote value of one contract for inverse (``contractSize``, USD); 1 else.
        multiplier: Base units per quantity unit for linear and spot (1 on Binance).
        price_precision, quantity_precision: Decimals the venue accepts.
        source: Where these values came from (provenance).
    """

    venue: str
    symbol: str
    market: Market
    base: str
    quote: str
    settlement: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal = Decimal(0)
    min_price: Decimal = Decimal(0)
    max_price: Decimal = Decimal(0)
    min_notional: Decimal = Decimal(0)
    market_step_size: Decimal = Decimal(0)
    market_min_qty: Decimal = Decimal(0)
    market_max_qty: Decimal = Decimal(0)
    contract_size: Decimal = Decimal(1)
    multiplier: Decimal = Decimal(1)
    price_precision: int = -1
    quantity_precision: int = -1
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.market not in ("spot", "linear", "inverse"):
            raise ValueError(f"{self.symbol}: market must be spot, linear or inverse")
        if self.tick_size <= 0 or self.step_size <= 0:
            raise ValueError(f"{self.venue} {self.symbol}: tickSize and stepSize must be > 0")
        if self.contract_size <= 0 or self.multiplier <= 0:
            raise ValueError(f"{self.venue} {self.symbol}: contractSize must be > 0")
        if self.price_precision < 0:
            object.__setattr__(self, "price_precision", _places(self.tick_size))
        if self.quantity_precision < 0:
            object.__setattr__(self, "quantity_precision", _places(self.step_size))

    # ---- floats for hot paths ----------------------------------------------------------

    @cached_property
    def tick(self) -> float:
        """``tick_size`` as a float."""
        return float(self.tick_size)

    @cached_property
    def lot(self) -> float:
        """``step_size`` as a float."""
        return float(self.step_size)

    @property
    def inverse(self) -> bool:
        return self.market == "inverse"

    @property
    def qty_unit(self) -> str:
        """What a quantity counts: ``contracts`` (inverse) or the base asset."""
        return "contracts" if self.inverse else self.base

    # ---- grids --------------------------------------------------------------------------

    def round_price(self, price: float | str | Decimal, rounding: Rounding = "nearest") -> float:
        """``price`` on the tick grid (down, up or nearest), as the float nearest the decimal."""
        return float(self.price_decimal(price, rounding))

    def price_decimal(
        self, price: float | str | Decimal, rounding: Rounding = "nearest"
    ) -> Decimal:
        value = _to_decimal(price)
        steps = (value / self.tick_size).quantize(Decimal(1), rounding=_ROUNDING[rounding])
        return (steps * self.tick_size).quantize(self.tick_size)

    def round_qty(self, qty: float | str | Decimal, rounding: Rounding = "down") -> float:
        """``qty`` on the step grid (down by default: never bigger than asked), >= 0."""
        value = _to_decimal(qty)
        steps = (value / self.step_size).quantize(Decimal(1), rounding=_ROUNDING[rounding])
        return max(0.0, float((steps * self.step_size).quantize(self.step_size)))

    def on_price_grid(self, price: float | str | Decimal) -> bool:
        return _on_grid(_to_decimal(price), self.tick_size)

    def on_qty_grid(self, qty: float | str | Decimal) -> bool:
        return _on_grid(_to_decimal(qty), self.step_size)

    # ---- value --------------------------------------------------------------------------

    def notional(self, qty: float, price: float) -> float:
        """Quote value of ``qty`` at ``price``: ``qty * price * multiplier`` (linear, spot);
        ``contracts * contract_size`` (inverse: the contract's face value in USD)."""
        if self.market == "inverse":
            return abs(qty) * float(self.contract_size)
        return abs(qty) * price * float(self.multiplier)

    def settlement_value(self, qty: float, price: float) -> float:
        """``notional`` in the settlement asset (inverse: USD face value / price, in coin)."""
        if self.market == "inverse":
            return abs(qty) * float(self.contract_size) / price
        return self.notional(qty, price)

    def pnl(self, qty: float, entry: float, exit_price: float) -> float:
        """PnL of a signed ``qty`` (> 0 long) from ``entry`` to ``exit_price`` in the settlement
        asset: ``qty * (exit - entry)`` linear; ``qty * size * (1/entry - 1/exit)`` inverse."""
        if self.market == "inverse":
            return qty * float(self.contract_size) * (1.0 / entry - 1.0 / exit_price)
        return qty * (exit_price - entry) * float(self.multiplier)

    # ---- order checks -------------------------------------------------------------------

    def check_order(
        self,
        qty: float | str | Decimal,
        price: float | str | Decimal | None = None,
        order_type: str = "limit",
        reference_price: float | None = None,
    ) -> OrderRefusal | None:
        """None if the venue accepts ``qty`` (and ``price`` for limit orders) under these
        rules, else Binance's refusal. ``reference_price`` values a market order's notional
        (the touch); without it the notional check is skipped for market orders."""
        spot = self.market == "spot"
        quantity = _to_decimal(qty)
        if quantity <= 0:
            return OrderRefusal(-4003, "Quantity less than or equal to zero.")
        is_market = order_type == "market"
        step = self.step_size
        min_qty, max_qty = self.min_qty, self.max_qty
        if is_market:
            step = self.market_step_size or step
            min_qty = self.market_min_qty or min_qty
            max_qty = self.market_max_qty or max_qty
        lot_filter = "MARKET_LOT_SIZE" if is_market else "LOT_SIZE"
        if _places(quantity) > self.quantity_precision:
            return OrderRefusal(-1111, "Precision is over the maximum defined for this asset.")
        if not _on_grid(quantity, step):
            if spot:
                return OrderRefusal(-1013, f"Filter failure: {lot_filter}")
            return OrderRefusal(-4023, "Qty not increased by step size.")
        if quantity < min_qty:
            if spot:
                return OrderRefusal(-1013, f"Filter failure: {lot_filter}")
            return OrderRefusal(-4004, "Quantity less than min quantity.")
        if max_qty and quantity > max_qty:
            if spot:
                return OrderRefusal(-1013, f"Filter failure: {lot_filter}")
            return OrderRefusal(-4005, "Quantity greater than max quantity.")
        value: Decimal | None = None
        if not is_market:
            if price is None:
                return OrderRefusal(
                    -1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed."
                )
            value = _to_decimal(price)
            if value <= 0:
                return OrderRefusal(-4013, "Price less than min price.")
            if _places(value) > self.price_precision:
                return OrderRefusal(-1111, "Precision is over the maximum defined for this asset.")
            if not _on_grid(value, self.tick_size):
                if spot:
                    return OrderRefusal(-1013, "Filter failure: PRICE_FILTER")
                return OrderRefusal(-4014, "Price not increased by tick size.")
            if self.min_price and value < self.min_price:
                if spot:
                    return OrderRefusal(-1013, "Filter failure: PRICE_FILTER")
                return OrderRefusal(-4013, "Price less than min price.")
            if self.max_price and value > self.max_price:
                if spot:
                    return OrderRefusal(-1013, "Filter failure: PRICE_FILTER")
                # -4002 PRICE_GREATER_THAN_MAX_PRICE (USD-M error codes page); -4016 is the
                # mark-price multiplier cap.
                return OrderRefusal(-4002, "Price greater than max price.")
        elif reference_price is not None and reference_price == reference_price:
            value = _to_decimal(reference_price)
        if self.min_notional and value is not None and self.market != "inverse":
            notional = quantity * value * self.multiplier
            if notional < self.min_notional:
                if spot:
                    return OrderRefusal(-1013, "Filter failure: NOTIONAL")
                return OrderRefusal(
                    -4164,
                    f"Order's notional must be no smaller than {self.min_notional.normalize():f}"
                    " (unless you choose reduce only).",
                )
        return None

    # ---- exchangeInfo shapes ------------------------------------------------------------

    @classmethod
    def from_exchange_info(
        cls, venue: str, entry: Mapping[str, Any], origin: str = "<exchangeInfo>"
    ) -> Instrument:
        """An instrument from one element of an exchangeInfo answer's ``symbols``."""
        if venue not in VENUES:
            raise ValueError(f"{origin}: unknown venue {venue!r} (known: {', '.join(VENUES)})")
        market = VENUES[venue][0]
        symbol = str(entry.get("symbol", ""))
        if not symbol:
            raise ValueError(f"{origin}: a symbol entry without 'symbol'")
        where = f"{origin}: {venue} {symbol}"
        filters = {f.get("filterType"): f for f in entry.get("filters", [])}
        price_filter = filters.get("PRICE_FILTER")
        lot = filters.get("LOT_SIZE")
        if price_filter is None or lot is None:
            raise ValueError(f"{where}: PRICE_FILTER and LOT_SIZE filters are required")
        market_lot = filters.get("MARKET_LOT_SIZE", {})
        notional = filters.get("MIN_NOTIONAL") or filters.get("NOTIONAL") or {}
        min_notional = notional.get("notional", notional.get("minNotional", 0))
        base = str(entry.get("baseAsset", ""))
        quote = str(entry.get("quoteAsset", ""))
        settlement = str(entry.get("marginAsset", "") or quote)
        if market == "spot":
            price_precision = entry.get("quotePrecision", entry.get("quoteAssetPrecision", -1))
            qty_precision = entry.get("baseAssetPrecision", -1)
            settlement = quote
        else:
            price_precision = entry.get("pricePrecision", -1)
            qty_precision = entry.get("quantityPrecision", -1)
        return cls(
            venue=venue,
            symbol=symbol,
            market=market,
            base=base,
            quote=quote,
            settlement=settlement,
            tick_size=_dec(price_filter.get("tickSize"), f"{where}: PRICE_FILTER.tickSize"),
            step_size=_dec(lot.get("stepSize"), f"{where}: LOT_SIZE.stepSize"),
            min_qty=_dec(lot.get("minQty", 0), f"{where}: LOT_SIZE.minQty"),
            max_qty=_dec(lot.get("maxQty", 0), f"{where}: LOT_SIZE.maxQty"),
            min_price=_dec(price_filter.get("minPrice", 0), f"{where}: PRICE_FILTER.minPrice"),
            max_price=_dec(price_filter.get("maxPrice", 0), f"{where}: PRICE_FILTER.maxPrice"),
            min_notional=_dec(min_notional, f"{where}: MIN_NOTIONAL"),
            market_step_size=_dec(market_lot.get("stepSize", 0), f"{where}: MARKET_LOT_SIZE"),
            market_min_qty=_dec(market_lot.get("minQty", 0), f"{where}: MARKET_LOT_SIZE"),
            market_max_qty=_dec(market_lot.get("maxQty", 0), f"{where}: MARKET_LOT_SIZE"),
            contract_size=_dec(entry.get("contractSize", 1), f"{where}: contractSize"),
            price_precision=int(price_precision),
            quantity_precision=int(qty_precision),
            source=str(entry.get("_source", origin)),
        )

    @classmethod
    def from_okx(cls, entry: Mapping[str, Any], origin: str = "<okx instruments>") -> Instrument:
        """An instrument from one element of OKX's ``GET /api/v5/public/instruments`` ``data``
        (https://www.okx.com/docs-v5/en/#public-data-rest-api-get-instruments).

        ``SPOT``: quantities in the base currency (``lotSz``, ``minSz``). ``SWAP`` and
        ``FUTURES``: quantities in contracts; a ``linear`` contract is ``ctVal`` x ``ctMult``
        of ``ctValCcy`` (the base; PnL in ``settleCcy``), an ``inverse`` one is ``ctVal`` of
        the quote currency (``contract_size``; PnL in the coin ``settleCcy``). The symbol is
        OKX's ``instId``; the feature records name it ``okx:<instId>``.
        """
        inst_id = str(entry.get("instId", ""))
        inst_type = str(entry.get("instType", ""))
        where = f"{origin}: okx {inst_id or '?'}"
        if not inst_id:
            raise ValueError(f"{origin}: an instrument without 'instId'")

        def field_(name: str, default: Any = None) -> Decimal:
            value = entry.get(name, default)
            if value in (None, ""):
                raise ValueError(f"{where}: field {name!r}: expected a decimal string")
            return _dec(value, f"{where}: {name}")

        tick, step, min_qty = field_("tickSz"), field_("lotSz"), field_("minSz")
        max_qty = _dec(entry.get("maxLmtSz") or 0, f"{where}: maxLmtSz")

        def build(
            market: Market,
            base: str,
            quote: str,
            settlement: str,
            contract_size: Decimal = Decimal(1),
            multiplier: Decimal = Decimal(1),
        ) -> Instrument:
            return cls(
                venue="okx",
                symbol=inst_id,
                market=market,
                base=base,
                quote=quote,
                settlement=settlement,
                tick_size=tick,
                step_size=step,
                min_qty=min_qty,
                max_qty=max_qty,
                contract_size=contract_size,
                multiplier=multiplier,
                source=str(entry.get("_source", origin)),
            )

        if inst_type == "SPOT":
            base, quote = str(entry.get("baseCcy", "")), str(entry.get("quoteCcy", ""))
            return build("spot", base, quote, quote)
        if inst_type not in ("SWAP", "FUTURES"):
            raise ValueError(
                f"{where}: field 'instType': expected SPOT, SWAP or FUTURES, got {inst_type!r}"
            )
        base, _, quote = str(entry.get("uly", "") or inst_id).partition("-")
        settlement = str(entry.get("settleCcy", ""))
        contract_value = field_("ctVal")
        if entry.get("ctType") == "inverse":
            return build(
                "inverse", base, quote.split("-")[0], settlement, contract_size=contract_value
            )
        if entry.get("ctType") != "linear":
            raise ValueError(
                f"{where}: field 'ctType': expected linear or inverse, got {entry.get('ctType')!r}"
            )
        return build(
            "linear",
            str(entry.get("ctValCcy", base)),
            quote.split("-")[0],
            settlement,
            multiplier=contract_value * field_("ctMult", "1"),
        )

    @classmethod
    def from_hyperliquid(
        cls, asset: Mapping[str, Any], origin: str = "<hyperliquid meta>"
    ) -> Instrument:
        """A perpetual from one element of Hyperliquid's ``meta`` ``universe``
        (https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint/perpetuals).

        Sizes step by ``10^-szDecimals``. Prices have at most 5 significant figures and at most
        ``6 - szDecimals`` decimals (".../tick-and-lot-size"); the first is not a fixed grid,
        so ``tick_size`` is the decimals rule's ``10^-(6 - szDecimals)``, the finest price the
        venue can accept. Margined and settled in USDC; the feature records name the coin
        ``hyperliquid:<name>``.
        """
        name = str(asset.get("name", ""))
        if not name:
            raise ValueError(f"{origin}: an asset without 'name'")
        decimals = asset.get("szDecimals")
        if not isinstance(decimals, int) or not 0 <= decimals <= 6:
            raise ValueError(
                f"{origin}: hyperliquid {name}: field 'szDecimals': expected an integer 0..6, "
                f"got {decimals!r}"
            )
        step = Decimal(1).scaleb(-decimals)
        return cls(
            venue="hyperliquid",
            symbol=name,
            market="linear",
            base=name,
            quote="USDC",
            settlement="USDC",
            tick_size=Decimal(1).scaleb(-(6 - decimals)),
            step_size=step,
            min_qty=step,
            source=str(asset.get("_source", origin)),
        )

    def to_exchange_info(self) -> dict[str, Any]:
        """This instrument as one element of the venue's exchangeInfo ``symbols``."""

        def text(value: Decimal) -> str:
            return f"{value:f}"

        filters: list[dict[str, Any]] = [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": text(self.min_price),
                "maxPrice": text(self.max_price),
                "tickSize": text(self.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": text(self.min_qty),
                "maxQty": text(self.max_qty),
                "stepSize": text(self.step_size),
            },
        ]
        if self.market_step_size or self.market_min_qty or self.market_max_qty:
            filters.append(
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": text(self.market_min_qty),
                    "maxQty": text(self.market_max_qty),
                    "stepSize": text(self.market_step_size),
                }
            )
        entry: dict[str, Any] = {
            "symbol": self.symbol,
            "status": "TRADING",
            "baseAsset": self.base,
            "quoteAsset": self.quote,
        }
        if self.min_notional:
            if self.market == "spot":
                filters.append({"filterType": "NOTIONAL", "minNotional": text(self.min_notional)})
            else:
                filters.append({"filterType": "MIN_NOTIONAL", "notional": text(self.min_notional)})
        if self.market == "spot":
            entry["baseAssetPrecision"] = self.quantity_precision
            entry["quotePrecision"] = self.price_precision
        else:
            entry["marginAsset"] = self.settlement
            entry["pricePrecision"] = self.price_precision
            entry["quantityPrecision"] = self.quantity_precision
            entry["contractType"] = "PERPETUAL"
        if self.market == "inverse":
            entry["contractSize"] = int(self.contract_size)
        entry["filters"] = filters
        if self.source:
            entry["_source"] = self.source
        return entry

    def describe(self) -> dict[str, Any]:
        """Plain JSON values (decimals as strings): artifacts, run configs, reports."""
        values = asdict(self)
        return {k: (f"{v:f}" if isinstance(v, Decimal) else v) for k, v in values.items()}

    def differences(self, other: Instrument) -> list[str]:
        """Rule fields that differ from ``other`` (``tick_size 0.1 != 0.01``), provenance
        ignored."""
        out = []
        mine, theirs = self.describe(), other.describe()
        for name, value in mine.items():
            if name == "source":
                continue
            if value != theirs.get(name):
                out.append(f"{name} {value} != {theirs.get(name)}")
        return out


class InstrumentTable:
    """Instruments by (venue, symbol); :meth:`get` is the only way to ask, and it refuses
    a symbol it does not know."""

    def __init__(self, instruments: Iterable[Instrument] = (), origin: str = "") -> None:
        self.origin = origin
        self._by_key: dict[tuple[str, str], Instrument] = {}
        #: Where each entry came from (the file or capture it was read from).
        self.origins: dict[tuple[str, str], str] = {}
        for instrument in instruments:
            self._by_key[(instrument.venue, instrument.symbol)] = instrument
            self.origins[(instrument.venue, instrument.symbol)] = origin

    def __len__(self) -> int:
        return len(self._by_key)

    def __iter__(self) -> Any:
        return iter(self._by_key.values())

    def merged(self, other: InstrumentTable) -> InstrumentTable:
        """This table with ``other``'s entries taking precedence."""
        table = InstrumentTable(self, origin=self.origin)
        table.origins = {**self.origins, **other.origins}
        table._by_key.update(other._by_key)
        table.origin = " + ".join(o for o in (other.origin, self.origin) if o)
        return table

    def get(self, symbol: str, venue: str | None = None) -> Instrument:
        """The instrument of ``symbol`` on ``venue`` (or the only venue that lists it)."""
        symbol = symbol.upper()
        if venue is not None:
            found = self._by_key.get((venue, symbol))
            if found is None:
                raise UnknownInstrumentError(
                    f"no trading rules for {symbol} on {venue} in {self.origin or 'the table'}: "
                    "give them with --instruments FILE (exchangeInfo shape)"
                )
            return found
        matches = [i for (v, s), i in self._by_key.items() if s == symbol]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise UnknownInstrumentError(
                f"no trading rules for {symbol} in {self.origin or 'the table'}: give them "
                "with --instruments FILE (exchangeInfo shape)"
            )
        venues = ", ".join(sorted(i.venue for i in matches))
        raise UnknownInstrumentError(f"{symbol} is listed on several venues ({venues}): name one")

    def resolve(self, symbols: Iterable[str], venue: str | None) -> list[Instrument]:
        return [self.get(symbol, venue) for symbol in symbols]

    def exchange_info(self, venue: str) -> dict[str, Any]:
        """The venue's exchangeInfo answer for the instruments of this table."""
        return {
            "timezone": "UTC",
            "serverTime": 0,
            "rateLimits": [],
            "exchangeFilters": [],
            "symbols": [i.to_exchange_info() for (v, _), i in self._by_key.items() if v == venue],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], origin: str) -> InstrumentTable:
        """From ``{"binance-usdm": <exchangeInfo answer>, "binance-spot": ..., ...}``; keys
        starting with ``_`` (provenance notes) are ignored."""
        instruments = []
        for venue, answer in data.items():
            if venue.startswith("_"):
                continue
            if venue not in VENUES:
                raise ValueError(f"{origin}: unknown venue {venue!r} (known: {', '.join(VENUES)})")
            if not isinstance(answer, Mapping) or not isinstance(answer.get("symbols"), list):
                raise ValueError(f"{origin}: {venue}: expected an exchangeInfo answer with symbols")
            for entry in answer["symbols"]:
                instruments.append(Instrument.from_exchange_info(venue, entry, origin))
        return cls(instruments, origin=origin)

    def to_json(self) -> dict[str, Any]:
        venues = sorted({v for v, _ in self._by_key})
        return {venue: self.exchange_info(venue) for venue in venues}


def load_table(path: str | os.PathLike[str] | None = None) -> InstrumentTable:
    """The shipped table, with the entries of ``path`` (an ``--instruments`` file) over it."""
    table = _read(BUNDLED_TABLE)
    if path is not None:
        table = table.merged(_read(Path(path)))
    return table


#: The frame start of the ingest's instruments line (see the README's capture format).
INSTRUMENTS_LINE_PREFIX = b'{"twinfeed":"instruments"'

_CAPTURE_MARKETS = {"spot": "binance-spot", "usdm": "binance-usdm", "coinm": "binance-coinm"}


def instruments_from_capture(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
) -> InstrumentTable | None:
    """The trading rules a capture recorded: the newest ``{"twinfeed":"instruments",
    "market":...,"data":<exchangeInfo>}`` line of its files (plain, gzip or zstd; with several
    files, the newest file that has one), or None when it has none (as hftbacktest captures).

    Each instrument's ``source`` names the file and line. Errors name the file, line and field.
    """
    from twinfeed import _features
    from twinfeed.capture import capture_files

    files: list[str | os.PathLike[str]] = []
    for path in [paths] if isinstance(paths, str | os.PathLike) else list(paths):
        files += capture_files(Path(path)) if Path(path).is_dir() else [path]
    for path in reversed(files):
        if isinstance(path, str) and "://" in path and not Path(path).exists():
            continue  # an fsspec URL: not scanned (the shipped table or --instruments rule it)
        found = _features.last_capture_line_with(path, INSTRUMENTS_LINE_PREFIX)
        if found is None:
            continue
        number, line = found
        where = f"{os.fspath(path)}: line {number}"
        _, _, frame = line.partition(b" ")
        try:
            data = json.loads(frame)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: instruments line is not JSON: {error.msg}") from error
        market = data.get("market") if isinstance(data, dict) else None
        venue = _CAPTURE_MARKETS.get(market) if isinstance(market, str) else None
        if venue is None:
            raise ValueError(
                f"{where}: field `market`: expected one of {', '.join(_CAPTURE_MARKETS)}, "
                f"got {market!r}"
            )
        answer = data.get("data")
        if not isinstance(answer, Mapping) or not isinstance(answer.get("symbols"), list):
            raise ValueError(f"{where}: field `data`: expected an exchangeInfo answer with symbols")
        origin = f"capture {where} (instruments line)"
        return InstrumentTable(
            [Instrument.from_exchange_info(venue, entry, origin) for entry in answer["symbols"]],
            origin=origin,
        )
    return None


def with_capture_rules(
    table: InstrumentTable, paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
) -> InstrumentTable:
    """``table`` with the capture's own rules (:func:`instruments_from_capture`) over the
    entries it took from the shipped table; an ``--instruments`` file's entries stay first.
    ``table.origin`` then says which sources were used."""
    captured = instruments_from_capture(paths)
    if captured is None:
        return table
    bundled = str(BUNDLED_TABLE)
    keep = InstrumentTable(origin=table.origin)
    for key, instrument in table._by_key.items():
        if table.origins.get(key) != bundled or key not in captured._by_key:
            keep._by_key[key] = instrument
            keep.origins[key] = table.origins.get(key, table.origin)
    over = InstrumentTable(
        [i for k, i in captured._by_key.items() if k not in keep._by_key],
        origin=captured.origin,
    )
    return keep.merged(over)


def _read(path: Path) -> InstrumentTable:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: line {error.lineno}: not JSON: {error.msg}") from error
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected an object of venue -> exchangeInfo answer")
    return InstrumentTable.from_json(data, str(path))


def detect_venue(frames: Iterable[bytes | str]) -> str | None:
    """The Binance venue the frames of a capture come from, or None if they don't say.

    COIN-M symbols carry an underscore (``BTCUSD_PERP``) and their events a pair ``ps``;
    futures depth diffs carry ``pu``, spot ones don't; spot bookTickers have no ``e``.
    """
    futures = spot = False
    for frame in frames:
        text = frame.decode(errors="replace") if isinstance(frame, bytes) else frame
        if '"ps":"' in text or '_PERP"' in text or "_perp@" in text:
            return "binance-coinm"
        if '"pu":' in text or '"e":"bookTicker"' in text:
            futures = True
        elif '"e":"depthUpdate"' in text or ('"u":' in text and '"A":"' in text):
            spot = True
    if futures:
        return "binance-usdm"
    if spot:
        return "binance-spot"
    return None


class SymbolInstruments:
    """The instruments of one run, by record ``symbol_id`` and by name.

    ``symbols`` is the run's symbol list (index = ``symbol_id``) or a callable returning it as
    the pipeline learns symbols (a backtest knows a symbol once its first record was decoded,
    which is before any strategy can trade it). ``fixed`` instruments (from an artifact or an
    ``--instruments`` file) win over the table. Without any symbols (records built in memory)
    :attr:`enforced` is False and order checks are skipped; asking for an instrument is still
    an :class:`UnknownInstrumentError`.
    """

    def __init__(
        self,
        table: InstrumentTable | None,
        venue: str | None,
        symbols: Sequence[str] | Callable[[], Sequence[str]] | None,
        fixed: Iterable[Instrument] = (),
    ) -> None:
        self.table = table
        self.venue = venue
        self._symbols = symbols
        self._fixed = {i.symbol: i for i in fixed}
        self._by_id: dict[int, Instrument] = {}

    @property
    def enforced(self) -> bool:
        return self._symbols is not None or bool(self._fixed)

    def symbols(self) -> list[str]:
        source = self._symbols
        if source is None:
            return list(self._fixed)
        return list(source() if callable(source) else source)

    def by_name(self, name: str) -> Instrument:
        found = self._fixed.get(name.upper())
        if found is not None:
            return found
        if self.table is None:
            raise UnknownInstrumentError(f"no trading rules for {name}: no instrument table")
        return self.table.get(name, self.venue)

    def by_id(self, symbol_id: int) -> Instrument:
        found = self._by_id.get(symbol_id)
        if found is not None:
            return found
        symbols = self.symbols()
        if not 0 <= symbol_id < len(symbols):
            raise UnknownInstrumentError(
                f"symbol_id {symbol_id}: the run knows symbols {symbols} only"
            )
        found = self._by_id[symbol_id] = self.by_name(symbols[symbol_id])
        return found

    def get(self, symbol: int | str | None = None, primary: int = 0) -> Instrument:
        if symbol is None:
            return self.by_id(primary)
        if isinstance(symbol, str):
            return self.by_name(symbol)
        return self.by_id(int(symbol))

    def maybe(self, symbol_id: int) -> Instrument | None:
        """The instrument, or None when the run checks no rules (in-memory records) or has not
        seen ``symbol_id`` yet; raises for a known symbol without rules."""
        if not self.enforced:
            return None
        found = self._by_id.get(symbol_id)
        if found is not None:
            return found
        if not 0 <= symbol_id < len(self.symbols()):
            return None
        return self.by_id(symbol_id)

    def resolved(self) -> list[Instrument]:
        """Every instrument of the run's symbols (raises for one without rules)."""
        return [self.by_name(name) for name in self.symbols()]


def capture_venue(paths: Sequence[str | os.PathLike[str]]) -> str | None:
    """The Binance venue a capture was recorded from (its first lines tell), or None."""
    from twinfeed.capture import head_frames

    for path in paths:
        venue = detect_venue(head_frames(path))
        if venue is not None:
            return venue
    return None


def capture_symbols(paths: Sequence[str | os.PathLike[str]], config: Any = None) -> list[str]:
    """The symbols of a capture in ``symbol_id`` order, as the pipeline numbers them (one pass
    of the binding over the capture)."""
    from twinfeed import _features

    run = _features.FeatureRun([str(p) for p in paths], config)
    while run.next_records(1 << 16) is not None:
        pass
    return list(run.symbols())
