#!/usr/bin/env python3
"""Seeds the fuzz corpora (fuzz/corpus/<target>/) from the real captures and a few hand-made
inputs.

The real captures (``../shared/data/real`` by default, or ``--real DIR``) are read at run time
and never copied into the repository: a few hundred representative lines of each kind
(bookTicker, trade, aggTrade, depth diffs, REST snapshots; USD-M and spot; hftbacktest and
cryptofeed files) become single-line and short multi-line inputs, wrapped in the framing each
target expects (websocket frames, HTTP responses, HTTP requests, compressed files). Without the
real data only the hand-made seeds are written, with a warning.

Seeds are content-addressed (the file name is the sha1 of the bytes, as libFuzzer names its
own), so running this again adds nothing twice. Standard library only.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import re
import struct
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
DEFAULT_REAL = FUZZ.parent.parent / "shared" / "data" / "real"

TARGETS = (
    "push_line",
    "structured_frames",
    "capture_reader",
    "ws_frame_reader",
    "rest_response_reader",
    "venue_request",
    "venue_capture",
    "venue_book",
    "config_toml",
    "okx_frames",
    "hyperliquid_frames",
)

# What the OKX and Hyperliquid targets put before each line of their input.
VENUE_PREFIXES = {
    "okx_frames": '{"arg":{"channel":"',
    "hyperliquid_frames": '{"channel":"',
}
VENUE_FILES = {
    "okx_frames": ("cryptofeed", "OKX.ws.1.0"),
    "hyperliquid_frames": ("hyperliquid", "btcusd_20250126.gz"),
}
VENUE_SEEDS = {
    "okx_frames": [
        'books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":[["8476.98","415","0",'
        '"13"]],"bids":[["8476.97","256","0","12"]],"ts":"1597026383085","checksum":-1,'
        '"seqId":10,"prevSeqId":-1}]}',
        'books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[],"bids":[["8476.97",'
        '"0","0","0"]],"ts":"1597026383086","checksum":0,"seqId":12,"prevSeqId":10}]}',
        'bbo-tbt","instId":"BTC-USDT"},"data":[{"asks":[["8476.98","415","0","13"]],"bids":'
        '[["8476.97","256","0","12"]],"ts":"1597026383085","seqId":3}]}',
        'books5","instId":"BTC-USDT"},"data":[{"asks":[["8476.98","415","0","13"]],"bids":'
        '[["8476.97","256","0","12"]],"ts":"1597026383085"}]}',
    ],
    "hyperliquid_frames": [
        'bbo","data":{"coin":"ETH","time":1737918843542,"bbo":[{"px":"3300.1","sz":"2","n":1},'
        '{"px":"3300.2","sz":"1.5","n":2}]}}',
        'error","data":"Invalid subscription"}',
    ],
}


def venue_seeds(real: Path | None) -> dict[str, list[bytes]]:
    """Lines of the real OKX and Hyperliquid captures (and hand-made ones) without the prefix
    their target adds: single frames and one run of the first 40."""
    out: dict[str, list[bytes]] = {}
    for target, prefix in VENUE_PREFIXES.items():
        frames = list(VENUE_SEEDS[target])
        if real is not None and (real / VENUE_FILES[target][0] / VENUE_FILES[target][1]).is_file():
            for raw in read_lines(real / VENUE_FILES[target][0] / VENUE_FILES[target][1]):
                parsed = stamp_and_frame(raw)
                if parsed is not None and parsed[1].startswith(prefix):
                    frames.append(parsed[1][len(prefix) :])
        singles = frames[: len(VENUE_SEEDS[target])] + frames[len(VENUE_SEEDS[target]) :: 8]
        out[target] = [f.encode() for f in singles] + ["\n".join(frames[:40]).encode()]
    return out

# Lines of each kind kept per capture file (a few hundred in all).
PER_KIND = 24
# Levels kept of a REST snapshot in single-line seeds (whole snapshots are ~60 KB; a handful
# are kept whole).
SNAPSHOT_LEVELS = 20

CONTROL_LINES = [
    '{"twinfeed":"heartbeat"}',
    '{"twinfeed":"connected","url":"ws://127.0.0.1:9443/stream"}',
    '{"twinfeed":"subscribed","streams":["btcusdt@bookTicker","btcusdt@depth@0ms"]}',
    '{"twinfeed":"disconnected","reason":"closed by the venue"}',
    '{"twinfeed":"snapshot","symbol":"BTCUSDT","data":{"lastUpdateId":5123107852948,'
    '"E":1723161256501,"T":1723161256493,"bids":[["61800.20","2.909"]],'
    '"asks":[["61800.30","1.000"]]}}',
]

CONFIG_TOML = """\
[filter]
symbols = ["BTCUSDT"]
streams = ["bookTicker", "trade", "aggTrade", "depth"]
drop_unchanged_quotes = true

