"""``twinfeed ingest`` and ``twinfeed record``: run the live ingest binary in the foreground."""

from __future__ import annotations

import time
from pathlib import Path

import click

from twinfeed.cli._app import main
from twinfeed.cli._util import console, load_config


def _symbols(values: tuple[str, ...]) -> list[str]:
    return [s.strip().upper() for value in values for s in value.split(",") if s.strip()]


def local_venue_symbols(url: str, timeout_s: float = 2.0) -> list[str] | None:
    """The symbols a local ``twinfeed venue`` at websocket ``url`` replays (from its
    ``/fapi/v1/ticker/bookTicker``), or None when ``url`` is not such a venue (its
    ``/_venue/status`` does not answer): a real exchange serves hundreds, never guessed."""
    import json
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    base = f"{scheme}://{parts.netloc}"
    try:
        with urllib.request.urlopen(f"{base}/_venue/status", timeout=timeout_s) as response:
            status = json.loads(response.read())
        if not isinstance(status, dict) or "capture" not in status:
            return None
        with urllib.request.urlopen(
            f"{base}/fapi/v1/ticker/bookTicker", timeout=timeout_s
        ) as response:
            tickers = json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    if isinstance(tickers, dict):
        tickers = [tickers]
    return sorted({str(t["symbol"]) for t in tickers if isinstance(t, dict) and "symbol" in t})


def _default_capture_dir(label: str) -> Path:
    return Path("captures") / f"{label}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"


def _run(
    *,
    url: str | None,
    config_path: Path | None,
    ring: str | None,
    capture_dir: Path,
    symbols: list[str],
    stats_file: Path | None,
) -> None:
    from twinfeed.live.children import forward_signals
    from twinfeed.live.ingest import start_ingest

    if not symbols:
        config = load_config(config_path)
        if not config.symbols:
            served = local_venue_symbols(url or config.ingest_url)
            if served:
                symbols = served
                console.print(f"subscribing what the local venue serves: {', '.join(served)}")
    try:
        process = start_ingest(
            capture_dir=capture_dir,
            ring=ring,
            config=config_path,
            url=url,
            symbols=symbols,
            stats_file=stats_file,
        )
    except FileNotFoundError as error:
        raise click.ClickException(str(error)) from error
    target = f"ring [bold]{ring}[/] and " if ring else ""
    console.print(
        f"twinfeed-ingest (pid {process.pid}) writing {target}capture [bold]{capture_dir}[/]; "
        "Ctrl-C stops it"
    )
    # SIGTERM or SIGINT to this process is passed on to the ingest (a `kill` reaches only this
    # process; a terminal's Ctrl-C reaches both, and the ingest stops on the first), then we
    # wait for it to flush and exit; should this process die anyway, the ingest gets SIGTERM
    # from the kernel (twinfeed.live.children).
    restore = forward_signals(process.pid)
    try:
        code = process.wait()
    finally:
        restore()
        if process.running():
            code = process.stop()
    if code != 0:
        raise click.ClickException(f"twinfeed-ingest exited with code {code}")
    console.print(f"capture written to [bold]{capture_dir}[/]")


_config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Feature config TOML (default: the built-in default).",
)
_url_option = click.option(
    "--url", help="Websocket base url, e.g. ws://127.0.0.1:9443 (default: the config's ingest.url)."
)
_symbols_option = click.option(
    "--symbols",
    multiple=True,
    help="Symbols to subscribe to, comma-separated or repeated (default: filter.symbols; with "
    "none there, the symbols a local `twinfeed venue` at --url replays).",
)
_stats_option = click.option(
    "--stats-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON stats file, rewritten about every 500 ms.",
)


@main.command("ingest")
@_url_option
@_config_option
@click.option("--ring", required=True, help="Ring name (/dev/shm/twinfeed-NAME) or absolute path.")
@click.option(
    "--capture-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Capture folder (default: captures/<ring>-<UTC time>). Plain capture-NNNNNN.txt files, "
    'or capture-NNNNNN.txt.zst with [ingest] capture_compression = "zstd" in the config.',
)
@_symbols_option
@_stats_option
def ingest(
    url: str | None,
    config_path: Path | None,
    ring: str,
    capture_dir: Path | None,
    symbols: tuple[str, ...],
    stats_file: Path | None,
) -> None:
    """Run the live ingest: venue websocket -> capture + features -> shared-memory ring.

    The brain reads the ring with twinfeed.live.Feed.open(RING). The capture it writes
    reproduces the ring's records byte for byte in a batch run.
    """
    _run(
        url=url,
        config_path=config_path,
        ring=ring,
        capture_dir=capture_dir or _default_capture_dir(ring.strip("/").replace("/", "_")),
        symbols=_symbols(symbols),
        stats_file=stats_file,
    )


@main.command("record")
@_url_option
@_config_option
@click.option(
    "--capture-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Capture folder (default: captures/record-<UTC time>). zstd-compressed with [ingest] "
    'capture_compression = "zstd" in the config.',
)
@_symbols_option
@_stats_option
def record(
    url: str | None,
    config_path: Path | None,
    capture_dir: Path | None,
    symbols: tuple[str, ...],
    stats_file: Path | None,
) -> None:
    """Record a capture only (no ring): the venue's frames plus the ingest's own lines."""
    _run(
        url=url,
        config_path=config_path,
        ring=None,
        capture_dir=capture_dir or _default_capture_dir("record"),
        symbols=_symbols(symbols),
        stats_file=stats_file,
    )
