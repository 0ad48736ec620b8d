"""twinfeed: one Rust feature crate for research and live trading.

Quick start (the README has the whole tour)::

    import polars as pl
    import twinfeed
    from twinfeed.research import compute_features, iter_feature_batches

    df = compute_features("data/synth-btcusdt.txt")           # a polars DataFrame of records
    quotes = df.filter(pl.col("kind") == "quote")             # kind: a polars Enum
    config = twinfeed.FeatureConfig(symbols=["BTCUSDT"], bar_ms=500)   # or .from_toml(path)
    df = compute_features("capture.gz", config)
    for batch in iter_feature_batches("big.gz", config, batch_rows=1 << 18):  # flat memory
        ...

    from twinfeed.research.backtest import Backtest          # strategies: twinfeed.strategy
    result = Backtest(MyStrategy, "data/synth-btcusdt.txt").run()
    result.metrics["pnl_total"], result.fills, result.orders

    from twinfeed.live import Feed                            # the live ring, as numpy records

From a shell::

    twinfeed features CAPTURE --out features.parquet
    twinfeed backtest --capture CAPTURE --strategy my_strategy.py:MyStrategy
    twinfeed live --capture CAPTURE --strategy my_strategy.py:MyStrategy
    twinfeed report --db runs/live/trade.duckdb

The binary record layout, the feature configuration and its fingerprint all come from the
compiled extension ``twinfeed._features``; this package re-exports them.
"""

from twinfeed._features import (
    BUILD_PROFILE,
    GIT_REVISION,
    RECORD_SIZE,
    SCHEMA_VERSION,
    CaptureError,
    ConfigError,
    FeatureConfig,
    RingError,
    TwinfeedError,
    __version__,
    arrow_schema,
    record_dtype,
    record_fields,
)
from twinfeed.instruments import Instrument, InstrumentTable, UnknownInstrumentError
from twinfeed.records import KIND, Flag, GapReason, Kind, StatusEvent, build_info

__all__ = [
    "BUILD_PROFILE",
    "GIT_REVISION",
    "KIND",
    "RECORD_SIZE",
    "SCHEMA_VERSION",
    "StatusEvent",
    "CaptureError",
    "ConfigError",
    "FeatureConfig",
    "Flag",
    "GapReason",
    "Instrument",
    "InstrumentTable",
    "Kind",
    "RingError",
    "TwinfeedError",
    "UnknownInstrumentError",
    "__version__",
    "arrow_schema",
    "build_info",
    "record_dtype",
    "record_fields",
]
