"""``twinfeed report``: positions, PnL, fills, slippage, latency, risk and feed events of a
live run, from the trade DB."""

from __future__ import annotations

from pathlib import Path

import click

from twinfeed.cli._app import main
from twinfeed.cli._util import console, output_path


@main.command("report")
@click.option(
    "--db",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=Path("runs/live/trade.duckdb"),
    show_default=True,
    help="Trade DB (DuckDB) file.",
)
@click.option("--run", "run_id", help="Run id (default: the latest run).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for pnl_inventory.png (default: next to the DB).",
)
def report(db: Path, run_id: str | None, out: Path | None) -> None:
    """Report one live run: tables in the terminal and a PNG of PnL and inventory."""
    from twinfeed.live.brain.report import load_report, plot_report, print_report

    output_path(out, folder=True)
    try:
        run_report = load_report(db, run_id)
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    print_report(run_report, console)
    console.print(f"plot: {plot_report(run_report, out or db.parent)}")
