"""twinfeed: one Rust feature crate for research and live trading.

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
from twinfeed.records import KIND, build_info

__all__ = [
    "BUILD_PROFILE",
    "GIT_REVISION",
    "KIND",
    "RECORD_SIZE",
    "SCHEMA_VERSION",
    "CaptureError",
    "ConfigError",
    "FeatureConfig",
    "Instrument",
    "InstrumentTable",
    "RingError",
    "TwinfeedError",
    "UnknownInstrumentError",
    "__version__",
    "arrow_schema",
    "build_info",
    "record_dtype",
    "record_fields",
]
