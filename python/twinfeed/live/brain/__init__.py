"""The live brain: OMS, risk, trade DB, feed monitor and the live trader loop.

See :mod:`twinfeed.live.brain.runner` for how the pieces connect.
"""

from twinfeed.live.brain.entry import OrderEntry, PortEntry
from twinfeed.live.brain.monitor import FeedMonitor, FeedTransition
from twinfeed.live.brain.oms import ExecutionReport, OrderManager
from twinfeed.live.brain.risk import RiskConfig, RiskDecision, RiskManager
from twinfeed.live.brain.runner import LiveConfig, LiveContext, LiveTrader, RunSummary
from twinfeed.live.brain.trade_db import TradeDB, open_read_only

__all__ = [
    "ExecutionReport",
    "FeedMonitor",
    "FeedTransition",
    "LiveConfig",
    "LiveContext",
    "LiveTrader",
    "OrderEntry",
    "OrderManager",
    "PortEntry",
    "RiskConfig",
    "RiskDecision",
    "RiskManager",
    "RunSummary",
    "TradeDB",
    "open_read_only",
]
