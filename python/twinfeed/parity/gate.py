"""``parity gate``: what CI runs before a deployment.

It passes only if (1) the strategy artifact names the fingerprint and crate version of the build
about to be deployed, (2) every golden digest matches, and (3) the live-vs-batch check passes on
every configured capture, and (4) the decision replay of every given live session's trade DB
(``--live-db``) reproduces every request (twinfeed.parity.trades).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twinfeed import FeatureConfig
from twinfeed.parity.check import ParityReport, parity_check
from twinfeed.parity.golden import (
    GoldenResult,
    available_captures,
    golden_captures,
    verify_golden,
)
from twinfeed.parity.trades import JournalError, TradeReplay, replay_decisions
from twinfeed.records import build_info


@dataclass
class GateResult:
    failures: list[str] = field(default_factory=list)
    artifact: dict[str, Any] = field(default_factory=dict)
    goldens: list[GoldenResult] = field(default_factory=list)
    checks: list[ParityReport] = field(default_factory=list)
    replays: list[TradeReplay] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def check_artifact(path: Path, config: FeatureConfig) -> list[str]:
    """Reasons the artifact at ``path`` does not match this build (empty when it does)."""
    try:
        artifact = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        return [f"strategy artifact {path}: cannot read it ({error})"]
    reasons = []
    named = artifact.get("feature_fingerprint")
    if named != config.fingerprint:
        reasons.append(
            f"strategy artifact {path} was validated on feature fingerprint {str(named)[:16]}, "
            f"but this build computes {config.fingerprint[:16]}: re-run the backtest"
        )
    built = (artifact.get("build") or {}).get("version")
    if built != build_info()["version"]:
        reasons.append(
            f"strategy artifact {path} was built with twinfeed {built}, this build is "
            f"{build_info()['version']}"
        )
    return reasons


def parity_gate(
    strategy_artifact: Path,
    config: FeatureConfig | None = None,
    captures: list[Path] | None = None,
    work_dir: Path | None = None,
    live_dbs: list[Path] | None = None,
) -> GateResult:
    config = config or FeatureConfig.default()
    result = GateResult()
    result.failures += check_artifact(strategy_artifact, config)
    for db in live_dbs or []:
        try:
            replay = replay_decisions(db)
        except JournalError as error:
            result.failures.append(f"decision replay: {error}")
            continue
        result.replays.append(replay)
        if replay.divergence is not None:
            result.failures.append(
                f"decision replay: {db} run {replay.run_id}: request "
                f"{replay.divergence.request}: {replay.divergence.reason}"
            )
        elif replay.truncated:
            result.failures.append(f"decision replay: {db} run {replay.run_id}: {replay.truncated}")
    for name in golden_captures():
        golden = verify_golden(name, config)
        result.goldens.append(golden)
        if not golden.ok:
            result.failures.append("golden: " + golden.describe())
    from twinfeed.parity.golden import REPO

    targets = captures if captures is not None else [REPO / c for c in available_captures()]
    work = work_dir or Path(tempfile.mkdtemp(prefix="parity-gate-"))
    for index, capture in enumerate(targets):
        report = parity_check(capture, config, work / f"{index}-{Path(capture).name}")
        result.checks.append(report)
        for comparison in report.comparisons:
            if comparison.gating and not comparison.equal:
                result.failures.append(f"parity: {capture}: {comparison.label} differs")
    return result
