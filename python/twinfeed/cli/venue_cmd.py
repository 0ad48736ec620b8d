"""``twinfeed venue``: replay a capture as a local Binance-compatible venue on loopback."""

from __future__ import annotations

from pathlib import Path

import click

from twinfeed.cli._app import main
from twinfeed.live.venue import BUNDLED_CAPTURE, VenueFaults, run_venue


def _speed(value: str) -> str:
    if value.lower() == "max":
        return "max"
    try:
        if float(value) > 0:
            return value
    except ValueError:
        pass
    raise click.BadParameter(f"expected a positive number or `max`, got {value!r}")


@main.command("venue")
@click.option(
    "--capture",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=BUNDLED_CAPTURE if BUNDLED_CAPTURE.exists() else None,
    required=not BUNDLED_CAPTURE.exists(),
    show_default=True,
    help="Capture to replay (plain, gzip or zstd).",
)
@click.option("--port", type=int, default=9443, show_default=True, help="0 picks a free port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--speed",
    default="1",
    show_default=True,
    callback=lambda _ctx, _param, value: _speed(value),
    help="1 = original timing, 10 = ten times faster, max = as fast as sockets take.",
)
@click.option("--loop", is_flag=True, help="Start again when the capture is consumed.")
@click.option(
    "--status-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Keep the replay position in this JSON file (rewritten every ~50 ms).",
)
@click.option(
    "--ready-file", type=click.Path(dir_okay=False, path_type=Path), help="Write the port here."
)
@click.option("--drop-after", type=int, help="Fault: reset the connection after N messages.")
@click.option("--stall-ms", type=int, help="Fault: stop sending for T ms ...")
@click.option("--stall-after", type=int, help="... after N messages (default 0).")
@click.option("--malformed-every", type=int, help="Fault: a frame of invalid JSON every N.")
@click.option("--skip-depth", type=int, help="Fault: never send the K-th depth update.")
@click.option(
    "--fault-every-connection",
    is_flag=True,
    help="Apply drop/stall/skip faults to every connection, not only the first.",
)
def venue(
    capture: Path,
    port: int,
    host: str,
    speed: str,
    loop: bool,
    status_file: Path | None,
    ready_file: Path | None,
    drop_after: int | None,
    stall_ms: int | None,
    stall_after: int | None,
    malformed_every: int | None,
    skip_depth: int | None,
    fault_every_connection: bool,
) -> None:
    """Replay a capture over Binance's websocket and REST wire format on loopback.

    \b
    Websocket: /stream?streams=btcusdt@bookTicker/btcusdt@trade  (combined)
               /ws/btcusdt@trade                                 (raw), live SUBSCRIBE
    REST:      /fapi/v1/depth?symbol=BTCUSDT&limit=100, /api/v3/depth, /fapi/v1/ping, /time
    Control:   GET /_venue/status, POST /_venue/fault?drop_after=N, POST /_venue/disconnect

    The replay clock starts when the first websocket client subscribes; all clients share it.
    """
    faults = VenueFaults(
        drop_after=drop_after,
        stall_ms=stall_ms,
        stall_after=stall_after,
        malformed_every=malformed_every,
        skip_depth=skip_depth,
        every_connection=fault_every_connection,
    )
    try:
        code = run_venue(
            capture,
            port=port,
            host=host,
            speed=speed,
            loop=loop,
            faults=faults,
            status_file=status_file,
            ready_file=ready_file,
        )
    except FileNotFoundError as error:
        raise click.ClickException(str(error)) from error
    if code != 0:
        raise SystemExit(code)
