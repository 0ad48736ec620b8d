"""A data catalog: captures partitioned by venue, symbol and date, feature Parquet cached per
fingerprint, lazy polars scans and DuckDB SQL over them.

Layout under ``root`` (hive-style ``key=value`` folders, so DuckDB, polars and pyarrow read it)::

    captures/venue=<venue>/symbol=<symbol>/date=<YYYY-MM-DD>/<capture file>
    features/fingerprint=<fp16>/venue=<venue>/symbol=<symbol>/date=<YYYY-MM-DD>/part.parquet

``date`` is the UTC date of the capture's first local receive time. ``fp16`` is the first 16 hex
digits of the config fingerprint (README.md, contract 4); the full fingerprint is stamped in each
Parquet file. A feature file is computed once per (fingerprint, partition) and reused while it
exists, so changing the config computes new files beside the old ones and never mixes them.
Several capture files in one partition are one stream, in order of first receive time (as the
rotated files of a live capture folder are); adding a capture to a partition drops that
partition's cached features.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from twinfeed import CaptureError, FeatureConfig, TwinfeedError
from twinfeed._atomic import atomic_path
from twinfeed._features import first_capture_line
from twinfeed.instruments import InstrumentTable, load_table, with_capture_rules
from twinfeed.research.features import is_url, open_run, open_url
from twinfeed.research.parquet import read_fingerprint

if TYPE_CHECKING:
    from twinfeed.research.backfills import BackfillResult

FEATURE_FILE = "part.parquet"
# A capture whose symbols the pipeline finds to be several goes under this symbol partition.
MULTI_SYMBOL = "ALL"


class CatalogError(TwinfeedError):
    """A capture cannot be catalogued, or a catalog query is malformed."""


@dataclass(frozen=True)
class Partition:
    """One (venue, symbol, date) folder of captures."""

    venue: str
    symbol: str
    date: str

    @property
    def relative(self) -> Path:
        return Path(f"venue={self.venue}", f"symbol={self.symbol}", f"date={self.date}")


def first_local_ns(path: Path) -> int:
    """The local receive ns of a capture's first line (plain, gzip or zstd)."""
    try:
        first = first_capture_line(path)
    except CaptureError as error:
        raise CatalogError(str(error)) from error
    if first is None:
        raise CatalogError(f"{path}: empty capture, no date to file it under")
    number, line = first
    stamp = line.split(b" ", 1)[0]
    if not stamp.isdigit():
        raise CatalogError(
            f"{path}:{number}: expected `<local_receive_ns> <frame>`, got {line[:40]!r}"
        )
    return int(stamp)


