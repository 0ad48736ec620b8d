"""``twinfeed features``: compute features for a capture into Parquet."""

from __future__ import annotations

from pathlib import Path

import click

from twinfeed.cli._app import main
from twinfeed.cli._util import console, load_config, output_path, progress_bar


@main.command("features")
@click.argument("capture", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Feature config TOML (default: FeatureConfig.default()).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write features to this Parquet file (fingerprint and config in its metadata).",
)
@click.option("--batch-rows", default=262_144, show_default=True, help="Rows per Arrow batch.")
def features(capture: Path, config_path: Path | None, out: Path | None, batch_rows: int) -> None:
    """Compute feature records for CAPTURE (a capture file or a live capture folder).

    Prints a summary of record kinds and skipped lines; with --out, writes Parquet in flat
    memory, batch by batch (under a temporary name, renamed when complete). Exits 1 without
    writing anything when CAPTURE gives no record (not a capture, or empty).
    """
    from twinfeed.research.parquet import summarize_run, write_features

    out = output_path(out)
    config = load_config(config_path)
    with progress_bar("features") as advance:
        summary = write_features(capture, config, out, batch_rows=batch_rows, progress=advance)
    summarize_run(summary, console)
