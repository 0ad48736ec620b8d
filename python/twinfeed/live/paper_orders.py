"""Order entry of the paper venue: new, test, modify, batch, cancel and query (a mixin of
:class:`twinfeed.live.paper_venue.PaperVenue`, which holds the state and the engine).

Orders are read as Binance USD-M reads them (New Order (TRADE),
https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/New-Order;
Modify Order, Place / Modify / Cancel Multiple Orders, Query Order, Query Current Open Order,
All Orders, Account Trade List: the pages next to it) and refused with the codes of the error
codes page (https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from twinfeed.instruments import Instrument
from twinfeed.live.paper_ledger import PaperLedger
from twinfeed.live.paper_params import (
    ApiError,
    check_characters,
    client_order_id,
    decimal_param,
    flag_param,
    int_param,
    missing,
)
from twinfeed.matching import GTD_EXPIRED, REDUCE_ONLY_EXPIRED, MatchingEngine
from twinfeed.matching_state import price_key
from twinfeed.orders import Event, Order
from twinfeed.portfolio import Portfolio

__all__ = ["JournalEntry", "OrderEndpoints", "SymbolRules"]

_GTX_CROSS = "post-only would cross"
_FOK_KILLED = "FOK: could not fill entirely"
#: goodTillDate bounds: "greater than the current time plus 600 seconds and smaller than
#: 253402300799000" (-5040 FUTURE_GOOD_TILL_DATE, error codes page).
_GTD_MIN_AHEAD_MS = 600_000
_GTD_MAX_MS = 253_402_300_799_000
#: batchOrders: "Max 5 orders" (Place Multiple Orders, .../trade/rest-api/Place-Multiple-Orders;
#: Modify Multiple Orders: "Max 5 orders"; Cancel Multiple Orders: "max length 10").
MAX_BATCH_ORDERS = 5
MAX_BATCH_CANCELS = 10
_missing = missing


@dataclass(frozen=True)
class SymbolRules:
    """Price and quantity grids (Binance ``PRICE_FILTER.tickSize``, ``LOT_SIZE.stepSize``).

    Superseded by ``instruments`` (:class:`twinfeed.instruments.Instrument`); used only when a
    caller passes ``rules`` and no instruments."""

    tick_size: float = 0.1
    step_size: float = 0.001


@dataclass(frozen=True)
class JournalEntry:
    """One request as the engine received it: fed through capture ``line``, sent at ``now_ns``.

    ``action`` is ``submit`` (payload: the Order's fields), ``cancel`` (client id) or
    ``cancel_all`` (symbol id). Replaying the journal against a fresh engine fed the same
    records reproduces the paper venue's events exactly.
    """

    action: str
    line: int
    now_ns: int
    payload: Any


@dataclass
class _OrderInfo:
    order_id: int
    symbol: str
    order: Order
    time_ms: int
    update_ms: int
    notional: float = 0.0
    #: As the client sent it (GTD rests as GTC in the engine).
    tif: str = ""
    reduce_only: bool = False
    good_till_ms: int = 0
    modifications: int = 0


@dataclass(frozen=True)
class _NewOrder:
    """A parsed, validated ``POST /fapi/v1/order`` (or one order of a batch)."""

    name: str
    symbol_id: int
    side: str
    kind: str
    tif: str
    qty: Decimal
    price: Decimal | None
    client_id: str | None
    reduce_only: bool
    good_till_ms: int
    response: str


def _on_grid(value: float, step: float) -> bool:
    step_units = price_key(step)
    try:
        units = price_key(value)
    except OverflowError:  # beyond any grid (e.g. 1e308): not a value of this asset
        return False
    return step_units <= 0 or units % step_units == 0


class _Unreachable(Exception):
    """A request that raced :meth:`PaperVenue.suspend`: dropped without an answer."""


class OrderEndpoints:
    """Order entry endpoints (see the module docstring)."""

    # Provided by PaperVenue.
    _lock: threading.Condition
    _orders: dict[str, _OrderInfo]
    _by_id: dict[int, str]
    _watched: dict[str, _OrderInfo]
    _trades: list[dict[str, Any]]
    _symbols: list[str]
    _now_ns: int
    _line: int
    _frozen: bool
    _order_base: int
    _carry_over: bool
    journal: list[JournalEntry]
    engine: MatchingEngine
    portfolio: Portfolio
    instruments: dict[str, Instrument] | None
    rules: dict[str, SymbolRules]
    ledger: PaperLedger | None
    clock: Callable[[], float]

    def _symbol(self, params: Mapping[str, str], required: bool = True) -> tuple[str, int] | None:
        raise NotImplementedError

    def _check_reachable(self) -> None:
        raise NotImplementedError

    def _publish(self, events: list[Event]) -> None:
        raise NotImplementedError

    def _settle(self, arrival_ns: int) -> None:
        raise NotImplementedError

    def _order_json(self, info: _OrderInfo) -> dict[str, Any]:
        raise NotImplementedError

    def _parse_order(self, params: Mapping[str, str]) -> _NewOrder:
        """A new order's parameters read and checked as Binance does (New Order (TRADE),
        https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/New-Order);
        refusals with the codes of the error codes page, never a 500."""
        check_characters(params)
        symbol = self._symbol(params)
        assert symbol is not None
        name, symbol_id = symbol
        side = params.get("side", "").upper()
        if not side:
            raise _missing("side")
        if side not in ("BUY", "SELL"):
            raise ApiError(-1117, "Invalid side.")
        position_side = params.get("positionSide", "BOTH").upper()
        if position_side != "BOTH":  # one-way mode only
            raise ApiError(-4061, "Order's position side does not match user's setting.")
        kind = params.get("type", "").upper()
        if not kind:
            raise _missing("type")
        if kind not in ("LIMIT", "MARKET"):
            raise ApiError(-1116, "Invalid orderType.")
        tif = params.get("timeInForce", "").upper() or ("GTC" if kind == "MARKET" else "")
        if not tif:
            raise _missing("timeInForce")
        if tif not in ("GTC", "IOC", "GTX", "FOK", "GTD"):
            raise ApiError(-1115, "Invalid timeInForce.")
        if kind == "MARKET" and tif in ("GTX", "GTD"):
            raise ApiError(-1115, "Invalid timeInForce.")
        response = params.get("newOrderRespType", "ACK").upper()
        if response not in ("ACK", "RESULT"):
            raise ApiError(-1136, "Invalid newOrderRespType.")
        qty = decimal_param(params, "quantity")
        assert qty is not None
        if qty <= 0:
            raise ApiError(-4003, "Quantity less than or equal to zero.")
        price: Decimal | None = None
        if kind == "LIMIT":
            price = decimal_param(params, "price")
            assert price is not None
            if price <= 0:
                raise ApiError(-4013, "Price less than min price.")
        reduce_only = flag_param(params, "reduceOnly")
        good_till = 0
        if tif == "GTD":
            # "order the timestamp only retains second-level precision, ms part will be
            # ignored; The goodTillDate timestamp must be greater than the current time plus
            # 600 seconds and smaller than 253402300799000" (New Order; -5040).
            sent = int_param(params, "goodTillDate", required=True)
            assert sent is not None
            good_till = sent // 1000 * 1000
            now_ms = self._now_ns // 1_000_000
            if not now_ms + _GTD_MIN_AHEAD_MS < good_till < _GTD_MAX_MS:
                raise ApiError(
                    -5040,
                    "The goodTillDate timestamp must be greater than the current time plus 600 "
                    "seconds and smaller than 253402300799000 (UTC 9999-12-31 23:59:59)",
                )
        client_id = client_order_id(params)
        if self.instruments is not None:
            instrument = self.instruments.get(name)
            if instrument is None:
                raise ApiError(-1121, "Invalid symbol.")
            touch = self.engine.touch(symbol_id)
            reference = (touch.bid_px + touch.ask_px) / 2 if touch is not None else None
            refusal = instrument.check_order(
                qty, price if kind == "LIMIT" else None, kind.lower(), reference_price=reference
            )
            if refusal is not None and not (reduce_only and refusal.code == -4164):
                raise ApiError(refusal.code, refusal.msg)
        else:
            rules = self.rules.get(name, SymbolRules())
            if not _on_grid(float(qty), rules.step_size) or (
                price is not None and not _on_grid(float(price), rules.tick_size)
            ):
                raise ApiError(-1111, "Precision is over the maximum defined for this asset.")
        return _NewOrder(
            name,
            symbol_id,
            side,
            kind,
            tif,
            qty,
            price,
            client_id,
            reduce_only,
            good_till,
            response,
        )

    def new_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        """``POST /fapi/v1/order``."""
        return self._place(self._parse_order(params))

    def test_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        """``POST /fapi/v1/order/test``: every check of a new order, nothing placed."""
        spec = self._parse_order(params)
        with self._lock:
            if spec.client_id is not None and spec.client_id in self._orders:
                raise ApiError(-4116, "ClientOrderId is duplicated.")
            if spec.reduce_only:
                self._reduce_only_qty(spec)
        return {}

    def _reduce_only_qty(self, spec: _NewOrder) -> float:
        """The quantity a reduce-only order may work (lock held): at most the position, on
        its other side; an order that would increase (or open) the position is -2022."""
        position = self.portfolio.positions.get(spec.symbol_id)
        held = position.qty if position is not None else 0.0
        sign = 1 if spec.side == "BUY" else -1
        if held == 0 or held * sign > 0:
            raise ApiError(-2022, "ReduceOnly Order is rejected.")
        return min(float(spec.qty), abs(held))

    def _place(self, spec: _NewOrder) -> dict[str, Any]:
        with self._lock:
            self._check_reachable()
            client_id = spec.client_id or f"paper-{len(self._orders) + 1}"
            if client_id in self._orders:
                raise ApiError(-4116, "ClientOrderId is duplicated.")
            qty = self._reduce_only_qty(spec) if spec.reduce_only else float(spec.qty)
            price = None if spec.price is None else float(spec.price)
            engine_tif = "GTC" if spec.tif == "GTD" else spec.tif
            order = Order(
                client_id,
                spec.symbol_id,
                "buy" if spec.side == "BUY" else "sell",
                qty,
                price,
                "limit" if spec.kind == "LIMIT" else "market",
                engine_tif,  # type: ignore[arg-type]
            )
            now_ms = self._now_ns // 1_000_000
            info = _OrderInfo(
                self._order_base + len(self._orders) + 1,
                spec.name,
                order,
                now_ms,
                now_ms,
                tif=spec.tif,
                reduce_only=spec.reduce_only,
                good_till_ms=spec.good_till_ms,
            )
            self._orders[client_id] = info
            self._by_id[info.order_id] = client_id
            if spec.reduce_only or spec.good_till_ms:
                self._watched[client_id] = info
            payload = {
                "client_id": client_id,
                "symbol": spec.symbol_id,
                "side": order.side,
                "qty": qty,
                "price": price,
                "type": order.type,
                "tif": engine_tif,
            }
            self.journal.append(JournalEntry("submit", self._line, self._now_ns, payload))
            self.engine.submit(order, self._now_ns)
            self._publish(self.engine.advance(self._now_ns))
            self._lock.notify_all()
            self._settle(self._now_ns + self.engine.latency_ns)
            if order.state == "expired" and order.reason == _GTX_CROSS:
                raise ApiError(
                    -5022,
                    "Due to the order could not be executed as maker, the Post Only order will "
                    "be rejected.",
                )
            if order.state == "expired" and order.reason == _FOK_KILLED:
                raise ApiError(
                    -5021,
                    "Due to the order could not be filled immediately, the FOK order has been "
                    "rejected.",
                )
            if order.state == "rejected":
                raise ApiError(-2010, f"New order rejected: {order.reason}.")
            answer = self._order_json(info)
            if spec.response == "ACK":
                # ACK: the order as accepted, before any execution (newOrderRespType).
                answer.update(
                    status="NEW",
                    executedQty="0",
                    cumQty="0",
                    cumQuote="0",
                    avgPrice="0.00",
                    updateTime=info.time_ms,
                )
            return answer

    def modify_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        """``PUT /fapi/v1/order``: new price and quantity of an open LIMIT order (Modify
        Order (TRADE), .../trade/rest-api/Modify-Order). Same price and quantity: -5027; not
        a LIMIT order: -5025; a new quantity at or below the executed one cancels the order,
        as Binance does; a post-only order whose new price would take expires."""
        check_characters(params)
        self._symbol(params)
        side = params.get("side", "").upper()
        if not side:
            raise _missing("side")
        if side not in ("BUY", "SELL"):
            raise ApiError(-1117, "Invalid side.")
        qty = decimal_param(params, "quantity")
        price = decimal_param(params, "price")
        assert qty is not None and price is not None
        if qty <= 0:
            raise ApiError(-4003, "Quantity less than or equal to zero.")
        if price <= 0:
            raise ApiError(-4013, "Price less than min price.")
        with self._lock:
            self._check_reachable()
            info = self._find(params, ApiError(-2013, "Order does not exist."))
            order = info.order
            if not order.is_open:
                raise ApiError(-2013, "Order does not exist.")
            if order.type != "limit":
                raise ApiError(-5025, "Only limit order is supported.")
            if order.side.upper() != side:
                raise ApiError(-1130, "Data sent for parameter 'side' is not valid.")
            if self.instruments is not None:
                instrument = self.instruments.get(info.symbol)
                if instrument is not None:
                    refusal = instrument.check_order(qty, price, "limit")
                    if refusal is not None and not (info.reduce_only and refusal.code == -4164):
                        raise ApiError(refusal.code, refusal.msg)
            if Decimal(repr(order.price)) == price and Decimal(repr(order.qty)) == qty:
                raise ApiError(-5027, "No need to modify the order.")
            if info.modifications >= 10_000:
                raise ApiError(-5026, "Exceed maximum modify order limit.")
            info.modifications += 1
            if float(qty) <= order.filled_qty:
                self.journal.append(
                    JournalEntry("cancel", self._line, self._now_ns, order.client_id)
                )
                self.engine.cancel(order.client_id, self._now_ns)
            else:
                payload = (order.client_id, float(price), float(qty))
                self.journal.append(JournalEntry("replace", self._line, self._now_ns, payload))
                self.engine.replace(order.client_id, float(price), float(qty), self._now_ns)
            self._publish(self.engine.advance(self._now_ns))
            self._lock.notify_all()
            self._settle(self._now_ns + self.engine.latency_ns)
            return self._order_json(info)

    def _batch(self, params: Mapping[str, str], name: str, limit: int) -> list[Any]:
        text = params.get(name, "")
        if not text:
            raise _missing(name)
        try:
            items = json.loads(text)
        except ValueError:
            raise ApiError(-1130, f"Data sent for parameter '{name}' is not valid.") from None
        if not isinstance(items, list) or not items:
            raise ApiError(-1130, f"Data sent for parameter '{name}' is not valid.")
        if len(items) > limit:
            raise ApiError(-4082, f"Invalid number of batch place orders: {len(items)}")
        return items

    @staticmethod
    def _one(item: Any) -> dict[str, str]:
        if not isinstance(item, dict):
            raise ApiError(-1130, "Data sent for parameter 'batchOrders' is not valid.")
        out = {}
        for key, value in item.items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif not isinstance(value, str | int):
                raise ApiError(-1100, f"Illegal characters found in parameter '{key}'.")
            out[str(key)] = str(value)
        return out

    def _each(self, items: list[Any], action: Callable[[dict[str, str]], Any]) -> list[Any]:
        """Answers in the order sent: the order, or its own ``{"code", "msg"}``."""
        answers: list[Any] = []
        for item in items:
            try:
                answers.append(action(self._one(item)))
            except ApiError as error:
                answers.append({"code": error.code, "msg": error.msg})
        return answers

    def batch_orders(self, params: Mapping[str, str]) -> list[Any]:
        """``POST /fapi/v1/batchOrders`` (at most 5)."""
        items = self._batch(params, "batchOrders", MAX_BATCH_ORDERS)
        return self._each(items, self.new_order)

    def batch_modify(self, params: Mapping[str, str]) -> list[Any]:
        """``PUT /fapi/v1/batchOrders`` (at most 5)."""
        items = self._batch(params, "batchOrders", MAX_BATCH_ORDERS)
        return self._each(items, self.modify_order)

    def batch_cancel(self, params: Mapping[str, str]) -> list[Any]:
        """``DELETE /fapi/v1/batchOrders``: ``orderIdList`` or ``origClientOrderIdList`` (at
        most 10)."""
        symbol = self._symbol(params)
        assert symbol is not None
        if params.get("orderIdList"):
            ids = self._batch(params, "orderIdList", MAX_BATCH_CANCELS)
            key = "orderId"
        elif params.get("origClientOrderIdList"):
            ids = self._batch(params, "origClientOrderIdList", MAX_BATCH_CANCELS)
            key = "origClientOrderId"
        else:
            raise ApiError(
                -1102,
                "Param 'orderIdList' or 'origClientOrderIdList' must be sent, but both were "
                "empty/null!",
            )
        items = [{"symbol": symbol[0], key: value} for value in ids]
        return self._each(items, self.cancel_order)

    def _find(self, params: Mapping[str, str], unknown: ApiError) -> _OrderInfo:
        client_id = params.get("origClientOrderId")
        if not client_id and not params.get("orderId"):
            raise ApiError(
                -1102,
                "Param 'orderId' or 'origClientOrderId' must be sent, but both were empty/null!",
            )
        if not client_id:
            client_id = self._by_id.get(int_param(params, "orderId") or 0)
        info = self._orders.get(client_id or "")
        if info is None:
            raise unknown
        symbol = self._symbol(params, required=False)
        if symbol is not None and symbol[0] != info.symbol:
            raise unknown
        return info

    def cancel_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        self._symbol(params)
        with self._lock:
            self._check_reachable()
            info = self._find(params, ApiError(-2011, "Unknown order sent."))
            if not info.order.is_open:
                raise ApiError(-2011, "Unknown order sent.")
            self.journal.append(
                JournalEntry("cancel", self._line, self._now_ns, info.order.client_id)
            )
            self.engine.cancel(info.order.client_id, self._now_ns)
            self._publish(self.engine.advance(self._now_ns))
            self._lock.notify_all()
            self._settle(self._now_ns + self.engine.latency_ns)
            if info.order.state != "cancelled" and not info.order.is_open:
                raise ApiError(-2011, "Unknown order sent.")
            return self._order_json(info)

    def cancel_all(self, params: Mapping[str, str]) -> dict[str, Any]:
        symbol = self._symbol(params)
        assert symbol is not None
        with self._lock:
            self._check_reachable()
            self.journal.append(JournalEntry("cancel_all", self._line, self._now_ns, symbol[1]))
            self.engine.cancel_all(self._now_ns, symbol[1])
            self._publish(self.engine.advance(self._now_ns))
            self._lock.notify_all()
            self._settle(self._now_ns + self.engine.latency_ns)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def _sweep(self) -> None:
        """(Lock held.) Expires what the venue expires by itself: a GTD order whose
        ``goodTillDate`` the venue clock passed, and a resting reduce-only order that would
        now increase the position (its position closed or flipped), as Binance does."""
        if not self._watched:
            return
        now_ms = self._now_ns // 1_000_000
        expired = False
        for client_id, info in list(self._watched.items()):
            order = info.order
            if not order.is_open:
                del self._watched[client_id]
                continue
            reason = ""
            if info.good_till_ms and now_ms >= info.good_till_ms:
                reason = GTD_EXPIRED
            elif info.reduce_only:
                position = self.portfolio.positions.get(order.symbol)
                held = position.qty if position is not None else 0.0
                sign = 1 if order.side == "buy" else -1
                if held == 0 or held * sign > 0:
                    reason = REDUCE_ONLY_EXPIRED
            if reason:
                del self._watched[client_id]
                self.journal.append(
                    JournalEntry("expire", self._line, self._now_ns, (client_id, reason))
                )
                self.engine.expire(client_id, self._now_ns, reason)
                expired = True
        if expired:
            if self._frozen:  # no market time passes: the expiry arrives as requests do
                self._now_ns += self.engine.latency_ns
            self._publish(self.engine.advance(self._now_ns))
            self._lock.notify_all()

    def query_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        self._symbol(params)
        with self._lock:
            try:
                return self._order_json(
                    self._find(params, ApiError(-2013, "Order does not exist."))
                )
            except ApiError as error:
                past = self._past_order(params)
                if past is None:
                    raise error from None
                return past

    def open_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        """``GET /fapi/v1/openOrder``: an open order; a filled or cancelled one is -2013
        "Order does not exist." (Query Current Open Order, .../trade/rest-api/
        Query-Current-Open-Order)."""
        self._symbol(params)
        with self._lock:
            info = self._find(params, ApiError(-2013, "Order does not exist."))
            if not info.order.is_open:
                raise ApiError(-2013, "Order does not exist.")
            return self._order_json(info)

    def all_orders(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """``GET /fapi/v1/allOrders``: the symbol's orders, oldest first; ``orderId``: from
        that id on, ``startTime``/``endTime`` bound ``time``, ``limit`` default 500, max 1000
        (All Orders, .../trade/rest-api/All-Orders)."""
        symbol = self._symbol(params)
        assert symbol is not None
        from_id = int_param(params, "orderId")
        start = int_param(params, "startTime")
        end = int_param(params, "endTime")
        limit = int_param(params, "limit", 500) or 500
        if start is not None and end is not None and start > end:
            raise ApiError(-1023, "Start time is greater than end time.")
        limit = min(limit, 1000)
        with self._lock:
            infos = sorted(
                (info for info in self._orders.values() if info.symbol == symbol[0]),
                key=lambda info: info.order_id,
            )
            if from_id is not None:
                infos = [info for info in infos if info.order_id >= from_id][:limit]
            else:
                if start is not None:
                    infos = [info for info in infos if info.time_ms >= start]
                if end is not None:
                    infos = [info for info in infos if info.time_ms <= end]
                infos = infos[-limit:] if start is None else infos[:limit]
            return [self._order_json(info) for info in infos]

    def _past_order(self, params: Mapping[str, str]) -> dict[str, Any] | None:
        """An order of an earlier session from the ledger (``carry_over`` only)."""
        if not self._carry_over or self.ledger is None:
            return None
        order_id = params.get("orderId")
        try:
            number = int(order_id) if order_id else None
        except ValueError:
            return None
        return self.ledger.order(params.get("origClientOrderId"), number)

    def open_orders(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        symbol = self._symbol(params, required=False)
        with self._lock:
            orders = self.engine.open_orders(None if symbol is None else symbol[1])
            return [self._order_json(self._orders[order.client_id]) for order in orders]

    def _open_symbols(self) -> set[str]:
        return {self._symbols[order.symbol] for order in self.engine.open_orders()}

    def user_trades(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        symbol = self._symbol(params)
        assert symbol is not None
        limit = min(int_param(params, "limit", 500) or 500, 1000)
        from_id = int_param(params, "fromId")
        with self._lock:
            trades = [trade for trade in self._trades if trade["symbol"] == symbol[0]]
        if from_id is not None:
            trades = [trade for trade in trades if trade["id"] >= from_id][:limit]
        else:
            trades = trades[-limit:]
        return trades
