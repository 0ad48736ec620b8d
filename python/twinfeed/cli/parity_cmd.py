"""``twinfeed parity``: check, trades, gate, golden, diff."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from twinfeed._atomic import write_text
from twinfeed.cli._app import main
from twinfeed.cli._util import console, load_config, output_path

CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Feature config TOML (default: FeatureConfig.default()).",
)


@main.group("parity")
def parity() -> None:
    """Prove that live records equal batch records, byte for byte."""


@parity.command("check")
@click.option("--capture", required=True, type=click.Path(exists=True, path_type=Path))
@CONFIG_OPTION
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the ingest's capture and the report go (default: a temp folder).",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON report path (default: WORK_DIR/parity-report.json).",
)
@click.option("--drop-after", type=int, help="Venue fault: drop the connection after N messages.")
@click.option("--skip-depth", type=int, help="Venue fault: skip the K-th depth update (a gap).")
def check(
    capture: Path,
    config_path: Path | None,
    work_dir: Path | None,
    report_path: Path | None,
    drop_after: int | None,
    skip_depth: int | None,
) -> None:
    """Replay CAPTURE through venue -> ingest -> ring and through the binding; compare.

    Exit status 0 only if every gating comparison is equal.
    """
    import tempfile

    from twinfeed.parity import parity_check
    from twinfeed.parity.report import print_report

    output_path(report_path, option="--report")
    output_path(work_dir, option="--work-dir", folder=True)
    config = load_config(config_path)
    work = work_dir or Path(tempfile.mkdtemp(prefix="parity-"))
    faults = {k: v for k, v in {"drop_after": drop_after, "skip_depth": skip_depth}.items() if v}
    with console.status("replaying through the live path..."):
        report = parity_check(capture, config, work, faults=faults or None)
    print_report(report, console)
    out = report_path or work / "parity-report.json"
    report.write(out)
    console.print(f"report: {out}")
    sys.exit(0 if report.ok else 1)


@parity.command("trades")
@click.option(
    "--db",
    "db_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The trade DB of a `twinfeed live` session.",
)
@click.option("--run", "run_id", help="Run id (default: the newest run with a journal).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the JSON reports and the PnL plot (default: beside the DB).",
)
def trades(db_path: Path, run_id: str | None, out: Path | None) -> None:
    """Trade parity of a live run: decision replay, then the execution comparison.

    Rebuilds the records from the capture the ingest wrote, feeds the run's strategy the
    journal's inputs and checks every request equals the journaled one (exit 1 if not); then
    re-runs the backtester on that capture with the live submit->ack latencies and compares
    every order's fate with the venue's.
    """
    from twinfeed.parity.trades import JournalError, print_replay, replay_decisions

    out = output_path(out, option="--out", folder=True) or db_path.parent
    try:
        with console.status("replaying the journal..."):
            result = replay_decisions(db_path, run_id)
    except JournalError as error:
        raise click.ClickException(str(error)) from error
    print_replay(result, console)
    report = out / f"trade-parity-{result.run_id}.json"
    result.write(report)
    console.print(f"report: {report}")
    failed = not result.identical
    try:
        from twinfeed.parity.execution import _write, print_execution
        from twinfeed.parity.queue_fit import fit_queue

        with console.status("backtesting the ingest's capture with the live latencies..."):
            execution, _fit = fit_queue(db_path, result.run_id)
            _write(execution, out)
        print_execution(execution, console)
    except JournalError as error:
        raise click.ClickException(str(error)) from error
    sys.exit(1 if failed else 0)


@parity.command("gate")
@click.option(
    "--strategy-artifact",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="artifact.json written by `twinfeed backtest`.",
)
@CONFIG_OPTION
@click.option(
    "--capture",
    "captures",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Captures to check (default: bundled and ../shared real captures).",
)
@click.option(
    "--live-db",
    "live_dbs",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Trade DB of a `twinfeed live` session whose decision replay must be identical "
    "(repeatable; its newest run).",
)
def gate(
    strategy_artifact: Path,
    config_path: Path | None,
    captures: tuple[Path, ...],
    live_dbs: tuple[Path, ...],
) -> None:
    """The deployment gate: artifact fingerprint, golden digests, parity checks, and the
    decision replay of each --live-db."""
    from twinfeed.parity import parity_gate
    from twinfeed.parity.report import print_report
    from twinfeed.parity.trades import print_replay

    config = load_config(config_path)
    with console.status("running the parity gate..."):
        result = parity_gate(
            strategy_artifact, config, list(captures) or None, live_dbs=list(live_dbs)
        )
    for replay in result.replays:
        print_replay(replay, console)
    for golden in result.goldens:
        mark = "[green]ok" if golden.ok else "[red]FAIL"
        console.print(f"golden {mark}[/] {golden.describe()}")
    for report in result.checks:
        print_report(report, console)
    if result.ok:
        console.print("[bold green]GATE PASSED")
        return
    for failure in result.failures:
        console.print(f"[red]{failure}")
    console.print("[bold red]GATE FAILED")
    sys.exit(1)


@parity.command("golden")
@CONFIG_OPTION
@click.option("--write", is_flag=True, help="Regenerate the goldens (what `make golden` does).")
def golden(config_path: Path | None, write: bool) -> None:
    """Verify (or with --write, regenerate) golden digests of the bundled and real captures."""
    from twinfeed.parity.golden import golden_captures, verify_golden, write_golden

    config = load_config(config_path)
    failed = False
    for capture in golden_captures():
        if write:
            console.print(f"wrote {write_golden(capture, config)}")
            continue
        result = verify_golden(capture, config)
        failed |= not result.ok
        console.print(("[green]ok   " if result.ok else "[red]FAIL ") + result.describe())
    sys.exit(1 if failed else 0)


@parity.command("diff")
@click.argument("a", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("b", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--ignore", multiple=True, help="Field to leave out (repeatable), e.g. local_ns.")
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the comparison as JSON.",
)
def diff(a: Path, b: Path, ignore: tuple[str, ...], json_out: Path | None) -> None:
    """Compare two feature Parquet files and report the first divergence."""
    from twinfeed.parity import diff_parquet
    from twinfeed.parity.report import print_comparison

    output_path(json_out, option="--json")
    comparison = diff_parquet(a, b, ignore)
    print_comparison(comparison, console)
    if json_out is not None:
        write_text(json_out, json.dumps(comparison.to_json(), indent=2) + "\n")
    sys.exit(0 if comparison.equal else 1)
