"""The Python API a quant starts from: FeatureConfig from keyword arguments, the live Feed at
`twinfeed.live`, and `help(twinfeed)` opening with a quick start."""

from __future__ import annotations

import pydoc
from pathlib import Path

import pytest
import twinfeed
from twinfeed import ConfigError, FeatureConfig


def test_feature_config_from_keyword_arguments() -> None:
    assert FeatureConfig() == FeatureConfig.default()
    config = FeatureConfig(symbols=["btcusdt"], bar_ms=500, features={"book_levels": 10})
    same = FeatureConfig.from_toml_str(
        '[filter]\nsymbols = ["BTCUSDT"]\n[downsample]\nbar_ms = 500\n[features]\nbook_levels = 10\n'
    )
    assert config == same and config.fingerprint == same.fingerprint
    assert config.symbols == ["BTCUSDT"]
    assert config.fingerprint != FeatureConfig.default().fingerprint
    # max_symbols is left out of the default's TOML but is a field all the same.
    assert "max_symbols = 10" in FeatureConfig(max_symbols=10).to_toml()


def test_feature_config_keyword_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r'unknown field "bar_msx"; known: .*bar_ms, '):
        FeatureConfig(bar_msx=500)
    with pytest.raises(ConfigError, match=r"bar_ms = -1"):
        FeatureConfig(bar_ms=-1)
    with pytest.raises(ConfigError, match=r"ewma_alpha"):
        FeatureConfig(ewma_alpha=2.0)
    with pytest.raises(TypeError, match=r"symbols: expected a bool, int, float, str or a list"):
        FeatureConfig(symbols=[object()])
    with pytest.raises(TypeError, match=r"filter: expected a dict"):
        FeatureConfig(filter=["BTCUSDT"])


def test_feed_is_importable_from_twinfeed_live() -> None:
    from twinfeed.live import Feed
    from twinfeed.live.feed import Feed as RingFeed

    assert Feed is RingFeed
    import twinfeed.live

    with pytest.raises(AttributeError, match="no attribute 'Fed'"):
        twinfeed.live.Fed  # noqa: B018


def test_help_starts_with_a_quick_start() -> None:
    text = pydoc.render_doc(twinfeed, renderer=pydoc.plaintext)
    head = text[: text.index("PACKAGE CONTENTS")]
    assert "Quick start" in head
    for call in ("compute_features(", "FeatureConfig(", "twinfeed backtest", "twinfeed live"):
        assert call in head, call


def test_kind_and_flag_constants_match_the_binding(spot_capture: Path) -> None:
    import polars as pl
    from twinfeed import Flag, Kind
    from twinfeed.research import compute_features

    assert {kind.name.lower(): int(kind) for kind in Kind} == twinfeed.KIND
    df = compute_features(spot_capture)
    # In polars `kind` is an Enum of the names; Kind.X.label is the name.
    quotes = df.filter(pl.col("kind") == Kind.QUOTE.label)
    assert quotes.height > 0 and quotes.height == df.filter(pl.col("kind") == "quote").height
    trades = df.filter(pl.col("kind") == Kind.TRADE.label)
    buys = trades.filter((pl.col("flags") & Flag.BUYER_AGGRESSOR) != 0)
    # Buyer-aggressor trades have positive signed size, the others negative.
    assert buys.height and (buys["trade_qty"] > 0).all()
    assert (trades.filter((pl.col("flags") & Flag.BUYER_AGGRESSOR) == 0)["trade_qty"] < 0).all()
