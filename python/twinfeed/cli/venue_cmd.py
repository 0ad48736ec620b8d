"""``twinfeed venue``: replay a capture as a local Binance-compatible venue on loopback.

With orders on (the default), a :class:`twinfeed.live.paper_venue.PaperVenue` runs in this
process beside the Rust market-data venue, on ``--orders-port`` (default: the market-data port
+ 1; a free port when ``--port 0``), following its replay through ``GET /_venue/status``.
"""

from __future__ import annotations

import json
import tempfile
import threading
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from twinfeed.cli._app import main
from twinfeed.live.venue import BUNDLED_CAPTURE, VenueFaults, run_venue
from twinfeed.venues.binance.signing import (
    API_KEY_ENV,
    API_SECRET_ENV,
    CredentialsError,
    create_credentials_file,
    load_credentials,
)


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
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    help="Instead of --speed: send each client N of its messages per second, evenly spaced "
    "(capture order kept, captured timing ignored).",
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
@click.option(
    "--orders/--no-orders",
    default=True,
    show_default=True,
    help="Serve paper-trading order entry (Binance USD-M REST) beside the market data.",
)
@click.option(
    "--orders-port", type=int, help="Order-entry port [default: --port + 1; free if --port 0]."
)
@click.option(
    "--credentials-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"0600 file with the API key and secret (created if missing). Default: "
    f"${API_KEY_ENV}/${API_SECRET_ENV}, else a new file in a temporary directory.",
)
@click.option("--latency-ms", type=float, default=0.0, show_default=True, help="Order latency.")
@click.option("--maker-bps", type=float, default=2.0, show_default=True, help="Maker fee.")
@click.option("--taker-bps", type=float, default=5.0, show_default=True, help="Taker fee.")
def venue(
    capture: Path,
    port: int,
    host: str,
    speed: str,
    rate: float | None,
    loop: bool,
    status_file: Path | None,
    ready_file: Path | None,
    drop_after: int | None,
    stall_ms: int | None,
    stall_after: int | None,
    malformed_every: int | None,
    skip_depth: int | None,
    fault_every_connection: bool,
    orders: bool,
    orders_port: int | None,
    credentials_file: Path | None,
    latency_ms: float,
    maker_bps: float,
    taker_bps: float,
) -> None:
    """Replay a capture over Binance's websocket and REST wire format on loopback.

    \b
    Websocket: /stream?streams=btcusdt@bookTicker/btcusdt@trade  (combined)
               /ws/btcusdt@trade                                 (raw), live SUBSCRIBE
    REST:      /fapi/v1/depth?symbol=BTCUSDT&limit=100, /api/v3/depth, /fapi/v1/ping, /time
    Control:   GET /_venue/status, POST /_venue/fault?drop_after=N, POST /_venue/disconnect
    Orders:    on --orders-port: POST/DELETE/GET /fapi/v1/order, /fapi/v1/allOpenOrders,
               /fapi/v1/openOrders, /fapi/v2/account, /fapi/v2/positionRisk,
               /fapi/v1/userTrades, POST/PUT/DELETE /fapi/v1/listenKey
    User data: on the paper venue's websocket port (printed), /ws/<listenKey>,
               /private/ws?listenKey=K; WebSocket API orders at /ws-fapi/v1; the market-data
               port forwards user-data paths there

    The replay clock starts when the first websocket client subscribes; all clients share it.
    Paper orders match against the replay (twinfeed.live.paper_venue); the order-entry URL and
    where the API key is kept are printed on stderr once the venue listens.
    """
    source = click.get_current_context().get_parameter_source("speed")
    if rate is not None and source == click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("give --speed or --rate, not both")
    faults = VenueFaults(
        drop_after=drop_after,
        stall_ms=stall_ms,
        stall_after=stall_after,
        malformed_every=malformed_every,
        skip_depth=skip_depth,
        every_connection=fault_every_connection,
    )
    workdir = tempfile.TemporaryDirectory(prefix="twinfeed-venue-cli-")
    paper: _PaperRunner | None = None
    if orders:
        if ready_file is None:
            ready_file = Path(workdir.name) / "ready"
        paper = _PaperRunner(
            capture,
            host,
            port,
            orders_port,
            ready_file,
            _credentials(credentials_file, Path(workdir.name)),
            dict(
                latency_ns=round(latency_ms * 1e6),
                maker_fee_bps=maker_bps,
                taker_fee_bps=taker_bps,
            ),
        )
        paper.thread.start()
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
            rate=rate,
        )
    except FileNotFoundError as error:
        raise click.ClickException(str(error)) from error
    finally:
        if paper is not None:
            paper.stop()
        workdir.cleanup()
    if code != 0:
        raise SystemExit(code)


def _credentials(path: Path | None, workdir: Path) -> tuple[dict[str, str], str]:
    """Accepted keys, and where they come from (never the secret itself)."""
    try:
        if path is None:
            try:
                credentials = load_credentials()
                return {credentials.api_key: credentials.api_secret}, f"${API_KEY_ENV}"
            except CredentialsError:
                path = workdir / "paper-credentials"
        if path.exists():
            credentials = load_credentials(path, environ={})
        else:
            credentials = create_credentials_file(path)
    except CredentialsError as error:
        raise click.ClickException(str(error)) from error
    return {credentials.api_key: credentials.api_secret}, str(path)


class _PaperRunner:
    """Starts the paper venue once the Rust venue wrote its port (it follows its status)."""

    def __init__(
        self,
        capture: Path,
        host: str,
        md_port: int,
        orders_port: int | None,
        ready_file: Path,
        credentials: tuple[dict[str, str], str],
        options: Mapping[str, Any],
    ) -> None:
        self.capture = capture
        self.host = host
        self.md_port = md_port
        self.orders_port = orders_port
        self.ready_file = ready_file
        self.keys, self.source = credentials
        self.options = options
        self.venue: Any = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="paper-start", daemon=True)

    def _run(self) -> None:
        from twinfeed.live.paper_venue import PaperVenue

        while not self.ready_file.exists():
            if self.stopping.wait(0.02):
                return
        md_port = int(self.ready_file.read_text().strip())
        status_url = f"http://{self.host}:{md_port}/_venue/status"

        def status() -> dict[str, Any]:
            with urllib.request.urlopen(status_url, timeout=5) as response:
                return dict(json.loads(response.read()))

        port = self.orders_port
        if port is None:
            port = md_port + 1 if self.md_port != 0 else 0
        try:
            self.venue = PaperVenue.start(
                self.capture, status, port=port, host=self.host, keys=self.keys, **self.options
            )
        except OSError as error:
            click.echo(f"paper orders: cannot listen on {self.host}:{port}: {error}", err=True)
            return
        if self.stopping.is_set():
            self.venue.stop()
            return
        from twinfeed.live.paper_ws import register_user_stream

        register_user_stream(
            f"http://{self.host}:{md_port}",
            self.venue.ws.port,
            say=lambda message: click.echo(f"paper orders: {message}", err=True),
        )
        click.echo(
            f"paper orders on {self.venue.url} (user-data websocket and WebSocket API on "
            f"{self.venue.ws_url}); API key in {self.source}",
            err=True,
        )

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)
        if self.venue is not None:
            self.venue.stop()
