"""Operator controls of a running brain: a Unix socket speaking JSON lines.

The socket lives in the run directory and is created with mode 0600 (the umask is tightened
around ``bind`` so it is never briefly wider; then ``chmod`` makes it explicit), so only the
account running the brain can connect. There is no TCP listener.

Protocol: one request per connection, ``{"command": "status"|"pause"|"resume"|"flatten"|
"stop"}\\n``; one answer line ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``.

Requests are accepted on a background thread but executed on the trading loop's thread
(:meth:`ControlServer.serve_pending`, called every step), so the trader is never touched
concurrently.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["COMMANDS", "ControlServer", "execute", "send_command"]

COMMANDS = ("status", "pause", "resume", "flatten", "stop")
_MAX_LINE = 4096


@dataclass
class _Request:
    command: str
    done: threading.Event = field(default_factory=threading.Event)
    answer: dict[str, Any] = field(default_factory=dict)


def execute(trader: Any, command: str) -> dict[str, Any]:
    """Runs one command against a :class:`twinfeed.live.brain.runner.LiveTrader`."""
    if command == "status":
        return {"ok": True, **trader.status()}
    if command == "pause":
        trader.pause()
        return {"ok": True, "paused": True}
    if command == "resume":
        trading = trader.resume()
        return {"ok": True, "paused": False, "trading": trading}
    if command == "flatten":
        try:
            trader.start_flatten()
        except ValueError as error:  # a feed policy that cannot unwind
            return {"ok": False, "error": str(error)}
        trader.pause("flatten requested by the operator")
        return {"ok": True, "unwinding": True, "paused": True}
    if command == "stop":
        trader.journal.control(trader.ctx.now, "stop")
        trader.stopping = True
        return {"ok": True, "stopping": True}
    return {"ok": False, "error": f"unknown command {command!r}; one of {', '.join(COMMANDS)}"}


class ControlServer:
    """The brain's end of the control socket (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        self._requests: queue.Queue[_Request] = queue.Queue()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_socket():
            self.path.unlink()
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        previous = os.umask(0o177)
        try:
            self._socket.bind(str(self.path))
        finally:
            os.umask(previous)
        os.chmod(self.path, 0o600)
        self._socket.listen(8)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="control", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            threading.Thread(
                target=self._handle, args=(connection,), name="control-client", daemon=True
            ).start()

    def _handle(self, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(self.timeout_s)
            try:
                line = connection.makefile("rb").readline(_MAX_LINE)
                command = str(json.loads(line).get("command", ""))
            except (OSError, ValueError, AttributeError) as error:
                self._reply(connection, {"ok": False, "error": f"bad request: {error}"})
                return
            request = _Request(command)
            self._requests.put(request)
            if request.done.wait(self.timeout_s):
                answer = request.answer
            else:
                answer = {"ok": False, "error": "the trading loop did not answer in time"}
            self._reply(connection, answer)

    @staticmethod
    def _reply(connection: socket.socket, answer: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            connection.sendall(json.dumps(answer, default=str).encode() + b"\n")

    def serve_pending(self, trader: Any) -> None:
        """Executes queued requests (call from the trading loop's thread)."""
        while True:
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                return
            try:
                request.answer = execute(trader, request.command)
            except Exception as error:  # an operator error must not kill the loop
                request.answer = {"ok": False, "error": f"{type(error).__name__}: {error}"}
            request.done.set()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        self.path.unlink(missing_ok=True)


def send_command(
    path: str | os.PathLike[str], command: str, timeout_s: float = 10.0
) -> dict[str, Any]:
    """The client side: sends one command, returns the brain's answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout_s)
        client.connect(os.fspath(path))
        client.sendall(json.dumps({"command": command}).encode() + b"\n")
        line = client.makefile("rb").readline()
    if not line:
        raise ConnectionError(f"{path}: the brain closed the connection without answering")
    answer: dict[str, Any] = json.loads(line)
    return answer
