"""``twinfeed ctl status|pause|resume|flatten|stop``: talk to a running brain over its 0600
Unix control socket (see :mod:`twinfeed.live.brain.control`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from twinfeed.cli._app import main
from twinfeed.cli._util import console

DEFAULT_SOCKET = Path("runs/live/control.sock")


@main.group("ctl")
@click.option(
    "--socket",
    "socket_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_SOCKET,
    show_default=True,
    help="The brain's control socket (control.sock next to its trade DB).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON answer.")
@click.pass_context
def ctl(ctx: click.Context, socket_path: Path, as_json: bool) -> None:
    """Control a running `twinfeed live` brain."""
    ctx.obj = {"socket": socket_path, "json": as_json}


def _send(ctx: click.Context, command: str) -> dict[str, Any]:
    from twinfeed.live.brain.control import send_command

    path: Path = ctx.obj["socket"]
    try:
        answer = send_command(path, command)
    except (OSError, ValueError) as error:
        raise click.ClickException(f"{path}: {error}") from error
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
