"""What a live session trades: symbols, feature config, instruments, or an artifact's all.

:func:`prepare` turns :class:`twinfeed.live.brain.session.LiveSettings` and the capture into a
:class:`Deployment`:

- with ``artifact``: the artifact's strategy, parameters, feature config (TOML text), symbols,
  instruments and risk limits (settings given explicitly still win for risk; a
  ``feature_config`` file given with an artifact is what the ingest runs and is checked
  against it like everything else);
- without: the ``[live] symbols`` given, else the capture's symbols (with a notice); the
  ``feature_config`` TOML given, else the default config (with a notice); instruments from
  ``--instruments FILE`` over the shipped table, for the venue the capture's frames come from.

:func:`verify` compares the live side with the artifact before trading
(:func:`twinfeed.deploy.check_drift`), reading the instruments the venue states through the
venue port (``instruments``; Binance: ``GET /fapi/v1/exchangeInfo``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twinfeed import FeatureConfig
from twinfeed.deploy import Artifact, DriftError, check_drift, load_artifact
from twinfeed.instruments import (
    Instrument,
    InstrumentTable,
    SymbolInstruments,
    capture_symbols,
    capture_venue,
    load_table,
    with_capture_rules,
)
from twinfeed.live.brain.risk import RiskConfig
from twinfeed.records import build_info

if TYPE_CHECKING:
    from twinfeed.live.brain.session import LiveSettings

__all__ = ["Deployment", "prepare", "verify"]


@dataclass
class Deployment:
    config: FeatureConfig
    strategy: str
    params: dict[str, Any]
    symbols: tuple[str, ...]
    venue: str | None
    instruments: list[Instrument]
    table: InstrumentTable
    risk: RiskConfig
    artifact: Artifact | None = None
    notices: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)

    def symbol_instruments(self) -> SymbolInstruments:
        return SymbolInstruments(self.table, self.venue, list(self.symbols), self.instruments)

    def run_config(self) -> dict[str, Any]:
        """What the trade DB run records about the deployment."""
        out: dict[str, Any] = {
            "venue": self.venue,
            "symbols": list(self.symbols),
            "instruments": [i.describe() for i in self.instruments],
            "feature_config_toml": self.config.to_toml(),
        }
        if self.artifact is not None:
            out["artifact"] = {"path": str(self.artifact.path), "digest": self.artifact.digest}
            out["drift"] = list(self.drift)
        return out


def prepare(settings: LiveSettings, capture: Path) -> Deployment:
    """The deployment of ``settings`` on ``capture`` (see the module docstring)."""
    notices: list[str] = []
    artifact = load_artifact(settings.artifact) if settings.artifact else None
    if settings.feature_config:
        config = FeatureConfig.from_toml(settings.feature_config)
    elif artifact is not None:
        config = artifact.feature_config()
    else:
        config = FeatureConfig.default()
        notices.append(
            "feature config: the default (give --feature-config, feature_config in the session"
            " settings, or --artifact)"
        )
    venue = capture_venue([capture])
    table = with_capture_rules(load_table(settings.instruments), [capture])
    notices.append(f"instruments: {table.origin}")
    strategy, params, risk = settings.strategy, dict(settings.params), settings.risk
    if artifact is not None:
        strategy, params = artifact.strategy, dict(artifact.params)
        venue = artifact.venue or venue
        if artifact.risk and not settings.risk_given:
            risk = RiskConfig.from_mapping(dict(artifact.risk))
        symbols = tuple(artifact.symbols)
        instruments = list(artifact.instruments)
        held = capture_symbols([capture], config)
        missing = [s for s in symbols if s not in held]
        if missing:
            raise ValueError(
                f"{capture} holds {', '.join(held) or 'no symbols'}; the artifact "
                f"{artifact.path} trades {', '.join(missing)}: nothing to replay for it"
            )
    else:
        if settings.symbols:
            symbols = tuple(settings.symbols)
        else:
            symbols = tuple(capture_symbols([capture], config))
            if not symbols:
                raise ValueError(f"{capture}: no symbols in the capture")
            notices.append(f"trading the capture's symbols: {', '.join(symbols)}")
        instruments = table.resolve(symbols, venue)
    return Deployment(
        config=config,
        strategy=strategy,
        params=params,
        symbols=symbols,
        venue=venue,
        instruments=instruments,
        table=table,
        risk=risk,
        artifact=artifact,
        notices=notices,
    )


def verify(
    deployment: Deployment,
    venue_instruments: Callable[[], Mapping[str, Instrument]],
    allow_drift: bool,
) -> list[str]:
    """Checks the live side against the artifact; raises :class:`DriftError` on a difference
    unless ``allow_drift`` (then returns the differences, also kept on ``deployment``).
    ``venue_instruments``: the rules the venue states now, by symbol (the venue port's
    ``instruments``; asked only when there is an artifact)."""
    artifact = deployment.artifact
    if artifact is None:
        return []
    stated = venue_instruments()
    differences = check_drift(
        artifact,
        feature_fingerprint=deployment.config.fingerprint,
        build=build_info(),
        venue_instruments=dict(stated),
        risk=deployment.risk.to_dict(),
    )
    deployment.drift = differences
    if differences and not allow_drift:
        raise DriftError(differences)
    if differences:
        # Trading anyway: by the rules the venue states now (they are what it enforces).
        deployment.instruments = [stated.get(i.symbol, i) for i in deployment.instruments]
    return differences
