"""Batch feature computation over capture files through the Rust binding.

Arrow batches cross from Rust through the Arrow PyCapsule interface, so polars and pyarrow take
them without copying; batches bound memory on captures larger than RAM.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from twinfeed import CaptureError, _features

CapturePaths = str | PathLike[str] | Sequence[str | PathLike[str]]
Progress = Callable[[int, int], None]


class EmptyCaptureError(ValueError):
    """A capture that gave no record at all: not a capture, an empty file, or a folder without
    capture files. The message names the input, what was read and what was expected."""


def empty_capture_error(capture: CapturePaths, stats: dict[str, Any]) -> EmptyCaptureError:
    """The error for a run over ``capture`` that produced 0 records, from its ``stats``."""
    items = [capture] if isinstance(capture, str | PathLike) else list(capture)
    name = ", ".join(str(item) for item in items) if items else str(capture)
    lines = int(stats.get("lines", 0))
    if not lines:
        what = "no lines (an empty file?)"
    else:
        read = [f"{lines:,} lines"]
        for key in ("malformed_lines", "decode_errors", "unknown_frames", "filtered"):
            if stats.get(key):
                read.append(f"{int(stats[key]):,} {key.replace('_', ' ')}")
        what = ", ".join(read)
        errors = stats.get("errors") or []
        if errors:
            line, message = errors[0]
            what += f"; first problem at line {line}: {message}"
    return EmptyCaptureError(
        f"{name}: 0 records from {what}; expected a capture: lines `<local_receive_ns> "
        "<venue websocket frame>` (plain, .gz or .zst), or a folder of capture-NNNNNN files"
    )


def is_url(capture: object) -> bool:
    """Whether ``capture`` is an fsspec URL (``s3://``, ``gcs://``, ``memory://``,
    ``file://``, ...) rather than a local path."""
    return isinstance(capture, str) and "://" in capture and not Path(capture).exists()


def _url_call(url: str, call: Callable[[Any, str], Any]) -> Any:
    try:
        import fsspec
    except ImportError as error:  # pragma: no cover - fsspec comes with the dask extra
        raise CaptureError(f"{url}: reading URLs needs fsspec (pip install fsspec)") from error
    try:
        fs, path = fsspec.core.url_to_fs(url)
        return call(fs, path)
    except FileNotFoundError as error:
        raise CaptureError(f"{url}: no such file") from error
    except (OSError, ValueError) as error:
        raise CaptureError(f"{url}: cannot open it ({type(error).__name__}: {error})") from error


def url_size(url: str) -> int:
    """Bytes of the file at an fsspec URL (0 if the store does not say)."""
    return int(_url_call(url, lambda fs, path: fs.size(path)) or 0)


def open_url(url: str) -> tuple[str, Any, int]:
    """``url`` opened with fsspec for the binding to stream (no local copy): ``(url, binary
    file, size)``. Compression is told from the bytes, as for a file."""
    return _url_call(url, lambda fs, path: (url, fs.open(path, "rb"), int(fs.size(path) or 0)))


def capture_names(capture: CapturePaths) -> list[str]:
    """The inputs of a run over ``capture`` by name, in reading order: local files (a folder:
    its capture files) and fsspec URLs as given (nothing is opened)."""
    return [
        item[0] if isinstance(item, tuple) else item for item in _paths(capture, open_urls=False)
    ]


def _paths(capture: CapturePaths, open_urls: bool = True) -> list[Any]:
    """The binding's inputs: local paths as strings (a folder: its capture files in order)
    and fsspec URLs opened as streams (:func:`open_url`)."""
    items = [capture] if isinstance(capture, str | PathLike) else list(capture)
    out: list[Any] = []
    for item in items:
        if is_url(item):
            out.append(open_url(str(item)) if open_urls else str(item))
            continue
        path = Path(item)
        if path.is_dir() and len(items) == 1:
            from twinfeed.capture import capture_files

            files = [str(p) for p in capture_files(path)]
            if not files:
                raise EmptyCaptureError(
                    f"{path}: a folder without capture files (capture-NNNNNN.txt[.zst]); give "
                    "a capture file, or the folder `twinfeed ingest`/`record` wrote"
                )
            out.extend(files)
        else:
            out.append(str(path))
    return out


def open_run(
    capture: CapturePaths, config: _features.FeatureConfig | None = None
) -> _features.FeatureRun:
    """A pull-based pipeline run over one capture, a list of files, or a live capture folder;
    any of them may be an fsspec URL (streamed, see :func:`open_url`)."""
    return _features.FeatureRun(_paths(capture), config)


def require_records(capture: CapturePaths, config: _features.FeatureConfig | None = None) -> None:
    """Raises :class:`EmptyCaptureError` unless ``capture`` gives at least one record (reads
    only up to the first record of a capture; all of a file that is not one)."""
    run = open_run(capture, config)
    if run.next_records(1) is None:
        raise empty_capture_error(capture, run.stats())


def iter_feature_batches(
    capture: CapturePaths,
    config: _features.FeatureConfig | None = None,
    batch_rows: int = 65_536,
    progress: Progress | None = None,
) -> Iterator[pl.DataFrame]:
    """Yields feature DataFrames of at most ``batch_rows`` rows; memory stays flat.

    Concatenated, the batches equal :func:`compute_features` exactly.
    """
    run = open_run(capture, config)
    while (table := run.next_arrow(batch_rows)) is not None:
        if progress is not None:
            progress(run.bytes_read, run.total_bytes)
        yield pl.DataFrame(table)


def empty_features() -> pl.DataFrame:
    """A feature DataFrame of no rows, with the columns and dtypes of every other."""
    import pyarrow as pa

    return pl.DataFrame(pa.schema(_features.arrow_schema()).empty_table())


def compute_features(
    capture: CapturePaths,
    config: _features.FeatureConfig | None = None,
    progress: Progress | None = None,
) -> pl.DataFrame:
    """All feature records of a capture as one polars DataFrame (columns: README, "Columns")."""
    frames = list(iter_feature_batches(capture, config, 1 << 20, progress))
    if not frames:
        return empty_features()
    return pl.concat(frames, rechunk=False) if len(frames) > 1 else frames[0]


def iter_record_batches(
    capture: CapturePaths,
    config: _features.FeatureConfig | None = None,
    batch_rows: int = 65_536,
) -> Iterator[np.ndarray[Any, Any]]:
    """Yields numpy structured arrays of records (dtype ``twinfeed.record_dtype()``)."""
    dtype = _features.record_dtype()
    run = open_run(capture, config)
    while (raw := run.next_records(batch_rows)) is not None:
        yield np.frombuffer(raw, dtype=dtype)


def compute_records(
    capture: CapturePaths, config: _features.FeatureConfig | None = None
) -> tuple[bytes, dict[str, Any]]:
    """Every record's raw bytes, concatenated, and the run's stats (parity uses this)."""
    run = open_run(capture, config)
    chunks = []
    while (raw := run.next_records(1 << 16)) is not None:
        chunks.append(raw)
    stats = run.stats()
    stats["symbols"] = run.symbols()
    return b"".join(chunks), stats
