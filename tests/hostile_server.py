"""A hostile Binance lookalike on 127.0.0.1 for the ingest's hostile-input tests.

One TCP port serves both sides, as Binance's loopback stand-ins do: a websocket upgrade on
``/stream`` and REST depth snapshots on ``/fapi/v1/depth``. Both are raw asyncio sockets, not a
websocket library, because the cases misbehave at the byte level (a 2 GiB frame-length header,
a ping flood from a server that never reads, a chunk size of ``fffffffffffffffe``). Each case is
a pair of coroutines: ``ws(connection_number, reader, writer)`` after the opening handshake and
``rest(request_number, path, writer)``; the server runs them on its own thread and event loop.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable
from typing import Any

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

WsHandler = Callable[[int, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
RestHandler = Callable[[int, str, asyncio.StreamWriter], Awaitable[None]]


def frame(payload: bytes | str, opcode: int = 0x1, fin: bool = True) -> bytes:
    """A server frame (unmasked) with ``payload``."""
    data = payload.encode() if isinstance(payload, str) else payload
    head = bytearray([(0x80 if fin else 0) | opcode])
    n = len(data)
    if n < 126:
        head.append(n)
    elif n < 1 << 16:
        head.append(126)
        head += n.to_bytes(2, "big")
    else:
        head.append(127)
        head += n.to_bytes(8, "big")
    return bytes(head) + data


def frame_header(length: int, opcode: int = 0x1) -> bytes:
    """Only the header of a frame announcing ``length`` payload bytes (64-bit length form)."""
    return bytes([0x80 | opcode, 127]) + length.to_bytes(8, "big")


def http_response(body: bytes, status: str = "200 OK", headers: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{headers}Connection: close\r\n\r\n"
    ).encode() + body


# Well-formed market data for BTCUSDT (futures). Depth diffs chain on ``pu`` from the snapshot
# below, so every diff applies and yields a book record.
SNAPSHOT_ID = 1000


def snapshot_body(levels: int = 5) -> bytes:
    bids = [[f"{100 - i}.0", "1.000"] for i in range(levels)]
    asks = [[f"{101 + i}.0", "1.000"] for i in range(levels)]
    return json.dumps(
        {
            "lastUpdateId": SNAPSHOT_ID,
            "E": 1_700_000_000_000,
            "T": 1_700_000_000_000,
            "bids": bids,
            "asks": asks,
        },
        separators=(",", ":"),
    ).encode()


class Market:
    """Numbered well-formed frames: quotes, trades and depth diffs that follow each other."""

    def __init__(self) -> None:
        self.n = 0
        self.last_u = SNAPSHOT_ID - 5
        self.sent: list[str] = []
        #: Exchange time (ms) of the trade :meth:`last` made (None before): every trade yields a
        #: trade record with its time, so its record marks the end of what was sent.
        self.last_ms: int | None = None

    def _envelope(self, stream: str, data: dict[str, Any]) -> str:
        text = json.dumps({"stream": stream, "data": data}, separators=(",", ":"))
        self.sent.append(text)
        return text

    def quote(self) -> str:
        self.n += 1
        ms = 1_700_000_000_000 + self.n
        return self._envelope(
            "btcusdt@bookTicker",
            {
                "e": "bookTicker",
                "u": 10_000 + self.n,
                "s": "BTCUSDT",
                "b": f"{100 + (self.n % 7) / 10:.1f}",
                "B": "1.000",
                "a": f"{101 + (self.n % 7) / 10:.1f}",
                "A": "2.000",
                "T": ms,
                "E": ms,
            },
        )

    def trade(self) -> str:
        self.n += 1
        ms = 1_700_000_000_000 + self.n
        return self._envelope(
            "btcusdt@trade",
            {
                "e": "trade",
                "E": ms,
                "T": ms,
                "s": "BTCUSDT",
                "t": self.n,
                "p": "100.5",
                "q": "0.010",
                "X": "MARKET",
                "m": self.n % 2 == 0,
            },
        )

    def depth(self) -> str:
        self.n += 1
        ms = 1_700_000_000_000 + self.n
        first, last = self.last_u + 1, self.last_u + 10
        data = {
            "e": "depthUpdate",
            "E": ms,
            "T": ms,
            "s": "BTCUSDT",
            "U": first,
            "u": last,
            "pu": self.last_u,
            "b": [["99.5", f"{1 + self.n % 3}.000"]],
            "a": [["101.5", "1.000"]],
        }
        self.last_u = last
        return self._envelope("btcusdt@depth@100ms", data)

    def last(self) -> str:
        """A trade to send after every other frame."""
        text = self.trade()
        self.last_ms = 1_700_000_000_000 + self.n
        return text

    def mixed(self, count: int) -> list[str]:
        makers = [self.quote, self.trade, self.depth]
        return [makers[i % 3]() for i in range(count)]


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


EXCHANGE_INFO = json.dumps(
    {
        "timezone": "UTC",
        "symbols": [
            {
                "symbol": "BTCUSDT",
                "filters": [
                    {"filterType": "PRICE_FILTER", "tickSize": "0.10"},
                    {"filterType": "LOT_SIZE", "stepSize": "0.001"},
                ],
            }
        ],
    }
).encode()


async def good_snapshot(_request: int, _path: str, writer: asyncio.StreamWriter) -> None:
    writer.write(http_response(snapshot_body()))
    await writer.drain()


async def idle(_conn: int, reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
    """Keeps a connection open, reading (and dropping) what the client sends."""
    while await reader.read(1 << 16):
        pass


class HostileServer:
    """Runs ``ws`` and ``rest`` handlers for every connection on a thread of its own."""

    def __init__(
        self,
        ws: WsHandler = idle,
        rest: RestHandler = good_snapshot,
        rcvbuf: int | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``rcvbuf`` sets SO_RCVBUF of the accepted sockets (on the listening socket, so the
        advertised window is small from the start). With ``tls`` (a server context) both sides
        are served over TLS: ``wss://`` and ``https://``."""
        self.rcvbuf = rcvbuf
        self.tls = tls
        self.ws = ws
        self.rest = rest
        self.ws_connections = 0
        self.rest_requests: list[str] = []
        self.exchange_info_requests: list[str] = []
        self.errors: list[str] = []
        self.loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._server: asyncio.base_events.Server | None = None
        self.port = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self._started.wait(10)

    @property
    def url(self) -> str:
        if self.tls is not None:
            # The name the test certificate is issued for (it resolves to 127.0.0.1).
            return f"wss://localhost:{self.port}"
        return f"ws://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.rcvbuf is not None:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            listener.bind(("127.0.0.1", 0))
            self._server = await asyncio.start_server(self._handle, sock=listener, ssl=self.tls)
            self.port = self._server.sockets[0].getsockname()[1]
            self._started.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await _read_head(reader)
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            path = request_line.split(" ")[1]
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in header_lines if line)
            }
            if headers.get("upgrade", "").lower() == "websocket":
                key = headers["sec-websocket-key"].encode()
                accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
                writer.write(
                    (
                        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                    ).encode()
                )
                await writer.drain()
                self.ws_connections += 1
                await self.ws(self.ws_connections, reader, writer)
            elif "/exchangeInfo" in path:
                # The ingest's rules fetch (at start and on reconnect): answered here, so the
                # cases' REST handlers see only depth requests and number them as before.
                self.exchange_info_requests.append(path)
                writer.write(http_response(EXCHANGE_INFO))
                await writer.drain()
            else:
                self.rest_requests.append(path)
                await self.rest(len(self.rest_requests), path, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went away, or the server is closing
        except Exception as error:  # noqa: BLE001 - kept for the test's assertion message
            self.errors.append(repr(error))
        finally:
            writer.transport.abort()

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