[downsample]
bar_ms = 1000
quote_every_n = 1
book_every_n = 1

[features]
book_levels = 5
flow_window_ms = 1000
ewma_alpha = 0.1

[ingest]
url = "ws://127.0.0.1:9443"
rest_url = ""
market = "futures"
heartbeat_ms = 100
ring_slots = 65536
rotate_bytes = 268435456
backoff_initial_ms = 100
backoff_max_ms = 5000
snapshot_limit = 1000
capture_compression = "zstd"
capture_zstd_level = 1
"""

CONFIG_EXTRA = [
    "",
    "[filter]\nsymbols = []\n",
    '[downsample]\nbar_ms = 0\n[ingest]\ncapture_compression = "none"\n',
    "[features]\newma_alpha = 1.0\nbook_levels = 1\n",
    '[ingest]\nmarket = "spot"\nring_slots = 1024\n',
]


def stamp_and_frame(raw: str) -> tuple[int, str] | None:
    """(local_ns, frame) of a capture line of either collector's format."""
    raw = raw.rstrip("\n")
    if not raw.strip():
        return None
    head, sep, frame = raw.partition(" ")
    if sep and head.isdigit():
        return int(head), frame
    match = re.match(r"^(\d+\.\d+): (\{.*)$", raw)  # cryptofeed ws: "<epoch s>: <json>"
    if match:
        return int(float(match.group(1)) * 1e9), match.group(2)
    match = re.match(r"^\S+ -> (\d+\.\d+): (\{.*)$", raw)  # cryptofeed http: REST answer
    if match:
        return int(float(match.group(1)) * 1e9), match.group(2)
    return None


def kind_of(frame: str) -> str:
    if frame.startswith('{"lastUpdateId"'):
        return "snapshot"
    match = re.search(r'"stream":"[^"@]*@([A-Za-z]+)', frame)
    if match:
        return match.group(1)
    match = re.search(r'"e":"([A-Za-z]+)"', frame)
    return match.group(1) if match else "other"


def shorten_snapshot(frame: str) -> str:
    """A REST body with each side cut to SNAPSHOT_LEVELS levels."""
    try:
        body = json.loads(frame)
    except ValueError:
        return frame
    for side in ("bids", "asks"):
        if isinstance(body.get(side), list):
            body[side] = body[side][:SNAPSHOT_LEVELS]
    return json.dumps(body, separators=(",", ":"))


