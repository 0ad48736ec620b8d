"""``twinfeed live``: trade a strategy on a local replay (venue, ingest, brain), on a Binance
venue (``--venue``), or in the shadow of either (``--shadow``), then print the report."""

from __future__ import annotations

from pathlib import Path

import click

from twinfeed.cli._app import main
from twinfeed.cli._util import console, json_object, output_path

#: Exit code of a session that ended abnormally (e.g. its venue died) after unwinding and
#: writing its report; 1 is a session that could not run at all.
EXIT_ABNORMAL = 3


def _speed(value: str | None) -> float | str | None:
    if value is None or value == "max":
        return value
    try:
        speed = float(value)
    except ValueError as error:
        raise click.BadParameter("a positive number or 'max'", param_hint="--speed") from error
    if speed <= 0:
        raise click.BadParameter("a positive number or 'max'", param_hint="--speed")
    return speed


def _check_db_free(db: Path) -> None:
    """Fails early (before any process starts) when another process holds the trade DB: DuckDB
    lets one process open a file for writing, and a second session would only fail later."""
    if not db.is_file():
        return
    import duckdb

    # Read-only is enough to meet the writer's lock; the error says who holds it.
    duckdb.connect(str(db), read_only=True).close()


@main.command("live")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Live settings TOML ([session], [strategy], [live], [risk]; see twinfeed.live.brain"
    ".session).",
)
@click.option(
    "--capture",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Capture the venue replays (default: data/synth-btcusdt.txt).",
)
@click.option("--speed", help="Replay speed, e.g. 2 (default) or max.")
@click.option("--duration", type=float, help="Stop after this many seconds (wall clock).")
@click.option(
    "--db", type=click.Path(dir_okay=False, path_type=Path), help="Trade DB (DuckDB) file."
)
@click.option(
    "--strategy",
    help="Strategy as module:Class or path/to/file.py:Class (default: the example MarketMaker).",
)
@click.option("--params", help="Strategy parameter overrides: a JSON object or @params.json.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the report PNG goes (default: next to the DB).",
)
@click.option(
    "--artifact",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A backtest artifact.json to deploy: its strategy, params, feature config, symbols, "
    "instruments and risk limits; refuses to trade if the live side differs.",
)
@click.option(
    "--allow-drift", is_flag=True, help="Trade an artifact despite differences (recorded)."
)
@click.option(
    "--feature-config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Feature config TOML the ingest runs (default: the artifact's, else the default).",
)
@click.option(
    "--instruments",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Trading rules (exchangeInfo-shaped JSON) over the shipped data/instruments table.",
)
@click.option(
    "--venue",
    type=click.Choice(["local", "binance-usdm-testnet", "binance-usdm"]),
    default="local",
    show_default=True,
    help="local: the replay and the paper venue. binance-usdm(-testnet): a session on "
    "Binance's endpoints (twinfeed.venues.binance.endpoints; each overridable with "
    "TWINFEED_BINANCE_REST/_WS_API/_STREAMS/_MARKET_REST): its market data through the "
    "ingest, orders through the adapter after a preflight.",
)
@click.option(
    "--credentials",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="API key file (0600; NAME=value lines) for a Binance venue; else TWINFEED_API_KEY "
    "with TWINFEED_API_SECRET or TWINFEED_API_PRIVATE_KEY(_FILE) from the environment.",
)
@click.option(
    "--shadow",
    is_flag=True,
    help="Shadow trading: real market data through the ingest, orders matched by the "
    "matching engine inside the brain against it; no order reaches a venue.",
)
def live(
    config_path: Path | None,
    capture: Path | None,
    speed: str | None,
    duration: float | None,
    db: Path | None,
    strategy: str | None,
    params: str | None,
    out: Path | None,
    artifact: Path | None,
    allow_drift: bool,
    feature_config: Path | None,
    instruments: Path | None,
    venue: str,
    credentials: Path | None,
    shadow: bool,
) -> None:
    """Trade live: paper on a local replay (default), or a session on a Binance venue.

    --venue local starts twinfeed-venue replaying the capture, the paper venue (Binance USD-M
    order entry matched against the same replay), twinfeed-ingest into a ring, and runs the
    strategy through risk, the OMS and the trade DB until the replay ends (or --duration).
    --venue binance-usdm(-testnet) reads that venue's market data through the ingest and
    trades through the Binance adapter after a preflight, until --duration (or `twinfeed ctl
    stop`). --shadow matches orders inside the brain on the live market data and sends none.
    Then prints the report (twinfeed report reads the same DB later).

    Trades the capture's symbols (or the artifact's), under the instruments' rules. Exit codes:
    0 done, 1 could not run (e.g. a wrong setting) or the session placed orders and the venue
    or risk accepted none, 3 ended abnormally after unwinding and reporting (the market-data
    venue died).
    """
    from twinfeed.deploy import ArtifactError, DriftError
    from twinfeed.instruments import UnknownInstrumentError
    from twinfeed.live.brain.preflight import PreflightError
    from twinfeed.live.brain.report import load_report, plot_report, print_report
    from twinfeed.live.brain.session import load_settings, run_session
    from twinfeed.live.brain.venue_session import run_venue_session
    from twinfeed.research.features import require_records
    from twinfeed.venues.binance.signing import CredentialsError
    from twinfeed.venues.errors import VenueError

    out = output_path(out, folder=True)
    strategy_params = json_object(params, "--params")
    try:
        settings = load_settings(
            config_path,
            capture=str(capture) if capture else None,
            speed=_speed(speed),
            duration_s=duration,
            db=str(db) if db else None,
            strategy=strategy,
            params=strategy_params,
            artifact=str(artifact) if artifact else None,
            allow_drift=allow_drift or None,
            feature_config=str(feature_config) if feature_config else None,
            instruments=str(instruments) if instruments else None,
            shadow=shadow or None,
        )
    except (ValueError, TypeError, OSError) as error:
        raise click.ClickException(str(error)) from error
    if settings.capture:
        require_records(settings.capture)
    _check_db_free(Path(settings.db))
    if artifact is not None and (strategy or params):
        raise click.ClickException("--artifact fixes the strategy and params: drop --strategy")
    try:
        if venue == "local":
            result = run_session(settings, on_status=lambda message: console.print(message))
        else:
            result = run_venue_session(
                settings, venue, credentials, on_status=lambda message: console.print(message)
            )
    except (CredentialsError, VenueError, PreflightError) as error:
        raise click.ClickException(f"{venue}: {error}") from error
    except (DriftError, ArtifactError, UnknownInstrumentError) as error:
        raise click.ClickException(str(error).strip('"')) from error
    except (FileNotFoundError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    except OSError as error:  # a process or socket of the session failed to start
        raise click.ClickException(f"session failed: {error}") from error
    summary = result.summary
    console.print(
        f"run [bold]{summary.run_id}[/] {summary.status}: {summary.records:,} records, "
        f"{summary.orders} orders ({summary.accepted} accepted), {summary.fills} fills; "
        f"trade DB {result.db_path}"
    )
    report = load_report(result.db_path, summary.run_id)
    print_report(report, console)
    png = plot_report(report, out or result.db_path.parent)
    console.print(f"plot: {png}")
    refusals = summary.top_refusals()
    if refusals:
        console.print("refusals: " + "; ".join(f"{count} x {reason}" for reason, count in refusals))
    if result.abnormal is not None:
        # Unwound and reported, but not the session that was asked for: say so in the code.
        click.echo(f"Error: session ended abnormally: {result.abnormal}", err=True)
        raise SystemExit(EXIT_ABNORMAL)
    if summary.orders and not summary.accepted:
        raise click.ClickException(
            f"every one of {summary.orders} orders was refused"
            + (f" (top: {refusals[0][1]} x {refusals[0][0]})" if refusals else "")
        )
