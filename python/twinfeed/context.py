"""The one strategy :class:`twinfeed.strategy.Context` base of the backtester and the live runner.

:class:`ContextBase` does everything a strategy's call means, once: client id generation,
the default symbol (the run's primary symbol), the order's construction and its validation
(:func:`twinfeed.orders.validate`; an invalid order is refused at once, with the reason, and
never reaches a venue). What a request then does is the runner's business: each runner
supplies one sink, :meth:`ContextBase._request`, through which every strategy request passes
as a :class:`Request` (the backtester hands it to the matching engine, the live runner to risk,
the OMS and the venue port), plus the read side (position, PnL, open orders, instruments).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from twinfeed.instruments import Instrument, SymbolInstruments
from twinfeed.orders import Order, OrderType, Side, TimeInForce, validate
from twinfeed.strategy import PnL

__all__ = ["ContextBase", "Request", "RequestAction"]

RequestAction = Literal["submit", "cancel", "cancel_all", "replace"]


@dataclass(frozen=True, slots=True)
class Request:
    """One strategy request, as a context hands it to its runner.

    Attributes:
        action: ``submit``, ``cancel``, ``cancel_all`` or ``replace``.
        ts_ns: Event time of the request (``ctx.now_ns``).
        client_id: The order (empty for ``cancel_all``).
        order: For ``submit``: the new order (state ``new``).
        refusal: For ``submit``: why the order is invalid ("" if it is valid); the runner
            records it rejected with this reason and sends nothing.
        symbol: For ``cancel_all``: the symbol, or None for every symbol.
        price: For ``replace``: the new limit price.
        qty: For ``replace``: the new total quantity.
    """

    action: RequestAction
    ts_ns: int
    client_id: str = ""
    order: Order | None = None
    refusal: str = ""
    symbol: int | None = None
    price: float = 0.0
    qty: float = 0.0


class ContextBase:
    """A :class:`twinfeed.strategy.Context` less its sink and read side (see the module
    docstring). Runners set :attr:`now` (event time) before each callback.

    Args:
        params: The strategy's merged parameters.
        instruments: The run's trading rules (``ctx.instrument``).
        primary_symbol: The record ``symbol_id`` a call without ``symbol`` means.
    """

    def __init__(
        self,
        params: Mapping[str, Any],
        instruments: SymbolInstruments,
        primary_symbol: int = 0,
    ) -> None:
        self._params = params
        self._instruments = instruments
        self.primary_symbol = primary_symbol
        #: Event time of the latest data the strategy has seen.
        self.now = 0
        #: Generated client ids are ``<id_prefix><n>``.
        self.id_prefix = "o"
        self._next_id = 0

    # ---- what a runner supplies ---------------------------------------------------------

    def _request(self, request: Request) -> list[str]:
        """Carries out one request; for ``cancel_all`` returns the ids it cancels."""
        raise NotImplementedError

    def _position(self, symbol: int) -> float:
        raise NotImplementedError

    def pnl(self) -> PnL:
        """See :meth:`twinfeed.strategy.Context.pnl`."""
        raise NotImplementedError

    def open_orders(self, symbol: int | None = None) -> list[Order]:
        """See :meth:`twinfeed.strategy.Context.open_orders`."""
        raise NotImplementedError

    # ---- the Context API ----------------------------------------------------------------

    @property
    def now_ns(self) -> int:
        """Event time of the latest data the strategy has seen."""
        return self.now

    @property
    def params(self) -> Mapping[str, Any]:
        """The strategy's merged parameters."""
        return self._params

    def submit(
        self,
        side: Side,
        qty: float,
        price: float | None = None,
        type: OrderType = "limit",
        tif: TimeInForce = "GTC",
        client_id: str | None = None,
        symbol: int | None = None,
        *,
        reduce_only: bool = False,
        good_till_ms: int | None = None,
    ) -> str:
        """See :meth:`twinfeed.strategy.Context.submit`."""
        if client_id is None:
            self._next_id += 1
            client_id = f"{self.id_prefix}{self._next_id}"
        if good_till_ms is not None and tif == "GTC":
            tif = "GTD"  # a date makes a resting order good-till-date, as Binance's API does
        order = Order(
            client_id,
            self.primary_symbol if symbol is None else symbol,
            side,
            float(qty),
            None if type == "market" else price,
            type=type,
            tif=tif,
            submit_ns=self.now,
            reduce_only=bool(reduce_only),
            good_till_ms=0 if good_till_ms is None else int(good_till_ms),
        )
        self._request(Request("submit", self.now, client_id, order=order, refusal=validate(order)))
        return client_id

    def cancel(self, client_id: str) -> None:
        """See :meth:`twinfeed.strategy.Context.cancel`."""
        self._request(Request("cancel", self.now, client_id))

    def cancel_all(self, symbol: int | None = None) -> list[str]:
        """See :meth:`twinfeed.strategy.Context.cancel_all`."""
        return self._request(Request("cancel_all", self.now, symbol=symbol))

    def replace(self, client_id: str, price: float, qty: float) -> None:
        """See :meth:`twinfeed.strategy.Context.replace`."""
        self._request(Request("replace", self.now, client_id, price=float(price), qty=float(qty)))

    def position(self, symbol: int | None = None) -> float:
        """See :meth:`twinfeed.strategy.Context.position`."""
        return self._position(self.primary_symbol if symbol is None else symbol)

    def instrument(self, symbol: int | str | None = None) -> Instrument:
        """See :meth:`twinfeed.strategy.Context.instrument`."""
        return self._instruments.get(symbol, self.primary_symbol)
