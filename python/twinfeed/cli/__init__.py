"""The ``twinfeed`` command line. Commands are thin: parse, call library code, print with rich."""

from __future__ import annotations

from twinfeed.cli._app import main

# Each module adds its commands to `main` on import.
from twinfeed.cli import (  # noqa: E402, F401  isort: skip
    backtest_cmd,
    ctl_cmd,
    data_catalog,
    data_cmd,
    data_import,
    data_synth,
    features_cmd,
    ingest_cmd,
    live_cmd,
    parity_cmd,
    report_cmd,
    venue_cmd,
)

__all__ = ["main"]
