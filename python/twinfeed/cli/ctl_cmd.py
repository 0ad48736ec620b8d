"""``twinfeed ctl status|pause|resume|flatten|stop``: talk to a running brain over its 0600
Unix control socket (see :mod:`twinfeed.live.brain.control`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from twinfeed._time import utc_iso
from twinfeed.cli._app import main
from twinfeed.cli._util import console

DEFAULT_SOCKET = Path("runs/live/control.sock")
SOCKET_NAME = "control.sock"


def find_socket(socket_path: Path | None, db: Path | None, root: Path = Path("runs")) -> Path:
    """The control socket to talk to: ``--socket``; else ``control.sock`` next to ``--db``;
    else the newest ``control.sock`` under ``runs/`` (the newest running session)."""
    if socket_path is not None:
        return socket_path
    if db is not None:
        return db.parent / SOCKET_NAME
    sockets = [p for p in root.glob(f"**/{SOCKET_NAME}") if p.is_socket()] if root.is_dir() else []
    if not sockets:
        raise click.ClickException(
            f"no control socket found under {root}/ (is a `twinfeed live` running?); give "
            f"--db PATH of its trade DB or --socket PATH (the {SOCKET_NAME} next to that DB)"
        )
    return max(sockets, key=lambda p: p.stat().st_mtime)


@main.group("ctl")
@click.option(
    "--socket",
    "socket_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"The brain's control socket [default: {SOCKET_NAME} next to --db, else the newest "
    f"runs/**/{SOCKET_NAME}].",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The running session's trade DB: its control socket is next to it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON answer.")
@click.pass_context
def ctl(ctx: click.Context, socket_path: Path | None, db: Path | None, as_json: bool) -> None:
    """Control a running `twinfeed live` brain."""
    ctx.obj = {"socket": socket_path, "db": db, "json": as_json}


def _send(ctx: click.Context, command: str) -> dict[str, Any]:
    from twinfeed.live.brain.control import send_command

    path = find_socket(ctx.obj["socket"], ctx.obj["db"])
    try:
        answer = send_command(path, command)
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise click.ClickException(
            f"{path}: cannot reach the brain ({reason}); is its `twinfeed live` still running? "
            f"Give --db PATH of the run's trade DB or --socket PATH"
        ) from error
    if ctx.obj["json"]:
        click.echo(json.dumps(answer, default=str))
    if not answer.get("ok"):
        raise click.ClickException(str(answer.get("error", "refused")))
    return answer


@ctl.command("status")
@click.pass_context
def status(ctx: click.Context) -> None:
    """Feed state, trading state, positions, PnL and open orders."""
    answer = _send(ctx, "status")
    if ctx.obj["json"]:
        return
    trading = "trading" if answer["trading"] else f"not trading ({answer['block_reason']})"
    orders, accepted = answer.get("orders", 0), answer.get("accepted", 0)
    refusals = answer.get("refusals") or []
    if orders and not accepted:
        # A brain whose every order is refused is not trading, whatever the feed says.
        top = refusals[0] if refusals else ("unknown", orders)
        trading = (
            f"[bold red]not trading: all {orders} orders refused[/] (top: {top[1]} x {top[0]})"
        )
    console.print(
        f"run {answer['run_id']}  feed [bold]{answer['feed']}[/]  {trading}  "
        f"ingest pid {answer['ingest_pid']} (restarts {answer['ingest_restarts']})"
    )
    for line in _session_lines(answer):
        console.print(line, markup=False)
    console.print(
        f"symbols {', '.join(answer.get('symbols', []))}  orders {orders} ({accepted} accepted)"
        f"  fills {answer.get('fills', 0)}"
    )
    for reason, count in refusals:
        console.print(f"refused {count} x {reason}", markup=False)
    for symbol, qty in answer["positions"].items():
        console.print(f"position {symbol} {qty:+g}")
    pnl = answer["pnl"]
    currency = answer.get("currency") or ""
    console.print(
        f"PnL total {pnl['total']:.4f} (realized {pnl['realized']:.4f}, unrealized "
        f"{pnl['unrealized']:.4f}, fees {pnl['fees']:.4f}) {currency}".rstrip()
    )
    for order in answer["open_orders"]:
        console.print(
            f"open {order['client_id']} {order['symbol']} {order['side']} {order['qty']:g} @ "
            f"{order['price']} {order['state']}"
        )


def _session_lines(answer: dict[str, Any]) -> list[str]:
    """``time <UTC ISO>`` (the brain's clock: the latest record's receive time) and, for a
    local replay, ``replay <UTC ISO> line L/N (P %)``: the capture time the venue has replayed
    up to and how far through its capture it is."""
    lines = [f"time {utc_iso(answer.get('session_ns'))}"]
    replay = answer.get("replay")
    if replay:
        text = (
            f"replay {utc_iso(replay.get('local_ns'))} line {replay['line']:,}/"
            f"{replay['lines']:,} ({replay['percent']:.1f} %)"
        )
        if replay.get("lap"):
            text += f" lap {replay['lap'] + 1}"
        if replay.get("finished"):
            text += " finished"
        lines.append(text)
    return lines


def _simple(command: str, help_text: str) -> None:
    @ctl.command(command, help=help_text)
    @click.pass_context
    def _command(ctx: click.Context) -> None:
        answer = _send(ctx, command)
        if not ctx.obj["json"]:
            console.print(f"{command}: ok {json.dumps(answer, default=str)}")


_simple("pause", "Cancel working orders and stop opening risk (reducing orders still pass).")
_simple("resume", "Lift a pause (trading resumes once the feed allows it).")
_simple("flatten", "Pause, cancel everything and unwind every position to flat.")
_simple("stop", "End the run cleanly (cancel, drain, reconcile, record).")
