"""Parity: live path vs batch binding, golden digests, and the deployment gate."""

from twinfeed.parity.check import ParityMismatch, ParityReport, parity_check
from twinfeed.parity.compare import Comparison, compare_streams, digest
from twinfeed.parity.diff import diff_parquet
from twinfeed.parity.gate import GateResult, parity_gate
from twinfeed.parity.golden import verify_golden, verify_records, write_golden

__all__ = [
    "Comparison",
    "GateResult",
    "ParityMismatch",
    "ParityReport",
    "compare_streams",
    "diff_parquet",
    "digest",
    "parity_check",
    "parity_gate",
    "verify_golden",
    "verify_records",
    "write_golden",
]
