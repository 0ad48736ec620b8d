"""Starting the ``twinfeed-ingest`` binary as a subprocess.

The binary is found, in order, in ``$TWINFEED_BIN_DIR``, in ``target/release`` of the repository
this package lives in (a ``maturin develop`` checkout), and on ``PATH``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from twinfeed import _features
from twinfeed._features import RingError, RingReader
from twinfeed.live import binaries
from twinfeed.live.children import die_with_parent

BINARY = "twinfeed-ingest"


def find_binary(name: str = BINARY) -> Path:
    """The path of a twinfeed binary (see :func:`twinfeed.live.binaries.find_binary`)."""
    return binaries.find_binary(name)


def ring_file(ring: str) -> Path:
    """The file behind ring name ``ring``: ``/dev/shm/twinfeed-<ring>``, or ``ring`` itself when
    it is an absolute path (as the ingest and ``Feed.open`` resolve it)."""
    return Path(ring) if os.path.isabs(ring) else Path("/dev/shm") / f"twinfeed-{ring}"


@dataclass
class IngestProcess:
    """A running ``twinfeed-ingest``. Use as a context manager to stop it on exit."""

    process: subprocess.Popen[bytes]
    args: list[str]
    capture_dir: Path
    ring: str | None = None
    stats_file: Path | None = None
    _temporary: list[Path] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def running(self) -> bool:
        return self.process.poll() is None

    def stats(self) -> dict[str, Any] | None:
        """The latest stats file the ingest wrote (None without --stats-file or before the
        first write)."""
        if self.stats_file is None:
            return None
        try:
            return dict(json.loads(self.stats_file.read_text()))
        except FileNotFoundError:
            return None

    def wait_for_ring(self, timeout: float = 10.0) -> None:
        """Blocks until this process has created its ring (RingError if it exited first or
        ``timeout`` passed)."""
        if self.ring is None:
            raise RingError("this ingest writes no ring (started without ring=...)")
        deadline = time.monotonic() + timeout
        while True:
            try:
                if RingReader.open(self.ring).writer_pid == self.pid:
                    return
            except RingError:
                pass
            code = self.process.poll()
            if code is not None:
                raise RingError(
                    f"{BINARY} exited with code {code} before creating ring {self.ring}"
                )
            if time.monotonic() >= deadline:
                raise RingError(f"{BINARY} did not create ring {self.ring} within {timeout} s")
            time.sleep(0.01)

    def wait(self, timeout: float | None = None) -> int:
        code = self.process.wait(timeout)
        self._cleanup()
        return code

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM (the ingest writes a ``disconnected`` line, flushes, exits 0), then SIGKILL
        if it has not exited after ``timeout`` s. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.wait()

    def kill(self) -> int:
        """SIGKILL, as a crash would (the capture keeps at most one torn last line)."""
        if self.process.poll() is None:
            self.process.kill()
        return self.wait()

    def remove_ring(self) -> None:
        """Deletes the ring file once the process has exited and nobody will open the ring
        again (a reader that has it open keeps reading what is there). The ingest leaves it
        behind on purpose, so readers can drain after it stops; whoever started it removes it,
        or each run would leave its ring's memory in /dev/shm."""
        if self.ring is None:
            return
        if self.running():
            raise RingError(
                f"{BINARY} (pid {self.pid}) still writes ring {self.ring}: stop it first"
            )
        ring_file(self.ring).unlink(missing_ok=True)

    def _cleanup(self) -> None:
        for path in self._temporary:
            path.unlink(missing_ok=True)
        self._temporary.clear()

    def __enter__(self) -> IngestProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# The ingest's per-stage timestamps (twinfeed_ingest::sink::StageLog): one row per line that
# published records, seven little-endian int64 each.
STAGE_LOG_ENV = "TWINFEED_STAGE_LOG"
STAGE_COLUMNS = ("seq", "received", "started", "captured", "decoded", "booked", "published")


def read_stage_log(path: str | os.PathLike[str]) -> dict[str, np.ndarray[Any, Any]]:
    """The stage log the ingest wrote (``start_ingest(stage_log=...)``), by column:

    - ``seq``: the ring's write sequence after the line's records were published (a record at
      ring sequence ``s`` came from the first row whose ``seq`` is greater than ``s``);
    - CLOCK_REALTIME stamps in ns: ``received`` (the socket read that completed the frame
      returned: the records' ``local_ns``), ``started`` (the frames before it in that read are
      done), ``captured`` (handed to the capture thread), ``decoded`` (frame parsed),
      ``booked`` (book and features updated), ``published`` (records in the ring, readers
      woken).
    """
    raw = Path(path).read_bytes()
    width = 8 * len(STAGE_COLUMNS)
    if len(raw) % width:
        raise ValueError(f"{path}: {len(raw)} bytes is not a whole number of {width}-byte rows")
    rows = np.frombuffer(raw, dtype="<i8").reshape(-1, len(STAGE_COLUMNS))
    return {name: rows[:, i] for i, name in enumerate(STAGE_COLUMNS)}


def start_ingest(
    *,
    capture_dir: str | os.PathLike[str],
    ring: str | None = None,
    config: str | os.PathLike[str] | _features.FeatureConfig | None = None,
    url: str | None = None,
    rest_url: str | None = None,
    symbols: Sequence[str] = (),
    replay: str | os.PathLike[str] | None = None,
    stats_file: str | os.PathLike[str] | None = None,
    binary: str | os.PathLike[str] | None = None,
    stdout: IO[Any] | int | None = None,
    stderr: IO[Any] | int | None = None,
    extra_args: Sequence[str] = (),
    stage_log: str | os.PathLike[str] | None = None,
) -> IngestProcess:
    """Starts ``twinfeed-ingest`` and returns its handle (without waiting for the ring: see
    :meth:`IngestProcess.wait_for_ring`).

    ``config`` is a TOML path or a :class:`twinfeed.FeatureConfig` (written to a temporary file
    removed when the process is waited for). Without ``ring`` only the capture is written
    (``twinfeed record``). With ``replay``, the ingest runs over that capture and exits.
    ``stage_log`` makes the ingest write its per-line stage timestamps there when it finishes
    (see :func:`read_stage_log`).
    """
    temporary: list[Path] = []
    args = [str(binary) if binary is not None else str(find_binary())]
    if isinstance(config, _features.FeatureConfig):
        fd, name = tempfile.mkstemp(prefix=f"twinfeed-ingest-{os.getpid()}-", suffix=".toml")
        with os.fdopen(fd, "w") as out:
            out.write(config.to_toml())
        temporary.append(Path(name))
        args += ["--config", name]
    elif config is not None:
        args += ["--config", os.fspath(config)]
    capture = Path(capture_dir)
    args += ["--capture-dir", str(capture)]
    if ring is not None:
        args += ["--ring", ring]
    if url is not None:
        args += ["--url", url]
    if rest_url is not None:
        args += ["--rest-url", rest_url]
    if symbols:
        args += ["--symbols", ",".join(symbols)]
    if replay is not None:
        args += ["--replay", os.fspath(replay)]
    stats = Path(stats_file) if stats_file is not None else None
    if stats is not None:
        args += ["--stats-file", str(stats)]
    args += list(extra_args)
    env = None
    if stage_log is not None:
        env = os.environ | {STAGE_LOG_ENV: os.fspath(stage_log)}
    process = subprocess.Popen(
        args,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        preexec_fn=die_with_parent(),  # no orphan ingest when this process is killed
    )
    return IngestProcess(process, args, capture, ring, stats, temporary)
