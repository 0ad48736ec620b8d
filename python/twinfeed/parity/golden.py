"""Golden record-stream digests per (capture, fingerprint), committed under ``data/golden/``.

A change to feature code that does not change the fingerprint changes a digest, and the gate
fails: features change only together with the fingerprint, and goldens are regenerated on
purpose (``make golden``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinfeed import SCHEMA_VERSION, FeatureConfig
from twinfeed._atomic import write_text
from twinfeed.parity.compare import digest
from twinfeed.research.features import compute_records

REPO = Path(__file__).resolve().parents[3]
GOLDEN_DIR = REPO / "data" / "golden"
#: Captures with goldens: the bundled one, and the real ones beside a clone (../shared).
GOLDEN_CAPTURES = (
    "data/synth-btcusdt.txt",
    "../shared/data/real/binance-usdm/btcusdt_20240808.gz",
    "../shared/data/real/binance-spot/btcusdt_20240808.gz",
)
#: Captures with goldens of the batch path only, and the importer format each is read through
#: first (``hftbacktest``: already the capture format). The live path cannot replay them yet
#: (the venue and the ingest speak Binance's protocol only), so the gate checks their goldens
#: but runs no live parity on them.
BATCH_GOLDEN_CAPTURES = {
    "../shared/data/real/cryptofeed/OKX.ws.1.0": "cryptofeed",
    "../shared/data/real/hyperliquid/btcusd_20250126.gz": "hftbacktest",
}


def file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def golden_path(capture: str, fingerprint: str, golden_dir: Path = GOLDEN_DIR) -> Path:
    stem = capture.replace("../", "").replace("/", "__")
    return golden_dir / f"{stem}.{fingerprint[:16]}.json"


@dataclass
class GoldenResult:
    capture: str
    status: str  # "ok", "mismatch", "missing", "capture-changed"
    expected: dict[str, Any] | None
    actual: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def describe(self) -> str:
        if self.status == "ok":
            return f"{self.capture}: {self.actual['records']:,} records, digest matches"
        if self.status == "missing":
            return f"{self.capture}: no golden for fingerprint {self.actual['fingerprint'][:16]}"
        assert self.expected is not None
        if self.status == "capture-changed":
            return f"{self.capture}: the capture file itself changed (sha256 differs)"
        return (
            f"{self.capture}: feature output changed without a fingerprint change: "
            f"{self.expected['records']:,} records {self.expected['digest'][:16]} expected, "
            f"{self.actual['records']:,} records {self.actual['digest'][:16]} now"
        )


def golden_entry(
    capture: str, records: bytes, config: FeatureConfig, root: Path = REPO
) -> dict[str, Any]:
    return {
        "capture": capture,
        "capture_sha256": file_sha256(root / capture),
        "fingerprint": config.fingerprint,
        "schema_version": SCHEMA_VERSION,
        "records": len(records) // 192,
        "digest": digest(records),
    }


def verify_records(
    capture: str,
    records: bytes,
    config: FeatureConfig,
    golden_dir: Path = GOLDEN_DIR,
    root: Path = REPO,
) -> GoldenResult:
    """Checks a record stream (of ``capture`` under ``config``) against its golden."""
    actual = golden_entry(capture, records, config, root)
    path = golden_path(capture, config.fingerprint, golden_dir)
    if not path.exists():
        return GoldenResult(capture, "missing", None, actual)
    expected = json.loads(path.read_text())
    if expected["capture_sha256"] != actual["capture_sha256"]:
        return GoldenResult(capture, "capture-changed", expected, actual)
    same = (expected["digest"], expected["records"]) == (actual["digest"], actual["records"])
    return GoldenResult(capture, "ok" if same else "mismatch", expected, actual)


def verify_golden(
    capture: str, config: FeatureConfig, golden_dir: Path = GOLDEN_DIR
) -> GoldenResult:
    """Recomputes ``capture`` (relative to the repository) and checks it against its golden."""
    return verify_records(capture, _records(capture, config), config, golden_dir)


def _records(capture: str, config: FeatureConfig) -> bytes:
    """The batch records of ``capture``, imported into the capture format first if need be."""
    if BATCH_GOLDEN_CAPTURES.get(capture, "hftbacktest") == "hftbacktest":
        records, _ = compute_records(REPO / capture, config)
        return records
    import tempfile

    from twinfeed.research.importers import import_capture

    with tempfile.TemporaryDirectory(prefix="golden-import-") as tmp:
        imported = Path(tmp) / "capture.txt"
        import_capture(REPO / capture, "cryptofeed", imported)
        records, _ = compute_records(imported, config)
    return records


def write_golden(capture: str, config: FeatureConfig, golden_dir: Path = GOLDEN_DIR) -> Path:
    """Regenerates the golden of ``capture`` under ``config`` (``make golden``)."""
    records = _records(capture, config)
    golden_dir.mkdir(parents=True, exist_ok=True)
    path = golden_path(capture, config.fingerprint, golden_dir)
    write_text(path, json.dumps(golden_entry(capture, records, config), indent=2) + "\n")
    return path


def available_captures() -> list[str]:
    """Captures with goldens that the gate also replays through the live path."""
    return [c for c in GOLDEN_CAPTURES if (REPO / c).exists()]


def golden_captures() -> list[str]:
    """Every capture with a golden that is present: :func:`available_captures` and the
    batch-only ones."""
    batch_only = [c for c in BATCH_GOLDEN_CAPTURES if (REPO / c).exists()]
    return available_captures() + batch_only
