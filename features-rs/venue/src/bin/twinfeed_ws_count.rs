//! `twinfeed-ws-count`: a minimal websocket client that counts frames as fast as it can read.
//!
//! It is the reading half of the venue throughput benchmark: it does the handshake, then reads
//! with large `read` calls and walks the frame headers, skipping payloads without looking at
//! them (no UTF-8 check, no JSON). So it measures what the venue pushes through loopback TCP,
//! not what a real client could decode.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;

/// Count websocket frames from a URL for a while, then print JSON statistics.
#[derive(Parser, Debug)]
#[command(name = "twinfeed-ws-count", version = twinfeed_venue::VERSION, about)]
struct Args {
    /// ws://HOST:PORT/PATH (plain websocket only).
    #[arg(long)]
    url: String,
    /// Stop after this many seconds of reading.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Stop after this many messages.
    #[arg(long)]
    max_messages: Option<u64>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rest = args
        .url
        .strip_prefix("ws://")
        .context("only ws:// URLs are supported")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream =
        TcpStream::connect(authority).with_context(|| format!("cannot connect to {authority}"))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )?;

    let mut buffer = vec![0u8; 8 << 20];
    let mut end = 0;
    let head_end = loop {
        let n = stream.read(&mut buffer[end..]).context("handshake")?;
        if n == 0 {
            bail!("connection closed during the handshake");
        }
        end += n;
        if let Some(at) = buffer[..end].windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]);
    if !head.starts_with("HTTP/1.1 101") {
        bail!("handshake refused: {}", head.lines().next().unwrap_or(""));
    }

    let mut counter = Counter::default();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.seconds);
    let max_messages = args.max_messages.unwrap_or(u64::MAX);
    let mut start = head_end;
    let mut bytes = (end - head_end) as u64;
    loop {
        start = counter.walk(&buffer[..end], start);
        if counter.closed || counter.messages >= max_messages || Instant::now() >= deadline {
            break;
        }
        // Keep an incomplete header; everything before it is consumed.
        buffer.copy_within(start..end, 0);
        end -= start;
        start = 0;
        match stream.read(&mut buffer[end..]) {
            Ok(0) => break,
            Ok(n) => {
                end += n;
                bytes += n as u64;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                eprintln!("twinfeed-ws-count: read: {e}");
                break;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"messages\":{},\"bytes\":{},\"seconds\":{:.6},\"messages_per_second\":{:.1},\"megabytes_per_second\":{:.2},\"closed\":{}}}",
        counter.messages,
        bytes,
        seconds,
        counter.messages as f64 / seconds,
        bytes as f64 / seconds / 1e6,
        counter.closed
    );
    Ok(())
}

#[derive(Default)]
struct Counter {
    messages: u64,
    /// Payload bytes of the current frame still to skip.
    skip: u64,
    closed: bool,
}

impl Counter {
    /// Walks frames in `data[start..]`; returns where an incomplete header starts (or the end).
    fn walk(&mut self, data: &[u8], mut start: usize) -> usize {
        loop {
            let available = (data.len() - start) as u64;
            if self.skip > 0 {
                let take = self.skip.min(available);
                self.skip -= take;
                start += take as usize;
                if self.skip > 0 {
                    return start;
                }
            }
            let header = &data[start..];
            if header.len() < 2 {
                return start;
            }
            let (length, header_length) = match header[1] & 0x7f {
                126 if header.len() >= 4 => (u16::from_be_bytes([header[2], header[3]]) as u64, 4),
                127 if header.len() >= 10 => {
                    let mut be = [0u8; 8];
                    be.copy_from_slice(&header[2..10]);
                    (u64::from_be_bytes(be), 10)
                }
                126 | 127 => return start,
                n => (n as u64, 2),
            };
            match header[0] & 0x0f {
                0x1 | 0x2 => self.messages += 1,
                0x8 => self.closed = true,
                _ => {}
            }
            start += header_length;
            self.skip = length;
            if self.closed {
                return data.len();
            }
        }
    }
}
