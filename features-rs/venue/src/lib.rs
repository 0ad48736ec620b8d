//! # twinfeed-venue: a Binance-compatible market-data venue on loopback
//!
//! Replays a capture (contract 1 of DESIGN.md) over Binance's own wire format so that the live
//! path (ingest, brain) can run on this machine against recorded data.
//!
//! - [`capture`]: load and classify the capture (stream frames, REST snapshots, control lines).
//! - [`frames`]: every subscription set is framed once into one buffer of unmasked websocket
//!   frames; clients get slices of it with large writes, never a per-message sink.
//! - [`replay`]: one replay position shared by all clients; timed speeds follow the captured
//!   `local_receive_ns` from the first subscription on; `max` goes as fast as sockets take;
//!   `--rate N` sends each client N messages a second, evenly spaced ([`pacer`]).
//! - [`server`], [`connection`], [`http`], [`ws`]: one port for REST, control and websockets.
//! - [`faults`]: drops, stalls, malformed frames and depth gaps on demand.
//!
//! Invariants: frames go out byte for byte as captured (combined) or as the captured `data`
//! member (raw); a client sees its streams' messages in capture order with none repeated or
//! reordered, except where a fault was asked for. Time never enters the bytes sent.
//!
//! ## Status file
//! With `--status-file PATH` the venue rewrites PATH atomically (write + rename) at most every
//! 50 ms while it changes, with one JSON object:
//! `{"version":1,"pid":..,"capture":"..","lines":N,"speed":"max","loop":false,"started":true,
//! "finished":false,"position":P,"lap":L,"line_index":I,"local_ns":T,"clients":C,"messages_sent":M}`.
//! `position` counts capture lines replayed over all laps; `line_index` is the 0-based capture
//! line replayed last (`null` before the first) and `local_ns` its `local_receive_ns`.
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
