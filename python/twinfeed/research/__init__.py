"""Research: features from captures, data catalog, backtester, metrics and plots."""

from twinfeed.research.backfills import backfill
from twinfeed.research.features import (
    compute_features,
    compute_records,
    iter_feature_batches,
    iter_record_batches,
)

__all__ = [
    "backfill",
    "compute_features",
    "compute_records",
    "iter_feature_batches",
    "iter_record_batches",
]
