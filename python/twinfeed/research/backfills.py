"""Feature backfills: many capture files to feature Parquet, on all cores or on a Dask cluster.

The batch path is a pure function of (feature config, capture file), so a backfill is a map of
:func:`build_one` over jobs (one output file each: a capture file, or a catalog partition's
files as one stream). Each job writes its Parquet under a temporary name and renames it when
complete (:mod:`twinfeed._atomic`), so a worker killed mid-file leaves no file at the output
name; the temporaries such a worker leaves are removed by the next run before it builds that
output. An output that exists and holds the config's fingerprint is skipped, which makes a
backfill resumable: run it again after an interruption and it builds what is missing.

Three ways to run the same map, byte-identical outputs:

- ``workers=1``: in this process, file after file;
- ``workers=N`` (default: every core): a local process pool (started from a fork server, or
  ``spawn``: workers start clean, whatever threads the parent runs; the binding releases the
  GIL, but a process per core also keeps Parquet encoding and polars off one interpreter);
- ``client=distributed.Client(...)``: the jobs as Dask tasks on that cluster
  (see :mod:`twinfeed.research.dask`). Workers need twinfeed installed (the same wheel) and
  the captures and output folder at the same paths (shared storage).
"""

from __future__ import annotations

import functools
import os
import resource
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from twinfeed import CaptureError, FeatureConfig
from twinfeed._atomic import leftover_temporaries
from twinfeed.capture import capture_stem
from twinfeed.records import ARROW_VIEW
from twinfeed.research.features import is_url, url_size
from twinfeed.research.parquet import SKIP_KEYS, read_arrow_view, read_fingerprint, write_features

if TYPE_CHECKING:
    from twinfeed.research.catalog import Catalog

__all__ = [
    "BackfillJob",
    "BackfillResult",
    "backfill",
    "build_one",
    "jobs_for_catalog",
    "jobs_for_paths",
    "run_jobs",
]


@dataclass(frozen=True)
class BackfillJob:
    """One output file: ``sources`` (capture files, read as one stream in this order) to
    ``out``. Plain strings, so a job pickles to any worker."""

    sources: tuple[str, ...]
    out: str

    @functools.cached_property
    def bytes(self) -> int:
        """Bytes of the sources on disk or in the store (asked once: a URL's costs a call)."""
        return sum(_size(source) for source in self.sources)


@dataclass
class BackfillResult:
    """What one job did: ``computed`` False when a file for the fingerprint was there."""

    out: str
    sources: tuple[str, ...]
    computed: bool
    rows: int = 0
    bytes_in: int = 0
    seconds: float = 0.0
    skipped: dict[str, int] = field(default_factory=dict)
    #: Peak resident memory of the process that ran the job (KiB, ``ru_maxrss``).
    peak_rss_kib: int = 0
    worker: int = 0


def _size(source: str) -> int:
    if is_url(source):
        return url_size(source)
    return os.path.getsize(source)


def build_one(job: BackfillJob, config_toml: str) -> BackfillResult:
    """Builds ``job.out`` for the config given as TOML text (a worker rebuilds the config, so
    nothing but strings crosses to it). Skips an output that holds the config's fingerprint;
    refuses one that holds another (a different config's file at that name). A file of the
    config's fingerprint in another Arrow view (``twinfeed.records.ARROW_VIEW``, e.g. written
    before times were timestamps) is rebuilt: the records are the same, their columns not."""
    config = FeatureConfig.from_toml_str(config_toml)
    out = Path(job.out)
    result = BackfillResult(out=job.out, sources=job.sources, computed=False, worker=os.getpid())
    if out.exists():
        held = read_fingerprint(out)
        if held != config.fingerprint:
            raise CaptureError(
                f"{out}: holds features of fingerprint {held}, not {config.fingerprint}; "
                "remove it or write to another folder"
            )
        if read_arrow_view(out) == ARROW_VIEW:
            return result
        # Another view of the same records: rebuilt, and renamed over it when complete.
    for leftover in leftover_temporaries(out):
        leftover.unlink(missing_ok=True)
    started = time.perf_counter()
    summary = write_features(list(job.sources), config, out)
    result.computed = True
    result.rows = summary.rows
    result.bytes_in = job.bytes
    result.seconds = time.perf_counter() - started
    result.skipped = {key: int(summary.stats.get(key) or 0) for key in SKIP_KEYS}
    result.peak_rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return result


