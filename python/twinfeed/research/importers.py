"""Normalising third-party raw captures into the twinfeed capture format.

A twinfeed capture is one line per websocket frame, ``<local_receive_ns> <raw frame>\\n``
(README.md, contract 1). The importers here rewrite other collectors' raw files into it, keeping
every venue frame byte for byte and converting times exactly (decimal strings, no floats):

``hftbacktest``
    Already the twinfeed format (gzip or plain): lines are checked and copied unchanged.
``cryptofeed``
    ``<local_epoch_seconds>: <raw json>`` per received frame. ``<url> <-> <ts>`` (connection
    opened) becomes ``{"twinfeed":"connected","url":...}``; ``<url> <- <ts>: {...}``
    (subscribe requests sent, e.g. OKX's ``{"op":"subscribe","args":[...]}``) become
    ``{"twinfeed":"subscribed","url":...,"request":{...}}`` with the request verbatim (a status
    record, as the ingest's own subscribe lines are); a request that is not a JSON object is
    skipped and counted. REST responses
    ``<url> -> <ts>: {...}`` from the sibling ``.http`` file (``NAME.ws.N.M`` pairs with
    ``NAME.http.*``) become ``{"twinfeed":"snapshot","symbol":S,"data":{...}}`` lines, merged
    in time order; the symbol comes from the URL's ``symbol=`` query parameter.
``tardis``
    tardis-machine ``/replay`` (and tardis-client cache) exchange-native NDJSON, optionally gzip:
    ``{"localTimestamp":"2024-08-08T00:00:00.1234567Z","message":{...}}``. The raw text of
    ``message`` is kept as is. Binance depth snapshots that tardis injects as
    ``{"stream":"<sym>@depthSnapshot","generated":true,"data":{...}}`` become twinfeed
    snapshot lines. The tardis.dev data-feeds layout, ``<ISO timestamp> <raw json>`` per line,
    is accepted too.

Lines that fit none of these are counted and reported with their line numbers, never guessed at.
"""

from __future__ import annotations

import gzip
import heapq
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal
from urllib.parse import parse_qs, urlsplit

from twinfeed import TwinfeedError
from twinfeed._atomic import atomic_path

Format = Literal["hftbacktest", "cryptofeed", "tardis"]
FORMATS: tuple[Format, ...] = ("hftbacktest", "cryptofeed", "tardis")

# Only this many unknown lines keep their text in a report; all are counted.
MAX_REPORTED = 50


class CaptureImportError(TwinfeedError):
    """A file cannot be imported at all (per-line problems are counted in the report instead)."""


@dataclass
class ImportReport:
    """What an import read, wrote and skipped."""

    source: Path
    out: Path
    format: str
    lines_read: int = 0
    lines_written: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    unknown: list[tuple[str, int, str]] = field(default_factory=list)
    unknown_total: int = 0
    out_of_order: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    inputs: list[Path] = field(default_factory=list)

    def note_unknown(self, path: Path, line_number: int, reason: str) -> None:
        self.unknown_total += 1
        if len(self.unknown) < MAX_REPORTED:
            self.unknown.append((path.name, line_number, reason))


@dataclass(order=True)
class _Line:
    local_ns: int
    order: int
    frame: str = field(compare=False)
    kind: str = field(compare=False)


_SECONDS = re.compile(r"^(\d+)(?:\.(\d*))?$")
_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?Z$")


def seconds_to_ns(text: str) -> int:
    """Decimal epoch seconds (``"1626992741.06217"``) to integer ns, exactly.

    Digits beyond the ninth decimal are truncated (sub-nanosecond; no collector records them).
    """
    match = _SECONDS.match(text.strip())
    if match is None:
        raise ValueError(f"expected decimal epoch seconds, got {text!r}")
    whole, fraction = match.group(1), (match.group(2) or "")
    return int(whole) * 1_000_000_000 + int((fraction + "000000000")[:9])


def iso_to_ns(text: str) -> int:
    """``2024-08-08T00:00:00.1234567Z`` (UTC) to integer ns since the epoch, exactly."""
    match = _ISO.match(text.strip())
    if match is None:
        raise ValueError(f"expected an ISO-8601 UTC timestamp ending in Z, got {text!r}")
    base = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    seconds = (base - datetime(1970, 1, 1, tzinfo=UTC)) // _ONE_SECOND
    fraction = match.group(2) or ""
    return seconds * 1_000_000_000 + int((fraction + "000000000")[:9])


