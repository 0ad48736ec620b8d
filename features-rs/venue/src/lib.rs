//! # twinfeed-venue: a Binance-compatible market-data venue on loopback
//!
//! Replays a capture (README.md, contract 1) over Binance's own wire format so that the live
//! path (ingest, brain) can run on this machine against recorded data.
//!
//! - [`capture`]: load and classify the capture (stream frames, REST snapshots, control lines).
//! - [`frames`]: every subscription set is framed once into one buffer of unmasked websocket
//!   frames; clients get slices of it with large writes, never a per-message sink.
//! - [`replay`]: one replay position shared by all clients; timed speeds follow the captured
//!   `local_receive_ns` from the first subscription on; `max` goes as fast as sockets take;
//!   `--rate N` sends each client N messages a second, evenly spaced ([`pacer`]).
//! - [`server`], [`connection`], [`http`], [`ws`]: one port for REST, control and websockets;
//!   user-data websockets are spliced to the paper venue's websocket server.
//! - [`book`]: each symbol's order book as replayed, for REST depth and bookTicker.
//! - [`faults`]: drops, stalls, malformed frames and depth gaps on demand.
//!
//! Invariants: frames go out byte for byte as captured (combined) or as the captured `data`
//! member (raw), except a diff-depth stream at another speed (merged per window, named as
//! subscribed) and later `--loop` laps (`E`/`T` moved by the lap's offset); a client sees its
//! streams' messages in capture order with none repeated or reordered, except where a fault
//! was asked for. The wall clock never enters the bytes sent.
//!
//! ## Status file
//! With `--status-file PATH` the venue rewrites PATH atomically (write + rename) at most every
//! 50 ms while it changes, with one JSON object:
//! `{"version":1,"pid":..,"capture":"..","lines":N,"speed":"max","loop":false,"started":true,
//! "finished":false,"position":P,"lap":L,"line_index":I,"local_ns":T,"clients":C,"messages_sent":M,
//! "server_time_ms":S,"lap_ms":D,"time_offset_ms":O}`.
//! `position` counts capture lines replayed over all laps; `line_index` is the 0-based capture
//! line replayed last (`null` before the first) and `local_ns` its `local_receive_ns`.
//! `server_time_ms` is the venue clock (what `/fapi/v1/time` answers: capture event time at the
//! replay position), `lap_ms` how far one `--loop` lap moves time forward and
//! `time_offset_ms` (= `lap * lap_ms`) how far times of the current lap are moved: frames' `E`
//! and `T`, REST `T` and `serverTime`. A paper venue that stamps orders follows
//! `server_time_ms` (or adds `time_offset_ms` to capture times).
//! `GET /_venue/status` returns the same document.

pub mod book;
pub mod capture;
pub mod connection;
pub mod error;
pub mod faults;
pub mod frames;
pub mod http;
pub mod json;
pub mod pacer;
pub mod replay;
pub mod server;
pub mod streams;
pub mod ws;

pub use error::{Error, Result};

/// `--version` text: crate version and build profile (a debug build is never benchmarked
/// silently; the benchmark script reads this).
pub const VERSION: &str = if cfg!(debug_assertions) {
    concat!(env!("CARGO_PKG_VERSION"), " (debug build)")
} else {
    concat!(env!("CARGO_PKG_VERSION"), " (release build)")
};
