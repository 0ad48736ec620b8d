"""``twinfeed data import``: third-party raw captures into the twinfeed capture format."""

from __future__ import annotations

from pathlib import Path

import click

from twinfeed.cli._util import console, output_path
from twinfeed.cli.data_cmd import data


@data.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "format_",
    type=click.Choice(["hftbacktest", "cryptofeed", "tardis"]),
    required=True,
    help="The collector that wrote FILE.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Capture to write (`<local_receive_ns> <frame>` lines; gzip if it ends in .gz).",
)
@click.option(
    "--http",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="cryptofeed REST responses file (default: the sibling NAME.http.* of NAME.ws.*).",
)
@click.option("--strict", is_flag=True, help="Exit with status 1 if any line was not understood.")
def import_(file: Path, format_: str, out: Path, http: Path | None, strict: bool) -> None:
    """Normalise a raw capture from hftbacktest, cryptofeed or tardis into FILE --out.

    Venue frames are copied byte for byte; receive times become integer ns exactly. Lines the
    importer does not understand are counted and listed with their line numbers.
    """
    from twinfeed import TwinfeedError
    from twinfeed.research.importers import import_capture

    output_path(out)
    try:
        report = import_capture(file, format_, out, http=http)  # type: ignore[arg-type]
    except TwinfeedError as error:
        raise click.ClickException(str(error)) from error
    inputs = ", ".join(str(p) for p in report.inputs)
    console.print(f"read {report.lines_read:,} lines from {inputs}")
    kinds = ", ".join(f"{kind} {count:,}" for kind, count in sorted(report.kinds.items()))
    console.print(f"wrote {report.out}: {report.lines_written:,} lines ({kinds or 'none'})")
    if report.skipped:
        skipped = ", ".join(f"{k} {v:,}" for k, v in sorted(report.skipped.items()))
        console.print(f"skipped: {skipped}")
    if report.out_of_order:
        console.print(f"[yellow]warning: {report.out_of_order:,} lines go back in time")
    if report.unknown_total:
        console.print(f"[yellow]{report.unknown_total:,} lines not understood:")
        for name, number, reason in report.unknown:
            console.print(f"  {name}:{number}: {reason}", style="yellow", markup=False)
        if report.unknown_total > len(report.unknown):
            console.print(f"[yellow]  ... and {report.unknown_total - len(report.unknown):,} more")
        if strict:
            raise SystemExit(1)
