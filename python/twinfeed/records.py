"""Record kinds and build provenance, read from the extension."""

from __future__ import annotations

import warnings
from typing import Any

from twinfeed import _features

#: Record kind codes by name, e.g. ``KIND["quote"] == 1``.
KIND: dict[str, int] = dict(_features.record_kinds())
#: Kind names by code.
KIND_NAME: dict[int, str] = {code: name for name, code in KIND.items()}


def build_info(config: _features.FeatureConfig | None = None) -> dict[str, Any]:
    """Crate version, build profile, git revision, schema version and (with a config)
    fingerprint."""
    info: dict[str, Any] = {
        "version": _features.__version__,
        "profile": _features.BUILD_PROFILE,
        "git_revision": _features.GIT_REVISION,
        "schema_version": _features.SCHEMA_VERSION,
    }
    if config is not None:
        info["fingerprint"] = config.fingerprint
    return info


def warn_if_debug() -> None:
    """Benchmarks call this: a debug build must never be measured silently."""
    if _features.BUILD_PROFILE != "release":
        warnings.warn(
            "twinfeed._features is a debug build; timings are meaningless",
            RuntimeWarning,
            stacklevel=2,
        )
