"""``twinfeed backtest``: run a strategy over a capture; metrics, plots and artifact."""

from __future__ import annotations

import math
from pathlib import Path

import click
from rich.table import Table

from twinfeed.cli._app import main
from twinfeed.cli._util import console, json_object, load_config, output_path, progress_bar
from twinfeed.research.backtest import DEFAULT_STRATEGY
from twinfeed.research.backtest_report import sharpe_note

_MODES = click.Choice(["auto", "rows", "batches"])


def _format(value: float) -> str:
    if math.isnan(value):
        return "-"
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.6g}"


@main.command("backtest")
@click.option(
    "--strategy",
    "strategy_spec",
    default=DEFAULT_STRATEGY,
    show_default=True,
    help="Strategy class as module:Class (a module in the current folder works) or "
    "path/to/file.py:Class.",
)
@click.option(
    "--capture",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="Capture file or live capture folder.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Feature config TOML (default: FeatureConfig.default()).",
)
@click.option(
    "--params",
    "params_text",
    metavar="JSON",
    help="Strategy parameter overrides, e.g. '{\"order_qty\": 0.01}' or @params.json.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (default: runs/backtest-<capture stem>).",
)
@click.option("--latency-ms", default=1.0, show_default=True, help="Order-entry latency.")
@click.option("--md-latency-ms", default=0.0, show_default=True, help="Market-data latency.")
@click.option("--maker-fee-bps", default=0.0, show_default=True, help="Negative = rebate.")
@click.option("--taker-fee-bps", default=1.7, show_default=True)
@click.option(
    "--decision-ms",
    default=100.0,
    show_default=True,
    help="Event-time interval between on_batch calls (batch strategies).",
)
@click.option(
    "--mode",
    type=_MODES,
    default="auto",
    show_default=True,
    help="rows: on_record per record; batches: on_batch per interval.",
)
@click.option(
    "--instruments",
    "instruments_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Trading rules (exchangeInfo-shaped JSON) over the shipped data/instruments table.",
)
@click.option(
    "--risk",
    "risk_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A TOML file whose [risk] section sets the pre-trade limits (a twinfeed live settings "
    "file works); default: the live brain's default limits.",
)
@click.option("--no-risk", is_flag=True, help="No pre-trade risk checks (live always has them).")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
def backtest(
    strategy_spec: str,
    capture: Path,
    config_path: Path | None,
    params_text: str | None,
    out: Path | None,
    latency_ms: float,
    md_latency_ms: float,
    maker_fee_bps: float,
    taker_fee_bps: float,
    decision_ms: float,
    mode: str,
    instruments_path: Path | None,
    risk_path: Path | None,
    no_risk: bool,
    no_plots: bool,
) -> None:
    """Backtest a strategy on CAPTURE through the same feature pipeline as live.

    Writes artifact.json (strategy and its source digest, params, the feature config, symbols
    and their instruments, risk limits, capture sha256, build, metrics: what `twinfeed live
    --artifact` deploys) and equity.png, inventory.png, quotes.png into the output folder.
    Orders follow the instruments' rules and pass the live brain's pre-trade risk.
    """
    import tomllib

    from twinfeed.instruments import UnknownInstrumentError, load_table
    from twinfeed.live.brain.risk import RiskConfig
    from twinfeed.research.backtest import Backtest, default_out_dir, load_strategy

    out = output_path(out, folder=True)
    params = json_object(params_text, "--params") or {}
    try:
        strategy = load_strategy(strategy_spec)
    except ValueError as error:
        raise click.ClickException(f"--strategy {strategy_spec}: {error}") from error
    config = load_config(config_path)
    risk: RiskConfig | None = None
    try:
        if not no_risk:
            section = tomllib.loads(risk_path.read_text()).get("risk", {}) if risk_path else {}
            risk = RiskConfig.from_mapping(dict(section))
        table = load_table(instruments_path)
    except (ValueError, OSError, TypeError) as error:
        raise click.ClickException(str(error)) from error
    try:
        run = Backtest(
            strategy,
            capture,
            config,
            params,
            latency_ns=round(latency_ms * 1e6),
            md_latency_ns=round(md_latency_ms * 1e6),
            maker_fee_bps=maker_fee_bps,
            taker_fee_bps=taker_fee_bps,
            decision_interval_ns=round(decision_ms * 1e6),
            mode=mode,  # type: ignore[arg-type]
            instruments=table,
            risk=risk,
        )
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    try:
        with progress_bar("backtest") as advance:
            result = run.run(progress=advance)
    except UnknownInstrumentError as error:
        raise click.ClickException(str(error)) from error
    if run.instruments.table is not None:
        console.print(f"instruments: {run.instruments.table.origin}")
    out = out if out is not None else default_out_dir(capture)
    artifact = result.write_artifact(out / "artifact.json")
    plots = [] if no_plots else result.plot(out)

    console.print(
        f"[bold]{result.strategy_name}[/] on {capture.name}: {run.mode} mode, "
        f"latency {latency_ms:g} ms, fees {maker_fee_bps:g}/{taker_fee_bps:g} bps maker/taker"
    )
    currency = result.currency or "quote currency"
    title = f"backtest metrics (PnL and fees in {currency})"
    metrics = Table(title=title, min_width=min(len(title), console.width))
    metrics.add_column("metric")
    metrics.add_column("value", justify="right")
    for name, value in result.metrics.items():
        metrics.add_row(name, _format(value))
    console.print(metrics)
    if math.isnan(result.metrics.get("sharpe", math.nan)):
        console.print(f"sharpe: {sharpe_note(result.metrics)}")
    console.print(f"fingerprint {result.fingerprint[:16]}  digest {result.digest()[:16]}")
    console.print(f"wrote {artifact}" + "".join(f", {path.name}" for path in plots))
    if result.all_refused():
        # The artifact is written (it says what happened), but this run did not trade.
        top = "; ".join(f"{count} x {reason}" for reason, count in result.top_refusals())
        raise click.ClickException(
            f"every one of {result.orders.height:,} orders was refused (top reasons: {top}); "
            "check the strategy's orders (side 'buy'/'sell', price and quantity within the "
            "instrument's rules) and --risk limits"
        )
