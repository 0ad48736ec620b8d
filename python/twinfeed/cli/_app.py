"""The root click group and the one place user errors become one-line messages.

Every command raises what the library raises; :class:`TwinfeedGroup` turns the errors a user
can fix (a wrong file, a locked trade DB, a strategy that raised) into one line on stderr,
``Error: <what, naming the file> ...; <the fix>``, and a non-zero exit code. ``twinfeed
--debug COMMAND ...`` (or ``TWINFEED_DEBUG=1``) lets the exception through with its traceback.
Anything unexpected is one line too, ending with the hint to rerun with ``--debug``.
"""

from __future__ import annotations

import os
from typing import Any

import click

from twinfeed.records import build_info

#: Exit code of an error the user can fix (click's usage errors exit 2).
EXIT_ERROR = 1
#: Exit code of an unexpected exception (a bug: rerun with --debug and report it).
EXIT_INTERNAL = 70

DEBUG_ENV = "TWINFEED_DEBUG"


def _version() -> str:
    info = build_info()
    return (
        f"twinfeed {info['version']} ({info['profile']} build, git {info['git_revision']}, "
        f"record schema {info['schema_version']})"
    )


def user_message(error: BaseException) -> str | None:
    """The one-line message for an error the user can fix, or None for anything else."""
    from twinfeed import TwinfeedError, UnknownInstrumentError
    from twinfeed.research.backtest import StrategyError
    from twinfeed.research.features import EmptyCaptureError

    if isinstance(
        error, StrategyError | EmptyCaptureError | TwinfeedError | UnknownInstrumentError
    ):
        return _one_line(str(error).strip('"'))
    if isinstance(error, IsADirectoryError):
        return f"{error.filename}: is a folder; give a file"
    if isinstance(error, FileNotFoundError) and error.filename:
        return f"{error.filename}: no such file; check the path"
    if isinstance(error, PermissionError) and error.filename:
        return f"{error.filename}: permission denied; check the file's owner and mode"
    lock = _duckdb_lock(error)
    if lock is not None:
        return lock
    return None


def _duckdb_lock(error: BaseException) -> str | None:
    """A DuckDB file held by another process, said in a user's words."""
    if "duckdb" not in type(error).__module__:
        return None
    text = str(error)
    if "lock" not in text.lower():
        return _one_line(f"trade DB: {text}")
    import re

    path = re.search(r'file "([^"]+)"', text)
    pid = re.search(r"PID (\d+)", text)
    name = path.group(1) if path else "the trade DB"
    holder = f"process {pid.group(1)}" if pid else "another process"
    return (
        f"{name} is in use by {holder} (a running `twinfeed live`?); give another --db, or "
        "stop that run first (`twinfeed ctl --db DB stop`)"
    )


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return "; ".join(lines) if lines else "failed"


class TwinfeedGroup(click.Group):
    """A click group whose commands' exceptions become one-line errors (see the module)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as error:
            if _debug(ctx):
                raise
            message = user_message(error)
            if message is not None:
                click.echo(f"Error: {message}", err=True)
                ctx.exit(EXIT_ERROR)
            click.echo(
                f"Error: unexpected {type(error).__name__}: {_one_line(str(error))} "
                "(rerun as `twinfeed --debug ...` for the traceback, and report it)",
                err=True,
            )
            ctx.exit(EXIT_INTERNAL)


def _debug(ctx: click.Context) -> bool:
    root = ctx.find_root()
    if isinstance(root.obj, dict) and root.obj.get("debug"):
        return True
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


@click.group(cls=TwinfeedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(message="%(version)s", version=_version())
@click.option(
    "--debug",
    is_flag=True,
    help=f"Show the full traceback of an error (also: {DEBUG_ENV}=1).",
)
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """twinfeed: research-to-live trading on one Rust feature crate.

    \b
    Research:  twinfeed features CAPTURE --out features.parquet
               twinfeed backtest --capture CAPTURE --strategy mymod.py:MyStrategy
    Live:      twinfeed live --capture CAPTURE --strategy mymod.py:MyStrategy
               twinfeed report --db runs/live/trade.duckdb
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
