"""Example strategies. ``MarketMaker`` is the default of the demo and the backtester."""

from twinfeed.strategies.market_maker import MarketMaker

__all__ = ["MarketMaker"]
