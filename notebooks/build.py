"""Writes the research notebooks from the cell sources below, so they are reproducible.

    .venv/bin/python notebooks/build.py          # rewrite notebooks/*.ipynb (unexecuted)

The notebooks are committed without outputs; tests/test_notebooks.py executes them. Each one
finds the repository root from its working directory, so it runs from the repo or notebooks/.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

FIND_REPO = """\
import sys
from pathlib import Path

REPO = next(p for p in (Path.cwd(), *Path.cwd().parents) if (p / "data/synth-btcusdt.txt").exists())
CAPTURE = REPO / "data" / "synth-btcusdt.txt"
print("python:", sys.executable)
print("capture:", CAPTURE.relative_to(REPO))"""

FEATURES = [
    new_markdown_cell(
        "# 01 — Features from a capture\n\n"
        "The batch binding runs the same Rust pipeline as the live ingest over a capture file "
        "and hands the records to polars without copying. Here: the bundled synthetic "
        "Binance USD-M BTCUSDT capture (`data/synth-btcusdt.txt`, see `data/README.md`)."
    ),
    new_code_cell(FIND_REPO),
    new_code_cell(
        """\
import polars as pl
from twinfeed import FeatureConfig
from twinfeed.research import compute_features

config = FeatureConfig.default()
features = compute_features(CAPTURE, config)
print(f"{features.height:,} records, fingerprint {config.fingerprint[:16]}")
features.group_by("kind").len().sort("kind")"""
    ),
    new_markdown_cell(
        "Quote records (`kind` = quote) carry the touch and the features derived from it: "
        "spread, microprice and top-of-book imbalance. Time is the capture's local receive time."
    ),
    new_code_cell(
        """\
from twinfeed.records import KIND

quotes = features.filter(pl.col("kind") == KIND["quote"]).with_columns(
    ((pl.col("local_ns") - pl.col("local_ns").first()) / 1e9).alias("t_s")
)
quotes.select("t_s", "bid_px", "ask_px", "mid", "spread", "microprice", "imbalance").describe()"""
    ),
    new_code_cell(
        """\
import matplotlib.pyplot as plt

t = quotes["t_s"].to_numpy()
fig, axes = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
axes[0].plot(t, quotes["mid"].to_numpy(), label="mid", linewidth=0.8)
axes[0].plot(t, quotes["microprice"].to_numpy(), label="microprice", linewidth=0.8, alpha=0.8)
axes[0].set_ylabel("price")
axes[0].legend(loc="upper left")
axes[1].plot(t, quotes["spread"].to_numpy(), linewidth=0.8, color="tab:red")
axes[1].set_ylabel("spread")
axes[2].plot(t, quotes["imbalance"].to_numpy(), linewidth=0.5, color="tab:green")
axes[2].set_ylabel("imbalance")
axes[2].set_xlabel("seconds since first quote")
fig.suptitle("BTCUSDT (synthetic): spread, microprice and imbalance")
fig.tight_layout()
plt.show()"""
    ),
    new_markdown_cell(
        "Microprice minus mid against the next second's mid change: the imbalance signal "
        "the example market maker leans on."
    ),
    new_code_cell(
        """\
edge = (quotes["microprice"] - quotes["mid"]).to_numpy()
# The first quote at or after t + 1 s, for every quote at t.
ahead = quotes.select(
    (pl.col("local_ns") - 1_000_000_000).alias("local_ns"), pl.col("mid").alias("mid_next")
)
later = quotes.join_asof(ahead, on="local_ns", strategy="forward")
future = (later["mid_next"] - later["mid"]).to_numpy()
fig, ax = plt.subplots(figsize=(6, 4))
ax.scatter(edge, future, s=2, alpha=0.3)
ax.set_xlabel("microprice - mid (price units)")
ax.set_ylabel("mid change over the next 1 s")
ax.set_title("Does the microprice lead the mid?")
plt.show()"""
    ),
]

BACKTEST = [
    new_markdown_cell(
        "# 02 — Backtest the example market maker\n\n"
        "`twinfeed.strategies.market_maker.MarketMaker` quotes around the microprice and skews "
        "with inventory. The backtester feeds it the binding's records and matches its orders "
        "with the same rules as the paper venue."
    ),
    new_code_cell(FIND_REPO),
    new_code_cell(
        """\
import tempfile

from twinfeed import FeatureConfig
from twinfeed.research.backtest import Backtest
from twinfeed.strategies.market_maker import MarketMaker

run = Backtest(MarketMaker, CAPTURE, FeatureConfig.default())
result = run.run()
{name: round(value, 4) for name, value in result.metrics.items()}"""
    ),
    new_code_cell(
        """\
print(f"{result.fills.height} fills, {result.orders.height} orders")
result.fills.head(10)"""
    ),
    new_markdown_cell(
        "The result writes its plots and a JSON artifact (strategy, params, capture hashes, "
        "fingerprint, metrics) into a run folder; here a temporary one."
    ),
    new_code_cell(
        """\
from IPython.display import Image, display

