"""Binance USD-M's wire format, both directions, in one place.

Order status, side, type and time in force between the domain (:mod:`twinfeed.orders`) and
Binance; execution reports from REST order objects (``POST/DELETE/GET /fapi/v1/order``, the
WebSocket API's ``order.*`` results) and from user-stream ``ORDER_TRADE_UPDATE`` events; fills
from ``/fapi/v1/userTrades``. The client reads with these tables and the paper venue
(:mod:`twinfeed.live.paper_venue`) writes with the same ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from twinfeed.live.brain.oms import ExecutionReport
from twinfeed.orders import OrderState
from twinfeed.venues.port import VenueFill, VenueOrder

__all__ = [
    "EXECUTION_OF_STATE",
    "OrderCalls",
    "SIDES",
    "STATE_OF_STATUS",
    "STATUS_OF_STATE",
    "TYPES",
    "fill_from_user_trade",
    "modify_params",
    "on_grid",
    "order_params",
    "order_from_rest",
    "report_from_order",
    "report_from_stream_event",
]

#: Domain order state -> Binance order ``status`` (what the venue writes).
STATUS_OF_STATE: dict[OrderState, str] = {
    "new": "NEW",
    "acked": "NEW",
    "partially_filled": "PARTIALLY_FILLED",
    "filled": "FILLED",
    "cancelled": "CANCELED",
    "expired": "EXPIRED",
    "rejected": "REJECTED",
}
#: Binance order ``status`` -> domain state (what the client reads): the table above read
#: backwards (NEW is "acked": the venue has it), plus the spellings only Binance sends.
STATE_OF_STATUS: dict[str, OrderState] = {
    **{status: state for state, status in STATUS_OF_STATE.items() if state != "new"},
    "CANCELLED": "cancelled",
    "EXPIRED_IN_MATCH": "expired",
}
#: Domain state of an order update -> ``ORDER_TRADE_UPDATE`` execution type (``x``), for the
#: updates that are not trades.
EXECUTION_OF_STATE: dict[OrderState, str] = {
    "acked": "NEW",
    "cancelled": "CANCELED",
    "expired": "EXPIRED",
    "rejected": "REJECTED",
}
SIDES = {"buy": "BUY", "sell": "SELL"}
TYPES = {"limit": "LIMIT", "market": "MARKET"}


def _ms_to_ns(value: Any) -> int:
    return int(value) * 1_000_000 if value is not None else 0


def on_grid(value: float | str, step: Decimal | float | str | None) -> str:
    """``value`` rounded to the nearest multiple of ``step`` (a tick or lot size; halves away
    from zero), written with exactly the step's decimals; without a step, up to 8 decimals.
    Text is taken as already formatted by the caller."""
    if isinstance(value, str):
        return value
    if not step:
        text = f"{value:.8f}".rstrip("0")
        return text + "0" if text.endswith(".") else text
    grid = Decimal(str(step))
    return str((Decimal(repr(value)) / grid).quantize(Decimal(1), ROUND_HALF_UP) * grid)


def order_params(
    symbol: str,
    side: str,
    quantity: float | str,
    price: float | str | None = None,
    *,
    type: str = "LIMIT",  # noqa: A002 - Binance's parameter name
    time_in_force: str | None = None,
    client_order_id: str | None = None,
    reduce_only: bool | None = None,
    good_till_date: int | None = None,
) -> dict[str, Any]:
    """The parameters of a new order (REST ``POST /fapi/v1/order`` and the WebSocket API's
    ``order.place`` take the same): LIMIT defaults to GTC, a ``good_till_date`` (ms) makes
    it GTD, and the answer is the order after matching (``newOrderRespType=RESULT``).
    Numbers given as floats are written with up to 8 decimals: pass text from
    :func:`on_grid` to send them on the instrument's grid."""
    kind = type.upper()
    if good_till_date is not None and time_in_force is None:
        time_in_force = "GTD"
    if kind == "LIMIT" and time_in_force is None:
        time_in_force = "GTC"
    params: dict[str, Any] = {
        "symbol": symbol,
        "side": side.upper(),
        "type": kind,
        "timeInForce": time_in_force,
        "quantity": on_grid(quantity, None),
        "price": None if price is None else on_grid(price, None),
        "newClientOrderId": client_order_id,
        "reduceOnly": reduce_only,
        "goodTillDate": good_till_date,
        "newOrderRespType": "RESULT",
    }
    return {key: value for key, value in params.items() if value is not None}


def modify_params(
    client: Any,
    symbol: str,
    *,
    quantity: float | str,
    price: float | str,
    client_order_id: str | None = None,
    order_id: int | None = None,
    side: str | None = None,
) -> dict[str, Any]:
    """The parameters of a modify (REST ``PUT /fapi/v1/order``, WebSocket API
    ``order.modify``). Binance requires the order's ``side``: when not given it is asked of
    ``client`` (its ``order`` query)."""
    if side is None:
        side = client.order(symbol, client_order_id=client_order_id, order_id=order_id)["side"]
    params = {
        "symbol": symbol,
        "origClientOrderId": client_order_id,
        "orderId": order_id,
        "side": side,
        "quantity": on_grid(quantity, None),
        "price": on_grid(price, None),
    }
    return {key: value for key, value in params.items() if value is not None}