_ONE_SECOND = datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)


def _open_text(path: Path) -> IO[str]:
    with path.open("rb") as probe:
        magic = probe.read(4)
    if magic[:2] == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", newline="\n")
    if magic == b"\x28\xb5\x2f\xfd":
        raise CaptureImportError(
            f"{path}: zstd input is not supported by the importer; decompress it"
        )
    return path.open("r", encoding="utf-8", newline="\n")


def _numbered(path: Path) -> Iterator[tuple[int, str]]:
    with _open_text(path) as handle:
        for number, raw in enumerate(handle, start=1):
            yield number, raw.rstrip("\r\n")


def snapshot_line(symbol: str, body: str) -> str:
    """A twinfeed control line carrying a REST depth snapshot; ``body`` is kept verbatim."""
    return '{"twinfeed":"snapshot","symbol":' + json.dumps(symbol) + ',"data":' + body + "}"


# --- cryptofeed -------------------------------------------------------------------------------


def cryptofeed_sibling_http(path: Path) -> Path | None:
    """``NAME.http.*`` beside ``NAME.ws.N.M``, if there is exactly one."""
    name = path.name
    if ".ws." not in name:
        return None
    prefix = name.split(".ws.", 1)[0]
    candidates = sorted(path.parent.glob(f"{prefix}.http.*"))
    return candidates[0] if len(candidates) == 1 else None


def _cryptofeed_lines(path: Path, source: int, report: ImportReport) -> Iterator[_Line]:
    order = 0
    for number, text in _numbered(path):
        report.lines_read += 1
        if not text.strip():
            report.skipped["blank"] += 1
            continue
        head, sep, body = text.partition(": ")
        if sep and _SECONDS.match(head):
            order += 1
            yield _Line(seconds_to_ns(head), source << 40 | order, body, "frame")
            continue
        if " -> " in head:
            url, _, stamp = head.partition(" -> ")
            symbol = parse_qs(urlsplit(url).query).get("symbol", [""])[0]
            if not symbol or not _SECONDS.match(stamp) or not body.startswith("{"):
                report.note_unknown(path, number, "REST response without symbol= or JSON body")
                continue
            order += 1
            frame = snapshot_line(symbol.upper(), body)
            yield _Line(seconds_to_ns(stamp), source << 40 | order, frame, "snapshot")
            continue
        if " <- " in head:
            url, _, stamp = head.partition(" <- ")
            if not sep or not _SECONDS.match(stamp) or not body.startswith("{"):
                report.skipped["subscribe_request"] += 1
                continue
            order += 1
            frame = '{"twinfeed":"subscribed","url":' + json.dumps(url) + ',"request":' + body + "}"
            yield _Line(seconds_to_ns(stamp), source << 40 | order, frame, "subscribed")
            continue
        url, arrow, stamp = text.partition(" <-> ")
        if arrow and _SECONDS.match(stamp.strip()):
            order += 1
            frame = '{"twinfeed":"connected","url":' + json.dumps(url) + "}"
            yield _Line(seconds_to_ns(stamp), source << 40 | order, frame, "connected")
            continue
        report.note_unknown(path, number, f"not a cryptofeed line: {text[:60]!r}")


def _import_cryptofeed(path: Path, http: Path | None, report: ImportReport) -> Iterator[_Line]:
    streams: list[Iterable[_Line]] = [_cryptofeed_lines(path, 0, report)]
    report.inputs.append(path)
    if http is not None:
        streams.append(_cryptofeed_lines(http, 1, report))
        report.inputs.append(http)
    # Both files are in receive order; a stable merge keeps each file's order on ties.
    return heapq.merge(*streams, key=lambda line: (line.local_ns, line.order))


# --- tardis -----------------------------------------------------------------------------------


def _raw_message(text: str, parsed: dict[str, Any]) -> str:
    """The verbatim text of the top-level ``message`` value (re-encoded only as a fallback)."""
    key = text.find('"message":')
    if key >= 0:
        start = key + len('"message":')
        while start < len(text) and text[start] == " ":
            start += 1
        try:
            value, end = json.JSONDecoder().raw_decode(text, start)
        except json.JSONDecodeError:
            value = None
        if value == parsed["message"]:
            return text[start:end]
    return json.dumps(parsed["message"], separators=(",", ":"), ensure_ascii=False)