def utc_date(local_ns: int) -> str:
    return datetime.fromtimestamp(local_ns // 1_000_000_000, tz=UTC).strftime("%Y-%m-%d")


def _check_name(kind: str, value: str) -> str:
    if not value or "/" in value or "=" in value or value.startswith("."):
        raise CatalogError(f"{kind} {value!r} cannot name a partition folder")
    return value


def _value(folder: Path, key: str) -> str:
    prefix = f"{key}="
    if not folder.name.startswith(prefix):
        raise CatalogError(f"{folder}: expected a `{prefix}...` folder")
    return folder.name[len(prefix) :]


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class Catalog:
    """Captures and cached feature Parquet under ``root``."""

    def __init__(self, root: str | os.PathLike[str] = "data/catalog") -> None:
        self.root = Path(root)

    @property
    def captures_root(self) -> Path:
        return self.root / "captures"

    @property
    def features_root(self) -> Path:
        return self.root / "features"

    # --- captures -----------------------------------------------------------------------------

    def add_capture(
        self,
        path: str | os.PathLike[str],
        venue: str,
        symbol: str | None = None,
        link: bool = False,
    ) -> Path:
        """Files a capture under its partition and returns the catalogued path.

        ``symbol`` defaults to the one symbol the pipeline finds in the capture (``ALL`` if it
        finds several). ``link`` hard-links instead of copying where the file system allows.
        Adding the same file twice is a no-op; a different file of the same name is an error.
        """
        if is_url(path):
            return self._add_url(str(path), venue, symbol)
        source = Path(path)
        if not source.is_file():
            raise CatalogError(f"{source}: no such capture file")
        if symbol is None:
            symbol = self._detect_symbol(source)
        partition = Partition(
            _check_name("venue", venue),
            _check_name("symbol", symbol),
            utc_date(first_local_ns(source)),
        )
        folder = self.captures_root / partition.relative
        target = folder / source.name
        if target.exists():
            if target.stat().st_size == source.stat().st_size and _same_bytes(source, target):
                return target
            raise CatalogError(f"{target} exists with different content; rename the capture")
        folder.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        copied = False
        if link:
            try:
                os.link(source, target)
                copied = True
            except OSError:
                pass
        if not copied:
            shutil.copyfile(source, partial)
            partial.replace(target)
        self._drop_features(partition)
        return target

    def _add_url(self, url: str, venue: str, symbol: str | None) -> Path:
        """A capture behind an fsspec URL: streamed into the catalog's own folder (the catalog
        keeps its captures; see the module docstring), then filed like a local file."""
        incoming = self.captures_root / ".incoming"
        local = incoming / url.rstrip("/").rsplit("/", 1)[-1]
        _, handle, _ = open_url(url)
        with handle, atomic_path(local) as temporary, open(temporary, "wb") as out:
            shutil.copyfileobj(handle, out, 1 << 20)
        try:
            return self.add_capture(local, venue, symbol=symbol, link=True)
        finally:
            local.unlink(missing_ok=True)

    def _detect_symbol(self, source: Path) -> str:
        run = open_run(source)
        while run.next_records(1 << 16) is not None:
            pass
        symbols = run.symbols()
        if not symbols:
            raise CatalogError(f"{source}: no symbol found; pass symbol= explicitly")
        return symbols[0] if len(symbols) == 1 else MULTI_SYMBOL

    def _drop_features(self, partition: Partition) -> None:
        if not self.features_root.is_dir():
            return
        for fingerprint_dir in self.features_root.iterdir():
            stale = fingerprint_dir / partition.relative
            if stale.is_dir():
                shutil.rmtree(stale)

    def partitions(
        self, venue: str | None = None, symbol: str | None = None, date: str | None = None
    ) -> list[Partition]:
        """Capture partitions matching the filters, sorted by (venue, symbol, date)."""
        found = []
        for folder in sorted(self.captures_root.glob("venue=*/symbol=*/date=*")):
            if not folder.is_dir() or not self._capture_files(folder):
                continue
            partition = Partition(
                _value(folder.parent.parent, "venue"),
                _value(folder.parent, "symbol"),
                _value(folder, "date"),
            )
            if venue is not None and partition.venue != venue:
                continue
            if symbol is not None and partition.symbol != symbol:
                continue
            if date is not None and partition.date != date:
                continue
            found.append(partition)
        return found

    @staticmethod
    def _capture_files(folder: Path) -> list[Path]:
        files = [p for p in folder.iterdir() if p.is_file() and not p.name.endswith(".partial")]
        return sorted(files, key=lambda p: (first_local_ns(p), p.name))

    def capture_files(self, partition: Partition) -> list[Path]:
        """A partition's capture files in stream order."""
        return self._capture_files(self.captures_root / partition.relative)

    def instruments(self, partition: Partition) -> InstrumentTable:
        """The trading rules in force when the partition was recorded: the newest
        ``instruments`` line of its captures (see
        :func:`twinfeed.instruments.instruments_from_capture`) over the shipped table, which
        stays the fallback for captures without one (hftbacktest's). The table's ``origin``
        says which source was used."""
        return with_capture_rules(load_table(), self.capture_files(partition))

    # --- features -----------------------------------------------------------------------------

    def feature_path(self, partition: Partition, config: FeatureConfig) -> Path:
        fp16 = config.fingerprint[:16]
        return self.features_root / f"fingerprint={fp16}" / partition.relative / FEATURE_FILE

    def build(
        self,
        config: FeatureConfig | None = None,
        venue: str | None = None,
        symbol: str | None = None,
        date: str | None = None,
        *,
        workers: int = 1,
        client: Any = None,
        progress: bool = False,
    ) -> list[tuple[Path, bool]]:
        """Ensures feature files exist for ``config``; returns (path, computed now) per partition.

        A file is computed only when none exists for the config's fingerprint. ``workers``
        processes (or the Dask ``client``'s cluster) build the missing ones in parallel; the
        files are the same byte for byte (see :meth:`backfill`).
        """
        results = self.backfill(
            config, venue, symbol, date, workers=workers, client=client, progress=progress
        )
        return [(Path(result.out), result.computed) for result in results]

    def backfill(
        self,
        config: FeatureConfig | None = None,
        venue: str | None = None,
        symbol: str | None = None,
        date: str | None = None,
        *,
        workers: int | None = None,
        client: Any = None,
        progress: bool = True,
    ) -> list[BackfillResult]:
        """:meth:`build` with what each partition's run did (rows, skipped lines, time, peak
        memory): ``workers`` processes (default every core; 1 in this process) or the Dask
        ``client``'s cluster (:func:`twinfeed.research.backfills.run_jobs`)."""
        from twinfeed.research.backfills import jobs_for_catalog, run_jobs

        config = config or FeatureConfig.default()
        jobs = jobs_for_catalog(self, config, venue=venue, symbol=symbol, date=date)
        for job in jobs:
            path = Path(job.out)
            if path.exists() and read_fingerprint(path) != config.fingerprint:
                raise CatalogError(
                    f"{path} holds fingerprint {read_fingerprint(path)}, not "
                    f"{config.fingerprint} (16-digit prefix collision); remove it"
                )
        return run_jobs(jobs, config, workers=workers, client=client, progress=progress)

    def features(
        self,
        config: FeatureConfig | None = None,
        venue: str | None = None,
        symbol: str | None = None,
        date: str | None = None,
    ) -> pl.LazyFrame:
        """A lazy scan of the feature records of matching partitions (computed if missing).

        Partitions come in (venue, symbol, date) order; within one, rows are in record order, so
        for a single partition the frame equals ``compute_features`` over its captures.
        """
        paths = [path for path, _ in self.build(config, venue, symbol, date)]
        if not paths:
            raise CatalogError(
                f"no captures in {self.captures_root} match venue={venue} symbol={symbol} "
                f"date={date}"
            )
        return pl.scan_parquet([str(p) for p in paths], hive_partitioning=False)

    # --- listing and SQL ----------------------------------------------------------------------

    def _feature_files(self) -> Iterator[tuple[Path, Partition]]:
        for path in sorted(self.features_root.glob(f"fingerprint=*/*/*/*/{FEATURE_FILE}")):
            date_dir = path.parent
            yield (
                path,
                Partition(
                    _value(date_dir.parent.parent, "venue"),
                    _value(date_dir.parent, "symbol"),
                    _value(date_dir, "date"),
                ),
            )

    def list(self) -> pl.DataFrame:
        """Every catalogued capture and feature file, with sizes and fingerprints."""
        rows: list[dict[str, Any]] = []
        for partition in self.partitions():
            for path in self.capture_files(partition):
                rows.append(
                    {
                        "kind": "capture",
                        "venue": partition.venue,
                        "symbol": partition.symbol,
                        "date": partition.date,
                        "fingerprint": None,
                        "bytes": path.stat().st_size,
                        "path": str(path),
                    }
                )
        for path, partition in self._feature_files():
            rows.append(
                {
                    "kind": "features",
                    "venue": partition.venue,
                    "symbol": partition.symbol,
                    "date": partition.date,
                    "fingerprint": read_fingerprint(path),
                    "bytes": path.stat().st_size,
                    "path": str(path),
                }
            )
        schema = {
            "kind": pl.String,
            "venue": pl.String,
            "symbol": pl.String,
            "date": pl.String,
            "fingerprint": pl.String,
            "bytes": pl.Int64,
            "path": pl.String,
        }
        return pl.DataFrame(rows, schema=schema)

    def sql(self, query: str, config: FeatureConfig | None = None) -> pl.DataFrame:
        """Runs DuckDB SQL with a view ``features`` over this config's feature files.

        The view has the record columns plus ``venue``, ``partition_symbol`` and ``date`` (the
        partition a row's file sits in). Missing feature files are computed first.
        """
        import duckdb

        built = self.build(config)
        if not built:
            raise CatalogError(f"no captures in {self.captures_root}; add one first")
        selects = []
        for path, _ in built:
            partition_dir = path.parent
            selects.append(
                "SELECT *, "
                f"{_sql_string(_value(partition_dir.parent.parent, 'venue'))} AS venue, "
                f"{_sql_string(_value(partition_dir.parent, 'symbol'))} AS partition_symbol, "
                f"DATE {_sql_string(_value(partition_dir, 'date'))} AS date "
                f"FROM read_parquet({_sql_string(str(path))}, hive_partitioning = false)"
            )
        with duckdb.connect() as connection:
            connection.execute("CREATE VIEW features AS " + " UNION ALL ".join(selects))
            return connection.sql(query).pl()


def _same_bytes(left: Path, right: Path, chunk: int = 1 << 20) -> bool:
    with left.open("rb") as a, right.open("rb") as b:
        while True:
            block = a.read(chunk)
            if block != b.read(chunk):
                return False
            if not block:
                return True
