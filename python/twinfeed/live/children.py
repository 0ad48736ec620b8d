"""Child processes that die with the Python process that started them.

A ``kill -9`` of ``twinfeed live`` used to leave its twinfeed-venue and twinfeed-ingest running
(the ingest reconnecting forever). Every child the Python side starts gets
``prctl(PR_SET_PDEATHSIG, SIGTERM)`` in its ``preexec_fn``: the kernel sends it SIGTERM (an
orderly stop: the ingest flushes its capture) when its parent goes away, however it went.

PDEATHSIG fires when the parent *thread* that forked the child exits, not the process. A
child started from a short-lived worker thread would be killed when that thread ends, so the
death signal is only set for children started from the main thread (``twinfeed live``, the
CLI commands and the session start every child there); others are started as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable

__all__ = ["die_with_parent", "forward_signals"]

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` for :class:`subprocess.Popen` that makes the child get ``sig`` when
    this process dies; None off Linux or off the main thread (see the module docstring)."""
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, not in the child
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: nobody would signal us
            os.kill(os.getpid(), sig)

    return preexec


def forward_signals(
    pid: int, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)
) -> Callable[[], None]:
    """Passes ``signals`` received by this process on to child ``pid`` (main thread only);
    returns a function restoring the previous handlers."""

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in signals}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore
