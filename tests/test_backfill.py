"""Backfills: the same feature Parquet, byte for byte, built file after file, by a local
process pool and by a real Dask cluster (``distributed.LocalCluster``: a scheduler and worker
processes on loopback); resumable; a worker killed mid-file leaves no partial output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from twinfeed import CaptureError, FeatureConfig
from twinfeed.cli import main as cli
from twinfeed.research import backfill, compute_features
from twinfeed.research.backfills import BackfillJob, build_one
from twinfeed.research.catalog import Catalog
from twinfeed.research.parquet import read_fingerprint
from twinfeed.research.synth import write_synth


@pytest.fixture(scope="module")
def captures(
    tmp_path_factory: pytest.TempPathFactory, usdm_capture: Path, spot_capture: Path
) -> list[Path]:
    """Both real captures and three synthetic ones (one of them with garbage lines)."""
    folder = tmp_path_factory.mktemp("captures")
    synth = []
    for seed, symbol in ((1, "BTCUSDT"), (2, "ETHUSDT"), (3, "BTCUSDT")):
        path = folder / f"synth-{seed}-{symbol.lower()}.txt"
        write_synth(path, seed, seconds=20, symbol=symbol)
        synth.append(path)
    with synth[2].open("a") as out:
        out.write('not a capture line\n1723161600000000000 {"stream":"x"\n')
    return [usdm_capture, spot_capture, *synth]


def _bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.parquet"))}


@pytest.fixture(scope="module")
def sequential(captures: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sequential")
    results = backfill(captures, out_dir=out, workers=1, progress=False)
    assert [r.computed for r in results] == [True] * len(captures)
    return out


def test_a_pool_builds_the_same_bytes_and_a_rerun_skips_them(
    captures: list[Path], sequential: Path, tmp_path: Path
) -> None:
    expected = _bytes(sequential)
    assert len(expected) == len(captures) and all(expected.values())
    results = backfill(captures, out_dir=tmp_path, workers=2, progress=False)
    assert _bytes(tmp_path) == expected
    assert len({r.worker for r in results}) == 2 and os.getpid() not in {r.worker for r in results}
    garbage = next(r for r in results if r.sources[0].endswith("synth-3-btcusdt.txt"))
    assert garbage.skipped["malformed_lines"] >= 1  # counted per file
    again = backfill(captures, out_dir=tmp_path, workers=2, progress=False)
    assert [r.computed for r in again] == [False] * len(captures)
    # The fingerprint folder keeps another config's files apart; each is stamped with it.
    other = FeatureConfig.from_toml_str("[downsample]\nbar_ms = 250\n")
    backfill(captures[2:3], other, out_dir=tmp_path, workers=1, progress=False)
    (written,) = (tmp_path / f"fingerprint={other.fingerprint[:16]}").glob("*.parquet")
    assert read_fingerprint(written) == other.fingerprint


def test_a_local_dask_cluster_builds_the_same_bytes(
    captures: list[Path], sequential: Path, tmp_path: Path
) -> None:
    import distributed  # the dask extra, installed by `make setup`

    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None,
    ) as cluster, distributed.Client(cluster) as client:  # fmt: skip
        results = backfill(captures, out_dir=tmp_path, client=client, progress=False)
        workers = {r.worker for r in results}
    assert _bytes(tmp_path) == _bytes(sequential)
    assert os.getpid() not in workers and len(workers) >= 1


def test_a_dask_frame_has_one_partition_per_capture(captures: list[Path]) -> None:
    from twinfeed.research.dask import features_frame

    paths = captures[2:4]
    frame = features_frame(paths)
    assert frame.npartitions == 2
    expected = pd.concat([compute_features(p).to_pandas() for p in paths], ignore_index=True)
    got = frame.compute(scheduler="synchronous").reset_index(drop=True)
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_a_worker_killed_mid_file_leaves_no_output_and_the_rerun_completes(
    tmp_path: Path,
) -> None:
    capture = tmp_path / "long.txt"
    write_synth(capture, 5, seconds=240)
    out = tmp_path / "out" / "long.parquet"
    job = BackfillJob((str(capture),), str(out))
    script = (
        "import sys; from twinfeed import FeatureConfig;"
        "from twinfeed.research.backfills import BackfillJob, build_one;"
        f"build_one(BackfillJob(({str(capture)!r},), {str(out)!r}), "
        "FeatureConfig.default().to_toml())"
    )
    killed_mid_file = False
    for _ in range(5):  # the writer must be caught with its temporary open
        worker = subprocess.Popen([sys.executable, "-c", script])
        deadline = time.monotonic() + 60
        while worker.poll() is None and time.monotonic() < deadline:
            if list(out.parent.glob(".long.*.tmp.parquet")):
                os.kill(worker.pid, signal.SIGKILL)
                killed_mid_file = True
                break
            time.sleep(0.001)
        worker.wait()
        if killed_mid_file:
            break
        out.unlink(missing_ok=True)
    assert killed_mid_file, "the worker always finished before it could be killed"
    assert not out.exists()  # no partial file at the output name
    assert list(out.parent.glob(".long.*.tmp.parquet"))  # what the killed writer left
    result = build_one(job, FeatureConfig.default().to_toml())
    assert result.computed and out.exists()
    assert not list(out.parent.glob(".long.*.tmp.parquet"))  # the leftover is gone
    whole = compute_features(capture)
    assert result.rows == whole.height
    assert pd.read_parquet(out).shape[0] == whole.height


def test_a_file_of_another_config_at_the_output_name_is_refused(
    captures: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "x.parquet"
    build_one(BackfillJob((str(captures[2]),), str(out)), FeatureConfig.default().to_toml())
    other = FeatureConfig.from_toml_str("[downsample]\nbar_ms = 250\n")
    with pytest.raises(CaptureError, match="holds features of fingerprint"):
        build_one(BackfillJob((str(captures[2]),), str(out)), other.to_toml())


@pytest.fixture
def catalog(captures: list[Path], tmp_path: Path) -> Iterator[Catalog]:
    store = Catalog(tmp_path / "catalog")
    for capture in captures[2:]:
        store.add_capture(capture, "binance-usdm")
    yield store


def test_catalog_build_with_workers_equals_the_sequential_build(
    catalog: Catalog, tmp_path: Path
) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli, ["data", "catalog", "build", "--workers", "2", "--root", str(catalog.root)]
    )
    assert result.exit_code == 0, result.output
    assert "computed" in result.output and "skipped: malformed_lines" in result.output
    parallel = {
        p.relative_to(catalog.root): p.read_bytes()
        for p in catalog.features_root.rglob("*.parquet")
    }
    for path in parallel:
        (catalog.root / path).unlink()
    built = catalog.build(workers=1)
    assert all(computed for _, computed in built)
    sequential = {
        p.relative_to(catalog.root): p.read_bytes()
        for p in catalog.features_root.rglob("*.parquet")
    }
    assert parallel == sequential and len(parallel) >= 2
    again = runner.invoke(cli, ["data", "catalog", "build", "--root", str(catalog.root)])
    assert again.exit_code == 0 and "0 computed" in again.output


def test_fsspec_urls_stream_like_local_files(captures: list[Path], tmp_path: Path) -> None:
    """Captures behind fsspec URLs (here its in-memory and local file systems, real fsspec
    implementations) are streamed to the binding: the same records, the same Parquet."""
    import fsspec

    usdm, spot = captures[0], captures[1]
    memory = fsspec.filesystem("memory")
    memory.pipe("/bucket/usdm/day.gz", usdm.read_bytes())
    memory.pipe("/bucket/spot/day.gz", spot.read_bytes())
    assert compute_features("memory://bucket/usdm/day.gz").equals(compute_features(usdm))
    urls = ["memory://bucket/usdm/day.gz", "memory://bucket/spot/day.gz"]
    results = backfill(urls, out_dir=tmp_path / "m", workers=1, progress=False)
    assert {Path(r.out).relative_to(tmp_path / "m").parts[1:] for r in results} == {
        ("usdm", "day.parquet"),
        ("spot", "day.parquet"),
    }
    local = backfill([usdm], out_dir=tmp_path / "l", workers=1, progress=False)
    streamed, read = pq.read_table(results[0].out), pq.read_table(local[0].out)
    # The same records (NaN-aware comparison); the metadata names each source as given.
    assert pl.from_arrow(streamed).equals(pl.from_arrow(read))
    provenance = json.loads(streamed.schema.metadata[b"twinfeed.captures"])
    assert provenance[0]["path"] == urls[0]
    assert (
        provenance[0]["sha256"]
        == json.loads(read.schema.metadata[b"twinfeed.captures"])[0]["sha256"]
    )
    assert streamed.schema.metadata[b"twinfeed.venue"] == b"binance-usdm"
    # file:// URLs in a process pool (each worker opens its own stream).
    file_urls = [f"file://{p}" for p in captures[:2]]
    pooled = backfill(file_urls, out_dir=tmp_path / "f", workers=2, progress=False)
    assert [r.rows for r in pooled] == [
        r.rows for r in backfill(captures[:2], out_dir=tmp_path / "p", workers=1, progress=False)
    ]
    with pytest.raises(CaptureError, match="memory://bucket/none.gz: no such file"):
        compute_features("memory://bucket/none.gz")


def test_a_feature_run_may_be_dropped_on_another_thread(captures: list[Path]) -> None:
    """Dask workers run tasks on threads and collect garbage on whichever thread is there:
    a run dropped on a thread other than its creator's must go cleanly (it was an unsendable
    class: pyo3 leaked it and raised "dropped on another thread", an unraisable error)."""
    import gc
    import threading

    from twinfeed import _features

    run = _features.FeatureRun([str(captures[2])])
    assert run.next_arrow(10) is not None
    holder = [run]
    del run
    worker = threading.Thread(target=holder.clear)
    worker.start()
    worker.join()
    gc.collect()
    assert holder == []


def test_the_catalog_takes_captures_behind_fsspec_urls(
    captures: list[Path], tmp_path: Path
) -> None:
    import fsspec

    fsspec.filesystem("memory").pipe("/cat/day.txt", captures[2].read_bytes())
    store = Catalog(tmp_path / "catalog")
    filed = store.add_capture("memory://cat/day.txt", "binance-usdm")
    assert filed.read_bytes() == captures[2].read_bytes()
    assert not list((store.captures_root / ".incoming").iterdir())
    ((path, computed),) = store.build()
    assert computed and read_fingerprint(path) == FeatureConfig.default().fingerprint