def read_lines(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:  # type: ignore[operator]
        yield from handle


def real_lines(real: Path) -> tuple[list[str], list[list[str]], list[str]]:
    """Representative single lines, runs of consecutive lines, and whole REST bodies."""
    singles: list[str] = []
    runs: list[list[str]] = []
    bodies: list[str] = []
    files = sorted(
        p
        for p in real.rglob("*")
        if p.is_file() and ("binance" in str(p).lower() or "BINANCE" in p.name)
    )
    for path in files:
        per_kind: dict[str, int] = {}
        run: list[str] = []
        for number, raw in enumerate(read_lines(path)):
            parsed = stamp_and_frame(raw)
            if parsed is None:
                continue
            local_ns, frame = parsed
            kind = kind_of(frame)
            if kind == "snapshot":
                if len(bodies) < 6:
                    bodies.append(frame)
                frame = shorten_snapshot(frame)
            line = f"{local_ns} {frame}"
            if per_kind.get(kind, 0) < PER_KIND:
                per_kind[kind] = per_kind.get(kind, 0) + 1
                singles.append(line)
            # Runs of 40 consecutive lines from a few places in each file.
            if number % 5000 < 40:
                run.append(line)
                if len(run) == 40:
                    runs.append(run)
                    run = []
            if number > 60_000 and all(v >= PER_KIND for v in per_kind.values()):
                break
    return singles, runs, bodies


# ---- framings -----------------------------------------------------------------------------


def ws_frame(payload: bytes, opcode: int = 0x1, fin: bool = True, mask: bytes | None = None) -> bytes:
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    mask_bit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", first, mask_bit | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, mask_bit | 126, n)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return head + mask + payload
    return head + payload


def http_response(body: bytes, chunked: bool = False) -> bytes:
    if chunked:
        out = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        for start in range(0, len(body), 4096):
            chunk = body[start : start + 4096]
            out += f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        return out + b"0\r\n\r\n"
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def zstd_compress(data: bytes) -> bytes | None:
    try:
        import zstandard  # type: ignore[import-not-found]
    except ImportError:
        return None
    return zstandard.ZstdCompressor(level=1).compress(data)  # type: ignore[no-any-return]


def seeds(real: Path | None) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {t: [] for t in TARGETS}
    singles: list[str] = []
    runs: list[list[str]] = []
    bodies: list[str] = []
    if real is not None:
        singles, runs, bodies = real_lines(real)
    controls = [f"1723161255088169167 {c}" for c in CONTROL_LINES]
    singles = singles + controls
    runs = runs + [controls]
    rng = random.Random(13)
    out.update(venue_seeds(real))

    for line in singles:
        out["push_line"].append(line.encode())
    for run in runs:
        out["push_line"].append("\n".join(run).encode() + b"\n")
        out["venue_capture"].append("\n".join(run).encode() + b"\n")

    for i, run in enumerate(runs):
        text = ("\n".join(run) + "\n").encode()
        out["capture_reader"].append(bytes([i % 8]) + text)
        out["capture_reader"].append(bytes([0xFF]) + gzip.compress(text, 1))
        compressed = zstd_compress(text)
        if compressed is not None:
            out["capture_reader"].append(bytes([0xFE]) + compressed)

    frames = [line.partition(" ")[2].encode() for line in singles]
    for i in range(0, len(frames), 8):
        group = frames[i : i + 8]
        wire = b"".join(ws_frame(f) for f in group)
        out["ws_frame_reader"].append(b"\x00" + wire)
    if frames:
        first = frames[0]
        out["ws_frame_reader"].append(
            b"\x00"
            + ws_frame(first[:10], fin=False)
            + ws_frame(b"ping", opcode=0x9)
            + ws_frame(first[10:], opcode=0x0)
            + ws_frame(b"", opcode=0xA)
            + ws_frame(struct.pack("!H", 1000) + b"bye", opcode=0x8)
        )
    out["ws_frame_reader"] += [
        b"\xffHTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        b"\xffHTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
        b"\x00" + ws_frame(b"x" * 70000) + ws_frame(b"\xff\xfe", opcode=0x1),
    ]

    small_body = b'{"lastUpdateId":5123107852948,"E":1723161256501,"T":1723161256493,"bids":[["61800.20","2.909"]],"asks":[["61800.30","1.000"]]}'
    for body in [b.encode() for b in bodies] + [small_body]:
        out["rest_response_reader"] += [
            b"\x00" + http_response(body),
            b"\x00" + http_response(body, chunked=True),
            b"\x01" + body,
            b"\x02" + body,
        ]
    out["rest_response_reader"] += [
        b"\x00HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffe\r\n{}\r\n0\r\n\r\n",
        b'\x00HTTP/1.1 429 Too Many Requests\r\nContent-Length: 2\r\n\r\n{}',
        b"\x03" + small_body,
    ]

    requests = [
        b"GET /fapi/v1/depth?symbol=BTCUSDT&limit=1000 HTTP/1.1\r\nHost: 127.0.0.1:9443\r\n\r\n",
        b"GET /api/v3/depth?symbol=btcusdt&limit=5 HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"GET /stream?streams=btcusdt@bookTicker/btcusdt@depth@100ms HTTP/1.1\r\nHost: x\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n",
        b"POST /_venue/fault?drop_after=5 HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 21\r\n\r\nsymbol=BTC%55SDT&x=+1",
        b"GET /ws/btcusdt@trade/ethusdt@aggTrade HTTP/1.1\r\n\r\nGET /_venue/status HTTP/1.1\r\n\r\n",
    ]
    for request in requests:
        out["venue_request"].append(b"\x00" + request)
        out["venue_request"].append(bytes([2 * rng.randrange(1, 40)]) + request)
    subscribe = json.dumps(
        {"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker", "btcusdt@depth@0ms"], "id": 1}
    ).encode()
    mask = b"\x01\x02\x03\x04"
    out["venue_request"] += [
        b"\x01" + ws_frame(subscribe, mask=mask),
        b"\x01"
        + ws_frame(subscribe[:7], fin=False, mask=mask)
        + ws_frame(b"hi", opcode=0x9, mask=mask)
        + ws_frame(subscribe[7:], opcode=0x0, mask=mask)
        + ws_frame(b'{"method":"LIST_SUBSCRIPTIONS","id":2}', mask=mask)
        + ws_frame(struct.pack("!H", 1000), opcode=0x8, mask=mask),
    ]

    for body in bodies[:2]:
        out["venue_capture"].append(
            ("1723161255319702566 " + body + "\n" + "\n".join(runs[0] if runs else [])).encode()
        )

    # Deep nesting (about 37,500 levels overflowed the decoders' stacks) at the places the
    # crash report named: an extra payload key, the envelope, the value of `b`, a snapshot.
    deep = "[" * 37_500 + "]" * 37_500
    open_only = '{"a":' * 20_000
    nested_lines = [
        f'1723161255088169167 {{"stream":"btcusdt@bookTicker","data":{{"e":"bookTicker","u":1,"s":"BTCUSDT","b":"61800.20","B":"1","a":"61800.30","A":"1","x":{deep}}}}}',
        f'1723161255088169167 {{"z":{deep},"stream":"btcusdt@trade","data":{{"e":"trade"}}}}',
        f'1723161255088169167 {{"stream":"btcusdt@depth@0ms","data":{{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"pu":0,"b":{deep},"a":[]}}}}',
        f'1723161255088169167 {{"lastUpdateId":1,"bids":[],"asks":[],"x":{open_only}',
    ]
    out["push_line"] += [line.encode() for line in nested_lines]
    out["ws_frame_reader"] += [
        b"\x00" + ws_frame(line.partition(" ")[2].encode()) for line in nested_lines
    ]
    out["rest_response_reader"].append(
        b"\x01" + f'{{"lastUpdateId":1,"bids":{deep},"asks":[]}}'.encode()
    )

    out["config_toml"] += [CONFIG_TOML.encode()] + [c.encode() for c in CONFIG_EXTRA]
    # structured_frames: libFuzzer's own bytes are as good a start as any (arbitrary decodes
    # every byte string); a few fixed ones make the first minutes reproducible.
    out["structured_frames"] += [bytes(rng.randrange(256) for _ in range(n)) for n in (64, 256, 1024)]
    # The replayed book and depth merging read the same capture lines as the loader.
    out["venue_book"] = list(out["venue_capture"])
    return out


def write(corpus: Path, target: str, inputs: Iterable[bytes]) -> int:
    directory = corpus / target
    directory.mkdir(parents=True, exist_ok=True)
    written = 0
    for data in inputs:
        name = directory / hashlib.sha1(data).hexdigest()
        if not name.exists():
            name.write_bytes(data)
            written += 1
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL, help="real captures folder")
    parser.add_argument("--corpus", type=Path, default=FUZZ / "corpus", help="corpus root")
    args = parser.parse_args(argv)
    real: Path | None = args.real
    if real is None or not real.is_dir():
        print(f"seed_corpus: {real} not found; hand-made seeds only", file=sys.stderr)
        real = None
    total = 0
    for target, inputs in seeds(real).items():
        n = write(args.corpus, target, inputs)
        total += n
        print(f"seed_corpus: {target}: {len(inputs)} seeds ({n} new)")
    print(f"seed_corpus: {total} new files under {args.corpus}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
