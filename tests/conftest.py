"""Shared fixtures: the real captures in ../shared/data/real and the repo's binaries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_REAL = REPO.parent / "shared" / "data" / "real"
USDM = SHARED_REAL / "binance-usdm" / "btcusdt_20240808.gz"
SPOT = SHARED_REAL / "binance-spot" / "btcusdt_20240808.gz"
SYNTH = REPO / "data" / "synth-btcusdt.txt"


def require_real(path: Path) -> Path:
    """The real capture at ``path``; skips (or fails in CI) when ../shared is absent."""
    if path.exists():
        return path
    message = f"real capture {path} not found (../shared/data/real is not beside this clone)"
    if os.environ.get("TWINFEED_REQUIRE_SHARED") == "1":
        pytest.fail(message + "; TWINFEED_REQUIRE_SHARED=1 requires it")
    pytest.skip(message)


@pytest.fixture(scope="session")
def usdm_capture() -> Path:
    return require_real(USDM)


@pytest.fixture(scope="session")
def spot_capture() -> Path:
    return require_real(SPOT)
