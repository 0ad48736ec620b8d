"""Dask: feature frames and backfills on a Dask cluster (``pip install twinfeed[dask]``).

- :func:`features_frame` is a lazy ``dask.dataframe`` of the feature records of many capture
  files, one partition per file (``dd.from_map``), its ``meta`` the binding's Arrow schema.
- ``backfill(..., client=distributed.Client(...))`` (:func:`twinfeed.research.backfill`) runs
  :func:`twinfeed.research.backfills.build_one` per output file as Dask tasks
  (:func:`run_on_client`).

On a real cluster every worker needs twinfeed installed (the same wheel as the client: the
fingerprint includes the build) and the capture files and output folder at the same paths,
for example on shared storage mounted alike on every node.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from twinfeed import FeatureConfig
from twinfeed.research.backfills import BackfillJob, BackfillResult, build_one, gather

__all__ = ["features_frame", "run_on_client"]


def _empty() -> Any:
    """The partitions' ``meta``: no rows, the dtypes of ``compute_features(...).to_pandas()``
    (``kind`` an ordered categorical of the kind names, times ``datetime64[ns, UTC]``)."""
    from twinfeed.research.features import empty_features

    return empty_features().to_pandas()


def _partition(path: str, config_toml: str) -> Any:
    """One capture file's feature records as a pandas DataFrame (a Dask partition)."""
    from twinfeed.research.features import compute_features

    config = FeatureConfig.from_toml_str(config_toml)
    return compute_features(path, config).to_pandas()


def features_frame(
    paths: Sequence[str | os.PathLike[str]], config: FeatureConfig | None = None
) -> Any:
    """A ``dask.dataframe.DataFrame`` of the feature records of ``paths``: one partition per
    capture file, in the order given, each equal to ``compute_features`` of that file."""
    import dask.dataframe as dd

    config = config or FeatureConfig.default()
    meta = _empty()
    return dd.from_map(
        _partition,
        [os.fspath(p) for p in paths],
        config_toml=config.to_toml(),
        meta=meta,
        enforce_metadata=False,
    )


def run_on_client(
    client: Any,
    jobs: list[BackfillJob],
    config_toml: str,
    done: Callable[[BackfillResult, BackfillJob], None],
) -> list[BackfillResult]:
    """Runs the jobs on a ``distributed.Client``; ``done`` is called as each one finishes.
    Raises the first failure after every job ended (finished outputs are kept)."""
    from distributed import as_completed

    futures = [
        client.submit(
            build_one, job, config_toml, key=f"twinfeed-backfill-{i}-{job.out}", pure=False
        )
        for i, job in enumerate(jobs)
    ]
    index = {future.key: i for i, future in enumerate(futures)}
    finished = ((index[future.key], future.result) for future in as_completed(futures))
    return gather(finished, jobs, done)
