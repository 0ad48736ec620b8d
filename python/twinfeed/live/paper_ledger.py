"""The paper venue's account history on disk, so it outlives the process that ran the venue.

``twinfeed live`` runs the paper venue inside its own process. A ``kill -9`` of that process
used to take the venue's trades with it: a fill the venue made but the brain had not written
yet was lost for good, and the next session's recovery had no venue to ask. With a ledger
(one JSON line per trade, written and flushed before the fill is published on the user
stream), the next session's paper venue answers ``userTrades`` and order queries for the dead
session's trades too, so :func:`twinfeed.live.brain.recovery.recover` finds every one.

A flushed ``write`` is in the kernel's page cache, which outlives the process (a ``kill -9``
loses nothing); an fsync per fill would only add a power-loss guarantee the DB does not have
either. Trade and order ids continue after the largest in the ledger, so ids stay unique
across the sessions sharing one trade DB (recovery matches trades by id).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["PaperLedger"]


class PaperLedger:
    """Append-only JSON lines ``{"trade": userTrades row, "order": order JSON at the fill}``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.trades: list[dict[str, Any]] = []
        #: The latest state of every order seen, by client id and by order id.
        self.orders: dict[str, dict[str, Any]] = {}
        self.order_ids: dict[int, str] = {}
        lines = self.path.read_text().splitlines() if self.path.exists() else []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                trade, order = dict(entry["trade"]), dict(entry["order"])
            except (ValueError, KeyError, TypeError):
                # A torn last line of a killed writer: that trade was never published.
                if number == len(lines):
                    continue
                raise ValueError(f"{self.path}:{number}: not a ledger entry") from None
            self._remember(trade, order)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a")  # noqa: SIM115 - closed by close()

    def _remember(self, trade: dict[str, Any], order: dict[str, Any]) -> None:
        self.trades.append(trade)
        client_id = str(order["clientOrderId"])
        self.orders[client_id] = order
        self.order_ids[int(order["orderId"])] = client_id

    @property
    def trade_base(self) -> int:
        """The largest trade id in the ledger (0 if none)."""
        return max((int(t["id"]) for t in self.trades), default=0)

    @property
    def order_base(self) -> int:
        """The largest order id in the ledger (0 if none)."""
        return max(self.order_ids, default=0)

    def append(self, trade: dict[str, Any], order: dict[str, Any]) -> None:
        """Writes one trade (and its order's state) and flushes it to the kernel."""
        self._file.write(json.dumps({"trade": trade, "order": order}, sort_keys=True) + "\n")
        self._file.flush()
        self._remember(trade, order)

    def order(self, client_id: str | None, order_id: int | None) -> dict[str, Any] | None:
        """An order of an earlier session, as it stood at its last fill, marked finished (that
        session's venue is gone, so nothing of it is still working)."""
        if client_id is None and order_id is not None:
            client_id = self.order_ids.get(order_id)
        order = self.orders.get(client_id or "")
        if order is None:
            return None
        done = dict(order)
        if done.get("status") not in ("FILLED", "CANCELED", "EXPIRED", "REJECTED"):
            done["status"] = "EXPIRED"
        return done

    def close(self) -> None:
        self._file.close()