runs = Path(tempfile.mkdtemp(prefix="twinfeed-runs-"))
artifact = result.write_artifact(runs / "backtest-synth" / "artifact.json")
plots = result.plot(runs / "backtest-synth")
print("artifact:", artifact)
for path in plots:
    display(Image(filename=str(path)))"""
    ),
    new_code_cell(
        """\
import json

artifact_json = json.loads(artifact.read_text())
print("artifact sections:", ", ".join(artifact_json))
print("feature fingerprint:", result.fingerprint[:16])
artifact_json["strategy"]"""
    ),
]

PARITY = [
    new_markdown_cell(
        "# 03 — Parity: live path against batch\n\n"
        "`parity_check` replays the capture through the real live path — the `twinfeed-venue` "
        "server and the `twinfeed-ingest` binary (from `target/release`), the shared-memory "
        "ring, a collector — and through the batch binding, then compares the records. "
        "Build the binaries first (`make setup`)."
    ),
    new_code_cell(FIND_REPO),
    new_code_cell(
        """\
import tempfile

from twinfeed import FeatureConfig
from twinfeed.parity import parity_check

config = FeatureConfig.default()
work = Path(tempfile.mkdtemp(prefix="twinfeed-parity-"))
report = parity_check(CAPTURE, config, work / "check")
print("ok:", report.ok, " live:", report.live["records"], "records in", report.live["seconds"], "s")
for comparison in report.comparisons:
    print(f"{comparison.label}: equal={comparison.equal} "
          f"({comparison.count_a:,} vs {comparison.count_b:,} records, {comparison.note})")
report.live["kinds"]"""
    ),
    new_markdown_cell(
        "## A live-recorded session against batch recomputation\n\n"
        "Run the live path once more and keep what the brain received from the ring. The "
        "ingest also wrote the capture it received; recomputing features over that capture "
        "with the batch binding must give the same records, byte for byte: research sees "
        "what live traded on."
    ),
    new_code_cell(
        """\
import numpy as np
import polars as pl
from twinfeed.parity import compare_streams
from twinfeed.parity.live import run_live_path
from twinfeed.research import compute_features
from twinfeed.research.features import compute_records

session = run_live_path(CAPTURE, config, work / "session", symbols=["BTCUSDT"])
batch_raw, _ = compute_records(session.capture_files, config)
comparison = compare_streams(
    session.records, batch_raw, label="live session vs batch", a_name="ring", b_name="batch"
)
print("ingest capture:", [p.name for p in session.capture_files])
print("equal:", comparison.equal, comparison.count_a, comparison.count_b, comparison.digest_a[:16])
assert comparison.equal"""
    ),
    new_code_cell(
        """\
import matplotlib.pyplot as plt
from twinfeed.records import KIND

columns = ("kind", "local_ns", "exchange_ns", "mid")
live = pl.DataFrame({name: session.records[name] for name in columns})
batch = compute_features(session.capture_files, config)
live_quotes = live.filter(pl.col("kind") == KIND["quote"])
batch_quotes = batch.filter(pl.col("kind") == KIND["quote"])
# The replay ran at full speed, so its receive times span milliseconds: plot against the
# exchange's own event time, which the capture carries (seconds since the first quote).
origin = live_quotes["exchange_ns"][0]
seconds = (live_quotes["exchange_ns"].to_numpy() - origin) / 1e9
fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
axes[0].plot(seconds, live_quotes["mid"].to_numpy(), label="live ring", linewidth=2)
axes[0].plot((batch_quotes["exchange_ns"].to_numpy() - origin) / 1e9,
             batch_quotes["mid"].to_numpy(),
             label="batch over the ingest's capture", linewidth=0.8, linestyle="--")
axes[0].set_ylabel("mid price")
axes[0].legend()
difference = live_quotes["mid"].to_numpy() - batch_quotes["mid"].to_numpy()
axes[1].plot(seconds, difference, ".", markersize=2)
axes[1].set_ylabel("live - batch mid")
axes[1].set_xlabel("exchange time since the first quote (s)")
fig.suptitle(f"Live ring against batch: {len(seconds):,} quotes, largest difference "
             f"{np.abs(difference).max():g}")
fig.tight_layout()
plt.show()"""
    ),
    new_code_cell(
        """\
import shutil

shutil.rmtree(work)  # the ingest's capture copies and logs"""
    ),
]

NOTEBOOKS = {
    "01_features.ipynb": FEATURES,
    "02_backtest.ipynb": BACKTEST,
    "03_parity.ipynb": PARITY,
}


def build(out_dir: Path = HERE) -> list[Path]:
    """Writes every notebook (unexecuted) into ``out_dir``; returns their paths."""
    written = []
    for name, cells in NOTEBOOKS.items():
        notebook = new_notebook(
            cells=cells,
            metadata={
                "kernelspec": {
                    "name": "python3",
                    "display_name": "Python 3 (ipykernel)",
                    "language": "python",
                },
                "language_info": {"name": "python"},
            },
        )
        # Stable cell ids keep regenerated notebooks byte-identical.
        for index, cell in enumerate(notebook.cells):
            cell["id"] = f"{Path(name).stem}-{index:02d}"
        nbformat.validate(notebook)
        path = out_dir / name
        nbformat.write(notebook, path)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in build():
        print(f"wrote {path}")