def jobs_for_paths(
    paths: Iterable[str | os.PathLike[str]], out_dir: str | os.PathLike[str], config: FeatureConfig
) -> list[BackfillJob]:
    """One job per capture file, its output at the file's path relative to the folder all the
    files share, under ``<out_dir>/fingerprint=<fp16>/``, ending ``.parquet`` instead of the
    capture suffix: ``usdm/btcusdt_20240808.gz`` and ``spot/btcusdt_20240808.gz`` give
    ``usdm/btcusdt_20240808.parquet`` and ``spot/btcusdt_20240808.parquet`` (the fingerprint
    folder keeps outputs of different configs apart, as the catalog does)."""
    folder = Path(out_dir) / f"fingerprint={config.fingerprint[:16]}"
    # Local files by their resolved path, URLs (fsspec, streamed) by their path after the
    # scheme: `s3://bucket/usdm/a.gz` and `s3://bucket/spot/a.gz` give usdm/a and spot/a.
    sources: list[tuple[str, PurePosixPath]] = []
    for path in paths:
        if is_url(path):
            url = str(path)
            sources.append((url, PurePosixPath("/" + url.split("://", 1)[1].lstrip("/"))))
            continue
        local = Path(path).resolve()
        if not local.is_file():
            raise CaptureError(f"{local}: not a capture file")
        sources.append((str(local), PurePosixPath(local.as_posix())))
    if not sources:
        return []
    root = PurePosixPath(os.path.commonpath([str(where.parent) for _, where in sources]))
    jobs: list[BackfillJob] = []
    seen: dict[Path, str] = {}
    for source, where in sources:
        relative = where.relative_to(root)
        name = capture_stem(relative.name)
        target = folder / Path(*relative.parent.parts) / f"{name}.parquet"
        if target in seen:
            raise CaptureError(
                f"{source} and {seen[target]} would both write {target}: "
                "rename one, or backfill a catalog"
            )
        seen[target] = source
        jobs.append(BackfillJob((source,), str(target)))
    return jobs


def jobs_for_catalog(
    catalog: Catalog, config: FeatureConfig, **where: str | None
) -> list[BackfillJob]:
    """One job per catalog partition (its capture files as one stream) to its feature file."""
    return [
        BackfillJob(
            tuple(str(p) for p in catalog.capture_files(partition)),
            str(catalog.feature_path(partition, config)),
        )
        for partition in catalog.partitions(
            where.get("venue"), where.get("symbol"), where.get("date")
        )
    ]


Reporter = Callable[[BackfillResult, BackfillJob], None]


def backfill(
    source: Catalog | Sequence[str | os.PathLike[str]],
    config: FeatureConfig | None = None,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    client: Any = None,
    progress: bool = True,
    on_result: Reporter | None = None,
) -> list[BackfillResult]:
    """Builds the feature Parquet of ``source`` (capture paths with ``out_dir``, or a
    :class:`~twinfeed.research.catalog.Catalog`) for ``config`` (default config if None).

    ``workers``: processes of a local pool (default every core; 1 runs in this process).
    ``client``: a ``distributed.Client``: the jobs run on its cluster instead. ``progress``
    draws a bar over files and bytes. Returns one result per job, in job order; raises the
    first job's error after the others finished (their outputs are kept)."""
    from twinfeed.research.catalog import Catalog

    config = config or FeatureConfig.default()
    if isinstance(source, Catalog):
        jobs = jobs_for_catalog(source, config)
    else:
        if out_dir is None:
            raise ValueError("backfill of capture paths needs out_dir")
        jobs = jobs_for_paths(source, out_dir, config)
    return run_jobs(
        jobs, config, workers=workers, client=client, progress=progress, on_result=on_result
    )


