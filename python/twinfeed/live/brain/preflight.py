"""Before trading: what the venue says, checked against what the run expects.

:func:`preflight` asks the venue port (never a venue's own API) for its clock, its
instruments, the account's permission, position mode and balances, and the open orders left
at the venue; it returns a :class:`Preflight` whose ``lines`` say what was found and whose
``problems`` say what forbids trading: a symbol the venue does not list, trading rules that
differ from the run's instruments (tick, lot, minimum notional), an account that may not trade,
hedge mode (the brain trades one-way positions), or open orders of an earlier run that nothing
will reconcile (``recovering`` False).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from twinfeed.instruments import Instrument
from twinfeed.venues.port import VenuePort

__all__ = ["Preflight", "PreflightError", "preflight"]

#: Larger than this (ms) is pointed out (the local venue's clock is the replay's: far off).
CLOCK_WARN_MS = 1000


class PreflightError(ValueError):
    """The venue is not fit to trade on: every problem the preflight found."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("preflight refused to trade: " + "; ".join(problems))
        self.problems = list(problems)


@dataclass
class Preflight:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    clock_offset_ms: int = 0
    open_orders: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def preflight(
    port: VenuePort,
    symbols: Sequence[str],
    expected: Mapping[str, Instrument],
    *,
    recovering: bool = False,
) -> Preflight:
    """Checks ``port`` before a run trading ``symbols`` under ``expected`` rules."""
    result = Preflight()
    offset = port.clock_offset_ms()
    result.clock_offset_ms = offset
    note = " (large: a -1021 resyncs to it)" if abs(offset) > CLOCK_WARN_MS else ""
    result.lines.append(f"clock offset to the venue: {offset:+d} ms{note}")
    stated = port.instruments()
    for symbol in symbols:
        venue = stated.get(symbol)
        if venue is None:
            result.problems.append(f"{symbol}: not listed by the venue")
            continue
        mine = expected.get(symbol)
        if mine is None:
            result.lines.append(f"{symbol}: venue tick {venue.tick_size}, lot {venue.step_size}")
            continue
        for name in ("tick_size", "step_size", "min_notional"):
            ours, theirs = getattr(mine, name), getattr(venue, name)
            if ours != theirs:
                result.problems.append(f"{symbol}: {name} is {theirs} at the venue, {ours} here")
        result.lines.append(f"{symbol}: rules as expected (tick {venue.tick_size})")
    account = port.account()
    balances = ", ".join(f"{asset} {amount:g}" for asset, amount in account.balances.items())
    result.lines.append(
        f"account: {'may' if account.can_trade else 'may NOT'} trade; "
        f"{'hedge' if account.hedge_mode else 'one-way'} positions; balances {balances or '-'}"
    )
    if not account.can_trade:
        result.problems.append("the account may not trade (canTrade false)")
    if account.hedge_mode:
        result.problems.append("the account is in hedge mode; the brain trades one-way positions")
    for symbol in symbols:
        if symbol in stated:
            result.open_orders.extend(order.client_id for order in port.open_orders(symbol))
    if result.open_orders:
        left = f"{len(result.open_orders)} open order(s) left at the venue"
        if recovering:
            result.lines.append(f"{left}: crash recovery adopts or closes them")
        else:
            result.problems.append(f"{left} from an earlier run: {', '.join(result.open_orders)}")
    else:
        result.lines.append("no open orders at the venue")
    return result
