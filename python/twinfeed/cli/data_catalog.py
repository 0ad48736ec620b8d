"""``twinfeed data catalog``: captures by venue/symbol/date and their cached feature Parquet."""

from __future__ import annotations

from pathlib import Path

import click

from twinfeed._tables import fitted_table
from twinfeed.cli._util import console, load_config
from twinfeed.cli.data_cmd import data

#: Columns `data catalog list` leaves out, in this order, when the terminal is too narrow.
CATALOG_DROP_ORDER = ("fingerprint", "MB", "kind")

ROOT_OPTION = click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data/catalog"),
    show_default=True,
    help="Catalog folder.",
)


@data.group("catalog")
def catalog() -> None:
    """A Parquet data catalog: captures partitioned by venue, symbol and date."""


@catalog.command("list")
@ROOT_OPTION
def list_(root: Path) -> None:
    """List catalogued captures and feature files (with their fingerprints)."""
    from twinfeed.research.catalog import Catalog

    listing = Catalog(root).list()
    rows = [
        [
            row["kind"],
            row["venue"],
            row["symbol"],
            row["date"],
            (row["fingerprint"] or "-")[:16],
            f"{row['bytes'] / 1e6:.2f}",
            str(Path(row["path"]).relative_to(root)),
        ]
        for row in listing.iter_rows(named=True)
    ]
    columns = ("kind", "venue", "symbol", "date", "fingerprint", "MB", "path")
    table = fitted_table(
        f"catalog {root}",
        [(c, "right" if c == "MB" else "left") for c in columns],
        rows,
        width=console.width,
        drop_order=CATALOG_DROP_ORDER,
        wrap=("path",),
    )
    console.print(table)


@catalog.command("add")
@click.argument(
    "captures",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option("--venue", required=True, help="Venue partition, e.g. binance-usdm.")
@click.option("--symbol", default=None, help="Symbol partition (default: found in the capture).")
@click.option("--link", is_flag=True, help="Hard-link instead of copying where possible.")
@ROOT_OPTION
def add(captures: tuple[Path, ...], venue: str, symbol: str | None, link: bool, root: Path) -> None:
    """Add capture files to the catalog (filed by the UTC date of their first line)."""
    from twinfeed import TwinfeedError
    from twinfeed.research.catalog import Catalog

    store = Catalog(root)
    for capture in captures:
        try:
            target = store.add_capture(capture, venue, symbol=symbol, link=link)
        except TwinfeedError as error:
            raise click.ClickException(str(error)) from error
        console.print(f"{capture} -> {target}")


@catalog.command("build")
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Feature config TOML (default config if omitted).",
)
@click.option("--venue", default=None, help="Only this venue.")
@click.option("--symbol", default=None, help="Only this symbol partition.")
@click.option("--date", default=None, help="Only this date (YYYY-MM-DD).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Processes building partitions in parallel (default: every core; 1: this process).",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Run on a Dask cluster: its scheduler address (tcp://host:8786); needs twinfeed[dask].",
)
@ROOT_OPTION
def build(
    config: Path | None,
    venue: str | None,
    symbol: str | None,
    date: str | None,
    workers: int | None,
    scheduler: str | None,
    root: Path,
) -> None:
    """Compute the feature Parquet files missing for the config's fingerprint, in parallel.

    Resumable: files already built for the fingerprint are skipped, and an interrupted build
    leaves no partial file (run it again to finish). Prints what each partition's run
    skipped (malformed lines, unknown frames, ...)."""
    from twinfeed import TwinfeedError
    from twinfeed.research.catalog import Catalog

    feature_config = load_config(config)
    client = None
    if scheduler is not None:
        try:
            from distributed import Client
        except ImportError as error:
            raise click.ClickException(
                "--scheduler needs Dask: pip install 'twinfeed[dask]'"
            ) from error
        client = Client(scheduler)
    try:
        results = Catalog(root).backfill(
            feature_config, venue, symbol, date, workers=workers, client=client, progress=True
        )
    except TwinfeedError as error:
        raise click.ClickException(str(error)) from error
    finally:
        if client is not None:
            client.close()
    for result in results:
        path = Path(result.out)
        shown = path.relative_to(root) if path.is_relative_to(root) else path
        skipped = ", ".join(f"{k} {v:,}" for k, v in result.skipped.items() if v)
        state = "computed" if result.computed else "cached  "
        console.print(f"{state} {shown}" + (f"  (skipped: {skipped})" if skipped else ""))
    fresh = sum(result.computed for result in results)
    console.print(
        f"{len(results)} partitions, {fresh} computed, "
        f"fingerprint {feature_config.fingerprint[:16]}"
    )


@catalog.command("sql")
@click.argument("query")
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Feature config TOML whose feature files the `features` view reads.",
)
@ROOT_OPTION
def sql(query: str, config: Path | None, root: Path) -> None:
    """Run DuckDB SQL over the feature files (a view named `features`)."""
    import polars as pl

    from twinfeed import TwinfeedError
    from twinfeed.research.catalog import Catalog

    try:
        result = Catalog(root).sql(query, load_config(config))
    except TwinfeedError as error:
        raise click.ClickException(str(error)) from error
    with pl.Config(tbl_rows=50, tbl_cols=20):
        click.echo(result)
