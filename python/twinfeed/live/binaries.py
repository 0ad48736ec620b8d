"""Finding the project's release binaries (twinfeed-ingest, twinfeed-venue)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def find_binary(name: str) -> Path:
    """The path of a twinfeed binary: ``$TWINFEED_BIN_DIR``, then ``target/release`` of this
    repository, then PATH. FileNotFoundError says where it looked and how to build it."""
    candidates: list[Path] = []
    bin_dir = os.environ.get("TWINFEED_BIN_DIR")
    if bin_dir:
        candidates.append(Path(bin_dir) / name)
    candidates.append(REPO / "target" / "release" / name)
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    looked = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"{name} not found (looked in {looked} and on PATH): run `make setup` "
        f"(or `cargo build --release -p {name}`), or set TWINFEED_BIN_DIR"
    )
