"""Where a live run's orders reached the venue, on the records' clock (docs/trade_parity.md,
"Execution comparison"): the venue's own clock mapped onto the ingest's records, or the
brain's lag plus the wire when the venue states no clock."""

from __future__ import annotations

from typing import Any

import numpy as np

from twinfeed.records import KIND

__all__ = ["VenueClock", "latencies"]

_QUOTE = KIND["quote"]


class VenueClock:
    """Maps a time of the venue's clock (the original capture's receive time at its replay
    position) to the ingest's clock: the ingest record carrying the same bookTicker update."""

    def __init__(self, original: np.ndarray[Any, Any], ingest: np.ndarray[Any, Any]) -> None:
        def quotes(records: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
            picked = records[(records["kind"] == _QUOTE) & (records["update_id"] > 0)]
            return picked[np.argsort(picked["update_id"], kind="stable")]

        self._original = quotes(original)
        self._original_by_time = self._original[
            np.argsort(self._original["local_ns"], kind="stable")
        ]
        self._ingest = quotes(ingest)

    def to_ingest(self, venue_ns: int) -> int | None:
        by_time = self._original_by_time
        if venue_ns % 1_000_000 == 0:
            # A time in whole ms (Binance states ms): the venue stood somewhere in that ms;
            # the records of the whole ms were out by then.
            venue_ns += 999_999
        index = int(np.searchsorted(by_time["local_ns"], venue_ns, side="right")) - 1
        if index < 0:
            return None
        update = by_time["update_id"][index]
        found = int(np.searchsorted(self._ingest["update_id"], update, side="left"))
        if found >= len(self._ingest) or self._ingest["update_id"][found] != update:
            return None
        # The venue handled the order after applying that record: just after it.
        return int(self._ingest["local_ns"][found]) + 1


def latencies(
    live: dict[str, Any], clock: VenueClock | None, speed: float | None = None
) -> tuple[dict[str, int], str]:
    """Per venue order (leg), submit -> arrival at the venue on the records' clock, and how it
    was measured.

    With the venue's clock known (the paper venue states the capture time of its replay
    position in every answer), an acknowledged order's arrival is where the venue's replay
    stood when it handled it, mapped onto the ingest's records: that includes the brain's own
    lag (waiting for the batch, the strategy, risk), the wire and the venue's. An order without
    an acknowledgement (refused on arrival) arrived where the venue's clock stood at its send:
    the clock of the acknowledged send nearest in wall time, advanced by the wall time between
    the two sends times the replay ``speed``; without a speed (``max``), its own brain lag
    (wall clock: send - ``submit_ns``, the ingest's receive clock being a wall clock too) plus
    the median of the rest (arrival - send) of the acknowledged ones. Without the venue's
    clock: the brain lag plus half the send -> answer round trip.
    """
    acks = {row["client_id"]: row for row in live["acks"]}
    answered = {row["client_id"]: row["wall_ns"] for row in live["answers"]}
    arrival: dict[str, int] = {}
    rest: list[int] = []
    orders = [o for o in live["orders"] if not str(o["reason"] or "").startswith(("risk", "rules"))]
    for order in orders:
        ack = acks.get(order["client_id"])
        if clock is None or ack is None or not order["submit_wall_ns"]:
            continue
        mapped = clock.to_ingest(int(ack["ts_ns"]))
        if mapped is None:
            continue
        # Negative when the venue's replay stood behind the records the decision was made on.
        arrival[order["client_id"]] = mapped - int(order["submit_ns"])
        rest.append(mapped - int(order["submit_wall_ns"]))
    extra = int(np.median(rest)) if rest else None
    # The venue's clock at a send without an acknowledgement: from the acknowledged send
    # nearest in wall time, advanced at the replay speed.
    anchors = sorted(
        (int(o["submit_wall_ns"]), int(acks[o["client_id"]]["ts_ns"]))
        for o in orders
        if o["client_id"] in arrival
    )
    anchor_walls = [wall for wall, _ in anchors]

    def at_wall(sent: int) -> int | None:
        """Where the venue's replay stood at wall time ``sent``, on the records' clock."""
        if clock is None or speed is None or not anchors:
            return None
        after = int(np.searchsorted(anchor_walls, sent))
        nearest = [i for i in (after - 1, after) if 0 <= i < len(anchors)]
        wall, venue_ns = anchors[min(nearest, key=lambda i: abs(anchor_walls[i] - sent))]
        return clock.to_ingest(venue_ns + int((sent - wall) * speed))

    round_trips = [
        int(answered[o["client_id"]]) - int(o["submit_wall_ns"])
        for o in orders
        if o["client_id"] in answered and o["submit_wall_ns"]
    ]
    half_trip = int(np.median(round_trips)) // 2 if round_trips else 0
    out = {}
    # Modifies (a replace in place): the venue's answer is recorded as ``replaced``, or as the
    # order's expiry when the new price would have taken (post-only).
    seen: dict[str, int] = {}
    for row in live["modifies"]:
        client_id = str(row["client_id"])
        seen[client_id] = seen.get(client_id, 0) + 1
        # The row's time is the venue's (its answer's transaction time); the request's own
        # ``ctx.now_ns`` is in the journal (``now``).
        mapped = None if clock is None else clock.to_ingest(int(row["ts_ns"]))
        if mapped is None:
            mapped = at_wall(int(row["wall_ns"]) - half_trip)
        if mapped is not None:
            out[f"{client_id}@{seen[client_id]}"] = mapped
    for order in orders:
        client_id = order["client_id"]
        if client_id in arrival:
            out[client_id] = arrival[client_id]
            continue
        sent = order["submit_wall_ns"]
        if not sent:
            continue
        lag = int(sent) - int(order["submit_ns"])
        mapped = at_wall(int(sent))
        if mapped is not None:
            out[client_id] = mapped - int(order["submit_ns"])
            continue
        if extra is not None:
            out[client_id] = max(lag + extra, 0)
        elif client_id in answered:
            out[client_id] = max(lag + (int(answered[client_id]) - int(sent)) // 2, 0)
    how = (
        "venue clock (acknowledged orders), brain lag + median venue delay (others)"
        if extra is not None
        else "brain lag + half the send -> answer round trip"
    )
    return out, how