def run_jobs(
    jobs: list[BackfillJob],
    config: FeatureConfig,
    *,
    workers: int | None = None,
    client: Any = None,
    progress: bool = True,
    on_result: Reporter | None = None,
) -> list[BackfillResult]:
    """Runs ``jobs`` (see :func:`backfill` for ``workers``, ``client`` and ``progress``)."""
    toml = config.to_toml()
    with _Bar(len(jobs), sum(job.bytes for job in jobs), enabled=progress) as bar:

        def done(result: BackfillResult, job: BackfillJob) -> None:
            bar.advance(job.bytes)
            if on_result is not None:
                on_result(result, job)

        if client is not None:
            from twinfeed.research.dask import run_on_client

            return run_on_client(client, jobs, toml, done)
        count = workers or os.cpu_count() or 1
        if count <= 1 or len(jobs) <= 1:
            results = []
            for job in jobs:
                results.append(build_one(job, toml))
                done(results[-1], job)
            return results
        return _run_pool(jobs, toml, min(count, len(jobs)), done)


def _context() -> Any:
    """Workers start from a fork server that imported this module once (each then starts in
    milliseconds instead of importing polars and pyarrow again); ``spawn`` where there is none.
    Neither forks this process, whatever threads it runs."""
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():
        context = get_context("forkserver")
        context.set_forkserver_preload(["twinfeed.research.backfills"])
        return context
    return get_context("spawn")


def _run_pool(
    jobs: list[BackfillJob], toml: str, workers: int, done: Reporter
) -> list[BackfillResult]:
    with ProcessPoolExecutor(max_workers=workers, mp_context=_context()) as pool:
        # Largest first: the long files start early instead of ending the run alone.
        order = sorted(range(len(jobs)), key=lambda i: -jobs[i].bytes)
        pending: dict[Future[BackfillResult], int] = {
            pool.submit(build_one, jobs[i], toml): i for i in order
        }

        def finished() -> Iterator[tuple[int, Callable[[], BackfillResult]]]:
            while pending:
                done_now, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done_now:
                    yield pending.pop(future), future.result

        return gather(finished(), jobs, done)


def gather(
    finished: Iterable[tuple[int, Callable[[], BackfillResult]]],
    jobs: list[BackfillJob],
    done: Reporter,
) -> list[BackfillResult]:
    """Collects results as jobs finish (``(job index, result getter)`` pairs, in finishing
    order), reporting each to ``done``; raises the first failure once every job ended (the
    outputs of the others are kept)."""
    results: list[BackfillResult | None] = [None] * len(jobs)
    failure: BaseException | None = None
    for index, result in finished:
        try:
            results[index] = result()
        except BaseException as error:  # noqa: BLE001 - raised after the rest ran
            failure = failure or error
            continue
        done(results[index], jobs[index])  # type: ignore[arg-type]
    if failure is not None:
        raise failure
    return [r for r in results if r is not None]


class _Bar:
    """A rich progress bar over the bytes of the capture files, with files done / total."""

    def __init__(self, files: int, total_bytes: int, enabled: bool) -> None:
        self.enabled = enabled
        self.files, self.total_bytes, self.done = files, total_bytes, 0
        self._progress: Any = None

    def __enter__(self) -> _Bar:
        if self.enabled:
            from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

            self._progress = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TimeRemainingColumn(),
                transient=True,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self._label(), total=self.total_bytes)
        return self

    def _label(self) -> str:
        return f"backfill {self.done}/{self.files} files"

    def advance(self, nbytes: int) -> None:
        self.done += 1
        if self._progress is not None:
            self._progress.update(self._task, advance=nbytes, description=self._label())

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
