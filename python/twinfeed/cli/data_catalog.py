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
@ROOT_OPTION
def build(
    config: Path | None, venue: str | None, symbol: str | None, date: str | None, root: Path
) -> None:
    """Compute the feature Parquet files missing for the config's fingerprint."""
    from twinfeed import TwinfeedError
    from twinfeed.research.catalog import Catalog

    feature_config = load_config(config)
    try:
        built = Catalog(root).build(feature_config, venue=venue, symbol=symbol, date=date)
    except TwinfeedError as error:
        raise click.ClickException(str(error)) from error
    for path, computed in built:
        console.print(f"{'computed' if computed else 'cached  '} {path}")
    fresh = sum(computed for _, computed in built)
    console.print(
        f"{len(built)} partitions, {fresh} computed, fingerprint {feature_config.fingerprint[:16]}"
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
