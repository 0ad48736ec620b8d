"""The ``twinfeed`` command line. Commands are thin: parse, call library code, print with rich."""

from __future__ import annotations

from twinfeed.cli._app import main

# Each module adds its commands to `main` on import.
from twinfeed.cli import data_cmd, features_cmd  # noqa: E402, F401  isort: skip

__all__ = ["main"]
