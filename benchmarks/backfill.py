"""Feature backfill over many capture files: sequential vs a local process pool vs a Dask
LocalCluster, side by side in one run on the same files.

The files (``--files``, default 40) cycle through the real captures in ../shared/data/real
(Binance USD-M and spot) and four synthetic ones from ``twinfeed data synth`` (one per symbol,
3,600 s each, about 67 MB), copied under their own names into a temporary folder (not
timed). Each variant builds every file's feature Parquet into a fresh folder; outputs are
checked byte for byte against the sequential build.
Reported: wall time, files/s, MB/s of capture read (compressed size on disk), speedup over
sequential, and the peak resident memory of each worker process (``ru_maxrss``).

    .venv/bin/python benchmarks/backfill.py [--files 40] [--workers N] [--quick] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from machine import cpu_model, load_average  # benchmarks/machine.py (this script's folder)

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real"
REAL_FILES = [
    REAL / "binance-usdm" / "btcusdt_20240808.gz",
    REAL / "binance-spot" / "btcusdt_20240808.gz",
]
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT")


def make_files(folder: Path, count: int, seconds: float) -> list[Path]:
    """``count`` capture files, cycling through the real captures and four synthetic ones
    (``seconds`` long, one per symbol), each copy under its own name."""
    from twinfeed.research.synth import write_synth

    base = [p for p in REAL_FILES if p.exists()]
    made = folder / "made"
    made.mkdir(parents=True, exist_ok=True)
    for i, symbol in enumerate(SYMBOLS):
        path = made / f"synth-{symbol.lower()}.txt"
        write_synth(path, 100 + i, seconds=seconds, symbol=symbol)
        base.append(path)
    files: list[Path] = []
    for i in range(count):
        source = base[i % len(base)]
        kind = source.parent.name if source.parent != made else "synth"
        target = folder / kind / f"{i:03d}-{source.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        files.append(target)
    return files


def run_variant(name: str, files: list[Path], out: Path, **options: Any) -> dict[str, Any]:
    from twinfeed.research import backfill

    started = time.perf_counter()
    results = backfill(files, out_dir=out, progress=False, **options)
    seconds = time.perf_counter() - started
    assert all(r.computed for r in results)
    peak: dict[int, int] = defaultdict(int)
    for result in results:
        peak[result.worker] = max(peak[result.worker], result.peak_rss_kib)
    megabytes = sum(f.stat().st_size for f in files) / 1e6
    return {
        "variant": name,
        "files": len(files),
        "seconds": seconds,
        "files_per_s": len(files) / seconds,
        "mb_per_s": megabytes / seconds,
        "workers": len(peak),
        "peak_rss_mb_per_worker": sorted(round(v / 1024) for v in peak.values()),
    }


def outputs(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.parquet"))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=3600.0, help="length of synthetic files")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="6 short files (a smoke run)")
    parser.add_argument("--no-dask", action="store_true", help="skip the LocalCluster variant")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.files, args.seconds = 6, 10.0
    with tempfile.TemporaryDirectory(prefix="twinfeed-backfill-") as tmp:
        root = Path(tmp)
        files = make_files(root / "captures", args.files, args.seconds)
        megabytes = sum(f.stat().st_size for f in files) / 1e6
        print(
            f"{len(files)} capture files, {megabytes:.1f} MB on disk; CPU {cpu_model()}, "
            f"{os.cpu_count()} cores, load before {load_average()}"
        )
        rows = [run_variant("sequential", files, root / "seq", workers=1)]
        reference = outputs(root / "seq")
        rows.append(
            run_variant(
                f"pool ({args.workers} processes)", files, root / "pool", workers=args.workers
            )
        )
        assert outputs(root / "pool") == reference, "pool output differs from sequential"
        if not args.no_dask:
            import distributed

            with distributed.LocalCluster(
                n_workers=args.workers, threads_per_worker=1, processes=True,
                host="127.0.0.1", dashboard_address=None,
            ) as cluster, distributed.Client(cluster) as client:  # fmt: skip
                client.run(lambda: __import__("twinfeed.research.backfills"))  # warm workers
                rows.append(
                    run_variant(
                        f"Dask LocalCluster ({args.workers} workers)",
                        files,
                        root / "dask",
                        client=client,
                    )  # fmt: skip
                )
            assert outputs(root / "dask") == reference, "Dask output differs from sequential"
    base = rows[0]["seconds"]
    print()
    print("| variant | files/s | MB/s | time (s) | speedup | peak RSS per worker (MB) |")
    print("|---|---:|---:|---:|---:|---|")
    for row in rows:
        row["speedup"] = base / row["seconds"]
        print(
            f"| {row['variant']} | {row['files_per_s']:.2f} | {row['mb_per_s']:.1f} | "
            f"{row['seconds']:.2f} | {row['speedup']:.2f}x | "
            f"{', '.join(str(m) for m in row['peak_rss_mb_per_worker'])} |"
        )
    print(f"\nload after {load_average()}; outputs identical byte for byte in every variant")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
