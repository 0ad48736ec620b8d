"""``twinfeed data synth``: a reproducible synthetic Binance USD-M capture."""

from __future__ import annotations

from pathlib import Path

import click

from twinfeed.cli._util import console, output_path
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
@click.option(
    "--symbol", help="Instrument name (default: BTCUSDT; BTCUSD_PERP with --venue coinm)."
)
@click.option(
    "--venue",
    type=click.Choice(["usdm", "coinm"]),
    default="usdm",
    show_default=True,
    help="usdm: USD-M futures shapes (sizes in 0.001 lots); coinm: COIN-M (/dapi) shapes, "
    "sizes in contracts and the pair in `ps`.",
)
@click.option("--start-price", type=float, help="First mid price (default 61800; on a 0.10 grid).")
def synth(
    seed: int,
    out: Path,
    seconds: float,
    symbol: str | None,
    venue: str,
    start_price: float | None,
) -> None:
    """Write a synthetic BTCUSDT-style capture: bookTicker, trades, depth diffs, a REST snapshot.

    The output is a pure function of the options (see twinfeed.research.synth).
    """
    from dataclasses import replace

    from twinfeed.research.synth import SynthParams, write_synth

    if seconds <= 0:
        raise click.BadParameter("must be positive", param_hint="--seconds")
    if start_price is not None and not start_price > 1:
        raise click.BadParameter("must be above 1", param_hint="--start-price")
    params = replace(SynthParams(), venue=venue)
    if start_price is not None:
        params = replace(params, start_price=start_price)
    symbol = symbol or ("BTCUSD_PERP" if venue == "coinm" else "BTCUSDT")
    output_path(out)
    try:
        lines, size = write_synth(out, seed, seconds=seconds, symbol=symbol, params=params)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--symbol") from error
    console.print(f"wrote {out}: {lines:,} lines, {size / 1e6:.2f} MB ({seconds:g} s, seed {seed})")
