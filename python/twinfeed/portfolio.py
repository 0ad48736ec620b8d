"""Portfolio accounting: positions, average cost, realized and unrealized PnL, fees.

Shared by the backtester and the live brain. Linear instruments (spot, USD-margined futures):
PnL is quote currency, ``qty * (exit - entry)``. Average cost is the quantity-weighted entry
price of the open position; reducing a position realizes against it, and flipping through zero
realizes the closed part and opens the rest at the fill price. Fees are kept apart from
realized PnL (negative fees are rebates). Funding is not modelled.

Inverse instruments (coin-margined contracts, :class:`twinfeed.instruments.Instrument` with
``market == "inverse"``): a quantity counts contracts of ``contract_size`` USD each; PnL is in the
settlement coin, ``contracts * size * (1/entry - 1/exit)``; the average entry is the harmonic
(contract-weighted mean of ``1/price``) one; ``notional`` is the USD face value traded
(``contracts * size``) and fees come in coin from the matching engine. ``Position.currency``
names the unit of a position's PnL and fees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from twinfeed.orders import Fill
from twinfeed.strategy import PnL

if TYPE_CHECKING:
    from twinfeed.instruments import SymbolInstruments

__all__ = ["Portfolio", "Position"]


@dataclass(slots=True)
class Position:
    """One symbol's position.

    Attributes:
        symbol: Symbol id.
        units: Signed quantity in exact 1e-8 units (``qty`` is its float view).
        avg_price: Average entry price of the open quantity (NaN when flat).
        realized: Realized PnL before fees.
        fees: Fees paid (negative = rebates).
        mark: Last mark price (NaN until marked).
        volume: Base quantity traded.
        notional: Quote notional traded.
        fills: Number of fills.
        contract_size: USD per contract of an inverse instrument (0: linear).
        currency: The unit of ``realized``, ``unrealized`` and ``fees`` ("" if unknown).
    """

    symbol: int
    units: int = 0
    avg_price: float = float("nan")
    realized: float = 0.0
    fees: float = 0.0
    mark: float = float("nan")
    volume: float = 0.0
    notional: float = 0.0
    fills: int = 0
    contract_size: float = 0.0
    currency: str = ""

    @property
    def qty(self) -> float:
        """Signed quantity (> 0 long)."""
        return self.units / 1e8

    @property
    def unrealized(self) -> float:
        """Mark-to-market of the open quantity (0 when flat or not yet marked)."""
        if self.units == 0 or self.mark != self.mark:
            return 0.0
        if self.contract_size:
            return self.qty * self.contract_size * (1.0 / self.avg_price - 1.0 / self.mark)
        return self.qty * (self.mark - self.avg_price)

    @property
    def total(self) -> float:
        """``realized + unrealized - fees``."""
        return self.realized + self.unrealized - self.fees

    def apply(self, side_sign: int, price: float, qty: float, fee: float) -> None:
        """Books one fill of ``qty`` at ``price`` in direction ``side_sign`` (+1 buy)."""
        units = round(qty * 1e8)
        size = self.contract_size
        self.fees += fee
        self.volume += qty
        self.notional += qty * size if size else price * qty
        self.fills += 1
        held = abs(self.units)
        if self.units == 0 or (self.units > 0) == (side_sign > 0):
            if held == 0:
                self.avg_price = price
            elif size:  # harmonic: the entry whose 1/price is the contract-weighted mean
                self.avg_price = (held + units) / (held / self.avg_price + units / price)
            else:
                self.avg_price = (self.avg_price * held + price * units) / (held + units)
            self.units += side_sign * units
            return
        closed = min(units, held)
        direction = 1.0 if self.units > 0 else -1.0
        if size:
            self.realized += closed / 1e8 * size * (1.0 / self.avg_price - 1.0 / price) * direction
        else:
            self.realized += closed / 1e8 * (price - self.avg_price) * direction
        before = self.units
        self.units += side_sign * units
        if self.units == 0:
            self.avg_price = float("nan")
        elif (self.units > 0) != (before > 0):
            self.avg_price = price


class Portfolio:
    """Positions of every symbol a run traded, plus totals.

    Usage::

        portfolio = Portfolio()
        portfolio.apply(fill)          # each Fill from the matching engine or the venue
        portfolio.mark(symbol, mid)    # mark-to-market
        portfolio.pnl().total
    """

    def __init__(self, instruments: SymbolInstruments | None = None) -> None:
        self.positions: dict[int, Position] = {}
        self.instruments = instruments

    def position(self, symbol: int) -> Position:
        """The symbol's position (created flat on first use)."""
        position = self.positions.get(symbol)
        if position is None:
            position = self.positions[symbol] = Position(symbol)
            instrument = None
            if self.instruments is not None:
                try:
                    instrument = self.instruments.maybe(symbol)
                except LookupError:  # no rules for it: valued as linear, currency unknown
                    instrument = None
            if instrument is not None:
                position.currency = instrument.settlement
                if instrument.inverse:
                    position.contract_size = float(instrument.contract_size)
        return position

    @property
    def currency(self) -> str:
        """The unit of :meth:`pnl` (the settlement asset of every position), or ``mixed``."""
        currencies = {p.currency for p in self.positions.values() if p.currency}
        if len(currencies) > 1:
            return "mixed"
        return currencies.pop() if currencies else ""

    def apply(self, fill: Fill) -> Position:
        """Books a fill; returns the updated position."""
        position = self.position(fill.symbol)
        if not position.currency and self.instruments is not None:
            # Created before the run knew the symbol (e.g. read in on_start): learn it now.
            try:
                instrument = self.instruments.maybe(fill.symbol)
            except LookupError:
                instrument = None
            if instrument is not None:
                position.currency = instrument.settlement
                if instrument.inverse:
                    position.contract_size = float(instrument.contract_size)
        position.apply(1 if fill.side == "buy" else -1, fill.price, fill.qty, fill.fee)
        if position.mark != position.mark:
            position.mark = fill.price
        return position

    def mark(self, symbol: int, price: float) -> None:
        """Sets the mark price of a symbol (ignored if NaN)."""
        if price == price:
            self.position(symbol).mark = price

    def pnl(self) -> PnL:
        """Totals over all symbols."""
        realized = unrealized = fees = 0.0
        for position in self.positions.values():
            realized += position.realized
            unrealized += position.unrealized
            fees += position.fees
        return PnL(realized, unrealized, fees)

    def equity(self) -> float:
        """Total PnL net of fees (the run starts at 0)."""
        return self.pnl().total