def _tardis_frame(message_text: str, message: Any) -> tuple[str, str]:
    if isinstance(message, dict):
        stream = message.get("stream")
        if isinstance(stream, str) and stream.endswith("@depthSnapshot"):
            data = message.get("data")
            symbol = stream.split("@", 1)[0].upper()
            body = json.dumps(data, separators=(",", ":"))
            # Keep the REST body's own text where it can be cut out exactly.
            raw_key = message_text.find('"data":')
            if raw_key >= 0:
                try:
                    value, end = json.JSONDecoder().raw_decode(message_text, raw_key + 7)
                    if value == data:
                        body = message_text[raw_key + 7 : end]
                except json.JSONDecodeError:
                    pass
            return snapshot_line(symbol, body), "snapshot"
    return message_text, "frame"


def _import_tardis(path: Path, report: ImportReport) -> Iterator[_Line]:
    report.inputs.append(path)
    order = 0
    for number, text in _numbered(path):
        report.lines_read += 1
        if not text.strip():
            report.skipped["blank"] += 1
            continue
        order += 1
        if text.startswith("{"):
            try:
                parsed = json.loads(text)
                local_ns = iso_to_ns(parsed["localTimestamp"])
                message = parsed["message"]
            except (ValueError, KeyError, TypeError) as error:
                report.note_unknown(path, number, f"tardis NDJSON line: {error}")
                continue
            message_text = _raw_message(text, parsed)
        else:
            stamp, _, message_text = text.partition(" ")
            try:
                local_ns = iso_to_ns(stamp)
                message = json.loads(message_text)
            except ValueError as error:
                report.note_unknown(path, number, f"tardis data-feed line: {error}")
                continue
        frame, kind = _tardis_frame(message_text, message)
        yield _Line(local_ns, order, frame, kind)


# --- hftbacktest ------------------------------------------------------------------------------

_HFT_LINE = re.compile(r"^(\d+) ")


def _import_hftbacktest(path: Path, report: ImportReport) -> Iterator[_Line]:
    report.inputs.append(path)
    for number, text in _numbered(path):
        report.lines_read += 1
        match = _HFT_LINE.match(text)
        if match is None:
            if text.strip():
                report.note_unknown(path, number, "expected `<local_receive_ns> <frame>`")
            else:
                report.skipped["blank"] += 1
            continue
        yield _Line(int(match.group(1)), number, text[match.end() :], "frame")


# --- entry point ------------------------------------------------------------------------------


def import_capture(
    source: str | Path,
    format: Format,
    out: str | Path,
    http: str | Path | None = None,
) -> ImportReport:
    """Converts ``source`` (a ``format`` raw file) into a twinfeed capture at ``out``.

    ``out`` is written plain, or gzip-compressed when it ends in ``.gz``. For cryptofeed,
    ``http`` names the REST responses file; by default the sibling ``NAME.http.*`` is used.
    """
    source, out = Path(source), Path(out)
    if format not in FORMATS:
        raise CaptureImportError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    if not source.is_file():
        raise CaptureImportError(f"{source}: no such file")
    report = ImportReport(source=source, out=out, format=format)
    if format == "cryptofeed":
        http_path = Path(http) if http is not None else cryptofeed_sibling_http(source)
        lines = _import_cryptofeed(source, http_path, report)
    elif format == "tardis":
        lines = _import_tardis(source, report)
    else:
        lines = _import_hftbacktest(source, report)
    opener = gzip.open if out.name.endswith(".gz") else open
    # Complete or absent: the temporary is removed on any failure (see twinfeed._atomic).
    with atomic_path(out) as partial, opener(partial, "wt", encoding="utf-8", newline="\n") as sink:
        _write(lines, sink, report)
    return report


def _write(lines: Iterable[_Line], sink: IO[str], report: ImportReport) -> None:
    for line in lines:
        if "\n" in line.frame:
            raise CaptureImportError(f"{report.source}: a frame contains a newline")
        if report.last_ns is not None and line.local_ns < report.last_ns:
            report.out_of_order += 1
        if report.first_ns is None:
            report.first_ns = line.local_ns
        report.last_ns = line.local_ns
        sink.write(f"{line.local_ns} {line.frame}\n")
        report.lines_written += 1
        report.kinds[line.kind] += 1
