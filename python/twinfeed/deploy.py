"""The backtest artifact as the unit of deployment.

A backtest artifact (``runs/backtest-x/artifact.json``, :meth:`BacktestResult.artifact`) holds
everything that defines what the strategy does: its class and a sha256 of its module's source,
its parameters, the full feature config (TOML text and fingerprint), the symbols and their
instruments, the risk limits the backtest applied, the venue and the build. ``twinfeed live
--artifact`` trades exactly that: :func:`load_artifact` reads it back, :func:`check_drift`
compares it with what the live side has now (the ingest's feature config fingerprint, the
build, the strategy source on disk, the instruments as the venue states them via exchangeInfo),
and each difference is one line naming the field, the artifact's value and the live one.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twinfeed import FeatureConfig
from twinfeed.instruments import Instrument

__all__ = [
    "Artifact",
    "ArtifactError",
    "DriftError",
    "artifact_digest",
    "check_drift",
    "load_artifact",
    "strategy_source",
]


class ArtifactError(ValueError):
    """An artifact that cannot be deployed (unreadable, too old, incomplete)."""


class DriftError(RuntimeError):
    """The live side differs from the artifact (``differences`` lists each)."""

    def __init__(self, differences: list[str]) -> None:
        super().__init__(
            "refusing to trade: live differs from the artifact: "
            + "; ".join(differences)
            + " (--allow-drift trades anyway and records it)"
        )
        self.differences = differences


def strategy_source(spec: str) -> dict[str, str]:
    """``{"class", "module", "file", "sha256"}`` of a ``module:Class`` strategy's module source."""
    module_name = spec.partition(":")[0]
    module = sys.modules.get(module_name) or importlib.import_module(module_name)
    path = getattr(module, "__file__", None)
    if path is None:
        return {"class": spec, "module": module_name, "file": "", "sha256": ""}
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return {"class": spec, "module": module_name, "file": Path(path).name, "sha256": digest}


def artifact_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of the artifact file's bytes (what a live run records)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class Artifact:
    """What ``twinfeed live --artifact`` needs from an artifact file."""

    path: Path
    digest: str
    strategy: str
    source: dict[str, str]
    params: dict[str, Any]
    feature_config_toml: str
    feature_fingerprint: str
    symbols: list[str]
    instruments: list[Instrument]
    venue: str | None
    risk: dict[str, Any]
    build: dict[str, Any]
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    def feature_config(self) -> FeatureConfig:
        return FeatureConfig.from_toml_str(
            self.feature_config_toml, f"{self.path} (feature config)"
        )


def load_artifact(path: str | os.PathLike[str]) -> Artifact:
    """Reads an artifact written by ``twinfeed backtest`` (version 2 or later)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ArtifactError(f"{path}: line {error.lineno}: not JSON: {error.msg}") from error
    version = raw.get("artifact_version")
    deployment = raw.get("deployment") or {}
    if not isinstance(version, int) or version < 2 or not deployment:
        raise ArtifactError(
            f"{path}: artifact_version {version!r} has no deployment section (needs 2 or later:"
            " re-run twinfeed backtest)"
        )
    instruments = []
    for index, entry in enumerate(raw.get("instruments") or []):
        if entry is None:
            symbol = (raw.get("symbols") or ["?"] * (index + 1))[index]
            raise ArtifactError(f"{path}: instruments[{index}] ({symbol}): no trading rules")
        instruments.append(_instrument(entry, f"{path}: instruments[{index}]"))
    strategy = raw.get("strategy") or {}
    return Artifact(
        path=path,
        digest=artifact_digest(path),
        strategy=str(deployment.get("strategy_class") or strategy.get("name", "")),
        source=dict(deployment.get("strategy_source") or {}),
        params=dict(strategy.get("params") or {}),
        feature_config_toml=str(deployment.get("feature_config_toml", "")),
        feature_fingerprint=str(raw.get("feature_fingerprint", "")),
        symbols=[str(s) for s in raw.get("symbols") or []],
        instruments=instruments,
        venue=deployment.get("venue"),
        risk=dict(deployment.get("risk") or {}),
        build=dict(raw.get("build") or {}),
        raw=raw,
    )


def _instrument(entry: dict[str, Any], where: str) -> Instrument:
    from decimal import Decimal

    values = dict(entry)
    decimals = {
        "tick_size",
        "step_size",
        "min_qty",
        "max_qty",
        "min_price",
        "max_price",
        "min_notional",
        "market_step_size",
        "market_min_qty",
        "market_max_qty",
        "contract_size",
        "multiplier",
    }
    try:
        for name in decimals & set(values):
            values[name] = Decimal(str(values[name]))
        return Instrument(**values)
    except (TypeError, ValueError, ArithmeticError) as error:
        raise ArtifactError(f"{where}: {error}") from error


def check_drift(
    artifact: Artifact,
    *,
    feature_fingerprint: str,
    build: dict[str, Any],
    venue_instruments: dict[str, Instrument | None],
    risk: dict[str, Any] | None = None,
) -> list[str]:
    """One line per difference between the artifact and the live side (empty: none).

    ``feature_fingerprint``: the fingerprint of the config the ingest runs; ``build``: this
    process's build info; ``venue_instruments``: symbol -> the rules the venue states now
    (None: the venue does not list it); ``risk``: the limits live risk will apply. The
    strategy's source is read from disk now.
    """
    differences = []
    if feature_fingerprint != artifact.feature_fingerprint:
        differences.append(
            f"feature config fingerprint {feature_fingerprint[:12]} != artifact "
            f"{artifact.feature_fingerprint[:12]}"
        )
    for key in ("version", "schema_version", "git_revision"):
        if key in artifact.build and artifact.build.get(key) != build.get(key):
            differences.append(f"build {key} {build.get(key)} != artifact {artifact.build[key]}")
    if artifact.source.get("sha256"):
        now = strategy_source(artifact.strategy)
        if now["sha256"] != artifact.source["sha256"]:
            differences.append(
                f"strategy source {now['file']} sha256 {now['sha256'][:12]} != artifact "
                f"{artifact.source['sha256'][:12]}"
            )
    if risk is not None and artifact.risk:
        for name, value in sorted(artifact.risk.items()):
            if name in risk and risk[name] != value:
                differences.append(f"risk {name} {risk[name]} != artifact {value}")
    for instrument in artifact.instruments:
        live = venue_instruments.get(instrument.symbol)
        if live is None:
            differences.append(f"{instrument.symbol}: the venue does not list it")
            continue
        for line in live.differences(instrument):
            name, _, rest = line.partition(" ")
            live_value, _, artifact_value = rest.partition(" != ")
            differences.append(
                f"{instrument.symbol} {name} {live_value} (venue) != {artifact_value} (artifact)"
            )
    return differences
