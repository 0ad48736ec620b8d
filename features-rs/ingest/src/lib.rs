//! The ingest's parts as a library, so the binary (`main.rs`), the integration tests and the
//! fuzz targets (`fuzz/`) share them: the websocket frame reader, the REST snapshot reader, the
//! capture thread, the live loop, the replay loop and the sink into capture and ring.

pub mod capture_thread;
pub mod clock;
pub mod instruments;
pub mod live;
pub mod replay;
pub mod rest;
pub mod sink;
pub mod tls;
pub mod ws;