class OrderCalls:
    """New, cancel, query and modify of one order, for any transport that implements
    :meth:`order_call` (REST: ``POST|DELETE|GET|PUT /fapi/v1/order``; the WebSocket API:
    ``order.place|cancel|status|modify``): the parameters are built here once."""

    def order_call(self, action: str, params: Mapping[str, Any]) -> Any:
        """Sends ``action`` (``place``, ``cancel``, ``status``, ``modify``) with ``params``."""
        raise NotImplementedError

    def new_order(
        self,
        symbol: str,
        side: str,
        quantity: float | str,
        price: float | str | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """A new order (options: :func:`order_params`); the order after matching."""
        return dict(
            self.order_call("place", order_params(symbol, side, quantity, price, **options))
        )

    def cancel(
        self, symbol: str, *, client_order_id: str | None = None, order_id: int | None = None
    ) -> dict[str, Any]:
        """Cancels one order by client order id or order id; returns the order."""
        return dict(self.order_call("cancel", _order_ref(symbol, client_order_id, order_id)))

    def order(
        self, symbol: str, *, client_order_id: str | None = None, order_id: int | None = None
    ) -> dict[str, Any]:
        """One order's state."""
        return dict(self.order_call("status", _order_ref(symbol, client_order_id, order_id)))

    def modify(self, symbol: str, **options: Any) -> dict[str, Any]:
        """A resting LIMIT order's price and quantity in place (options:
        :func:`modify_params`; ``side`` is looked up with :meth:`order` when not given)."""
        return dict(self.order_call("modify", modify_params(self, symbol, **options)))


def _order_ref(symbol: str, client_order_id: str | None, order_id: int | None) -> dict[str, Any]:
    params = {"symbol": symbol, "origClientOrderId": client_order_id, "orderId": order_id}
    return {key: value for key, value in params.items() if value is not None}


def report_from_order(body: Mapping[str, Any]) -> ExecutionReport:
    """An ExecutionReport from a REST order object (or a WebSocket API ``order.*`` result)."""
    state = STATE_OF_STATUS.get(str(body.get("status", "NEW")), "acked")
    ts = body.get("updateTime") or body.get("transactTime") or body.get("time")
    return ExecutionReport(
        client_id=str(body["clientOrderId"]),
        state=state,
        ts_ns=_ms_to_ns(ts),
        cum_qty=float(body.get("executedQty") or body.get("cumQty") or 0.0),
        venue_order_id=int(body["orderId"]) if body.get("orderId") is not None else None,
    )


def order_from_rest(body: Mapping[str, Any]) -> VenueOrder:
    """A :class:`VenueOrder` from a REST order object (``openOrders``, ``GET order``)."""
    return VenueOrder(str(body["symbol"]), report_from_order(body))


def report_from_stream_event(event: Mapping[str, Any]) -> ExecutionReport | None:
    """An ExecutionReport from a user-stream ``ORDER_TRADE_UPDATE`` (None for other events:
    ``ACCOUNT_UPDATE``, ``listenKeyExpired``). Binance's events carry no sequence number
    (``seq`` stays None unless an event has ``seq``/``sequence``/``u``); a repeated trade is
    recognised by its trade id, a repeated status by its rank (see the OMS)."""
    if event.get("e") != "ORDER_TRADE_UPDATE":
        return None
    order = event["o"]
    state = STATE_OF_STATUS.get(str(order.get("X")))
    if state is None:
        return None
    seq = event.get("seq", event.get("sequence", event.get("u")))
    trade = order.get("x") == "TRADE" and float(order.get("l") or 0) > 0
    fee = float(order.get("n") or 0.0) if trade else 0.0
    return ExecutionReport(
        client_id=str(order["c"]),
        state=state,
        ts_ns=int(event["ns"])
        if event.get("ns") is not None
        else _ms_to_ns(order.get("T") or event.get("T") or event.get("E")),
        cum_qty=float(order.get("z") or 0.0),
        seq=int(seq) if seq is not None else None,
        trade_id=int(order["t"]) if trade else None,
        last_qty=float(order["l"]) if trade else 0.0,
        last_price=float(order["L"]) if trade else 0.0,
        fee=fee,
        liquidity="maker" if order.get("m") else "taker",
        venue_order_id=int(order["i"]) if order.get("i") is not None else None,
        reason=str(order.get("reason", "")) if state in ("rejected", "expired") else "",
    )


def fill_from_user_trade(trade: Mapping[str, Any], client_id: str) -> VenueFill:
    """A :class:`VenueFill` from a ``/fapi/v1/userTrades`` row (which names the order by
    its venue id only: ``client_id`` is looked up by the caller)."""
    return VenueFill(
        trade_id=int(trade["id"]),
        venue_order_id=int(trade["orderId"]),
        client_id=client_id,
        symbol=str(trade["symbol"]),
        side="buy" if str(trade["side"]).upper() == "BUY" else "sell",
        price=float(trade["price"]),
        qty=float(trade["qty"]),
        fee=float(trade.get("commission") or 0.0),
        liquidity="maker" if trade.get("maker") else "taker",
        ts_ns=int(trade["time"]) * 1_000_000,
    )
