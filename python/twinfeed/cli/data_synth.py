"""``twinfeed data synth``: a reproducible synthetic Binance USD-M capture."""

from __future__ import annotations

from pathlib import Path

import click

from twinfeed.cli._util import console
from twinfeed.cli.data_cmd import data


@data.command("synth")
@click.option("--seed", type=int, required=True, help="Random seed; same seed, same bytes.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Capture file to write (plain text, one `<local_receive_ns> <frame>` per line).",
)
@click.option(
    "--seconds", type=float, default=120.0, show_default=True, help="Exchange time to cover."
)
@click.option("--symbol", default="BTCUSDT", show_default=True, help="Instrument name.")
def synth(seed: int, out: Path, seconds: float, symbol: str) -> None:
    """Write a synthetic BTCUSDT-style capture: bookTicker, trades, depth diffs, a REST snapshot.

    The output is a pure function of the options (see twinfeed.research.synth).
    """
    from twinfeed.research.synth import write_synth

    if seconds <= 0:
        raise click.BadParameter("must be positive", param_hint="--seconds")
    out.parent.mkdir(parents=True, exist_ok=True)
    lines, size = write_synth(out, seed, seconds=seconds, symbol=symbol)
    console.print(f"wrote {out}: {lines:,} lines, {size / 1e6:.2f} MB ({seconds:g} s, seed {seed})")
