//! One websocket client: subscriptions, replay from the shared position, faults.
//!
//! The writer owns the socket's write half and sends slices of pre-framed buffers with large
//! writes; a reader task turns client frames into events (SUBSCRIBE, ping, close) that the
//! writer handles between chunks, so replies land on frame boundaries.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::faults::Faults;
use crate::frames::{self, Encoded, Mode, Selector, OPCODE_PONG, OPCODE_TEXT};
use crate::pacer::Pacer;
use crate::replay::Speed;
use crate::server::{Command, Venue};
use crate::streams::{self, Category};
use crate::ws::{ClientMessage, ClientReader};

/// Largest single write: big enough to amortise the syscall, small enough to answer pings.
const CHUNK_BYTES: usize = 1 << 20;

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The capture is consumed (no `--loop`): close frame 1000.
    Finished,
    /// The client sent a close frame or went away, or the venue is shutting down while a
    /// frame was half written: the TCP stream is ended without (another) close frame.
    ClientClosed,
    /// A drop fault or `POST /_venue/disconnect`: TCP reset, no close frame.
    Reset,
    /// The venue is shutting down: close frame 1001.
    GoingAway,
}

type Incoming = Result<Option<ClientMessage>, String>;

/// Serves a websocket client after the `101` response was written.
pub async fn serve(
    venue: Arc<Venue>,
    stream: TcpStream,
    leftover: Vec<u8>,
    mode: Mode,
    category: Option<Category>,
    streams: Vec<String>,
) {
    let _ = stream.set_nodelay(true);
    let (read_half, write_half) = stream.into_split();
    let (sender, events) = mpsc::channel(64);
    let reader = tokio::spawn(read_client(read_half, leftover, sender));
    venue.replay.clients.fetch_add(1, Ordering::Relaxed);
    let mut commands = venue.commands.subscribe();
    let seen_disconnects = commands.borrow_and_update().disconnects;
    let mut connection = Connection {
        events,
        commands,
        seen_disconnects,
        pending: VecDeque::new(),
        plan: venue.faults.claim(),
        encoded: venue.encodings.get(mode, &[], 0),
        selectors: Vec::new(),
        encoded_lap: 0,
        category,
        venue: venue.clone(),
        writer: write_half,
        mode,
        requested: Vec::new(),
        position: 0,
        active: false,
        sent: 0,
        depth_seen: 0,
        stalled: false,
        skipped: false,
        last_malformed_at: 0,
        pacer: None,
    };
    connection.subscribe(&streams);
    let ending = connection.run().await;
    venue.replay.clients.fetch_sub(1, Ordering::Relaxed);
    let mut writer = connection.writer;
    match ending {
        Ok(Ending::Reset) => {
            // SO_LINGER 0 makes close() send RST; forget() keeps the write half from sending
            // FIN first, so the client sees an abrupt drop, not an orderly end of stream.
            let _ = writer.as_ref().set_zero_linger();
            writer.forget();
            reader.abort();
            let _ = reader.await;
        }
        Ok(Ending::Finished) | Ok(Ending::GoingAway) => {
            let (code, reason) = if matches!(ending, Ok(Ending::Finished)) {
                (1000, "end of capture")
            } else {
                (1001, "venue shutting down")
            };
            let _ = writer.write_all(&frames::close_frame(code, reason)).await;
            let _ = writer.flush().await;
            // Give the client a moment to answer the close handshake, then end the stream.
            let _ = tokio::time::timeout(Duration::from_secs(1), reader).await;
            let _ = writer.shutdown().await;
        }
        Ok(Ending::ClientClosed) | Err(_) => {
            let _ = writer.shutdown().await;
            reader.abort();
        }
    }
}

async fn read_client(read_half: OwnedReadHalf, leftover: Vec<u8>, sender: mpsc::Sender<Incoming>) {
    let mut reader = ClientReader::new(read_half, leftover);
    loop {
        let message = reader.next().await;
        let last = !matches!(
            message,
            Ok(Some(
                ClientMessage::Text(_)
                    | ClientMessage::Binary(_)
                    | ClientMessage::Ping(_)
                    | ClientMessage::Pong
            ))
        );
        if sender.send(message).await.is_err() || last {
            return;
        }
    }
}

struct Connection {
    venue: Arc<Venue>,
    writer: OwnedWriteHalf,
    events: mpsc::Receiver<Incoming>,
    commands: watch::Receiver<Command>,
    seen_disconnects: u64,
    /// Client events that arrived while a chunk was being written.
    pending: VecDeque<Incoming>,
    mode: Mode,
    /// Stream names as the client asked for them (LIST_SUBSCRIPTIONS answers these).
    requested: Vec<String>,
    encoded: Arc<Encoded>,
    /// What the subscriptions deliver (see [`Selector`]), and the lap `encoded` is framed for.
    selectors: Vec<Selector>,
    encoded_lap: u64,
    /// The routed path's streams (`/public`, `/market`); `None` on the legacy paths, which
    /// serve every stream.
    category: Option<Category>,
    /// Next replay position to send (see `replay`).
    position: u64,
    /// Subscribed to at least one captured stream, and `position` is set.
    active: bool,
    /// Captured messages sent on this connection.
    sent: u64,
    depth_seen: u64,
    plan: Faults,
    stalled: bool,
    skipped: bool,
    last_malformed_at: u64,
    /// `--rate`: this connection's schedule, from its first subscription on.
    pacer: Option<Pacer>,
}

enum Flow {
    Continue,
    End(Ending),
}

impl Connection {
    async fn run(&mut self) -> std::io::Result<Ending> {
        let mut released = self.venue.replay.released();
        let timed = self.venue.replay.speed.is_timed();
        loop {
            // Waiting for the pacer's next due message (`--rate`), not for the clock.
            let mut paced = false;
            // `changed()` below marks values seen, so compare values, not change flags.
            let command: Command = *self.commands.borrow_and_update();
            if command.shutdown {
                return Ok(Ending::GoingAway);
            }
            if command.disconnects != self.seen_disconnects {
                return Ok(Ending::Reset);
            }
            while let Some(incoming) = self
                .pending
                .pop_front()
                .or_else(|| self.events.try_recv().ok())
            {
                if let Flow::End(ending) = self.on_client(incoming).await? {
                    return Ok(ending);
                }
            }
            if self.active {
                let replay = &self.venue.replay;
                if self.position >= replay.end() {
                    return Ok(Ending::Finished);
                }
                let target = match replay.speed {
                    Speed::Max | Speed::Rate(_) => replay.end(),
                    Speed::Factor(_) => (*released.borrow_and_update()).min(replay.end()),
                };
                if self.position < target {
                    let allowed = match &mut self.pacer {
                        Some(pacer) => pacer.allowed(self.sent),
                        None => u64::MAX,
                    };
                    if allowed > 0 {
                        if let Flow::End(ending) = self.send_some(target, allowed).await? {
                            return Ok(ending);
                        }
                        continue;
                    }
                    paced = true;
                }
            }
            let sent = self.sent;
            let due = async {
                match (&self.pacer, paced) {
                    (Some(pacer), true) => pacer.wait(sent).await,
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                incoming = self.events.recv() => {
                    let incoming = incoming.unwrap_or(Ok(None));
                    if let Flow::End(ending) = self.on_client(incoming).await? {
                        return Ok(ending);
                    }
                }
                _ = self.commands.changed() => {}
                _ = released.changed(), if timed && self.active => {}
                waited = due => waited?,
            }
        }
    }

    /// Sends the next chunk of messages before `target`, at most `allowed` of them, applying
    /// faults.
    async fn send_some(&mut self, target: u64, allowed: u64) -> std::io::Result<Flow> {
        let lines = self.venue.replay.lines();
        let lap = self.position / lines;
        let line = (self.position % lines) as usize;
        if lap != self.encoded_lap {
            self.encoded = self.venue.encodings.get(self.mode, &self.selectors, lap);
            self.encoded_lap = lap;
        }
        let end_line = if target >= (lap + 1) * lines {
            lines as usize
        } else {
            (target - lap * lines) as usize
        };
        let encoded = self.encoded.clone();
        let messages = encoded.messages_of_lines(line..end_line);
        let (start, end) = (messages.start, messages.end);
        if start == end {
            self.advance(lap, end_line);
            return Ok(Flow::Continue);
        }
        // Faults due before message `start`.
        if self.plan.drop_after == Some(self.sent) {
            return Ok(Flow::End(Ending::Reset));
        }
        if let (false, Some(after), Some(ms)) =
            (self.stalled, self.plan.stall_after, self.plan.stall_ms)
        {
            if after == self.sent {
                self.stalled = true;
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
        }
        if let Some(every) = self.plan.malformed_every {
            if self.sent > 0 && self.sent % every == 0 && self.last_malformed_at != self.sent {
                self.last_malformed_at = self.sent;
                let payload = frames::payload_of(encoded.bytes_of(start..start + 1));
                let mut frame = Vec::with_capacity(payload.len() / 2 + 10);
                frames::push_frame(&mut frame, OPCODE_TEXT, &payload[..payload.len() / 2]);
                if let Some(ending) = self.push(&frame).await? {
                    return Ok(Flow::End(ending));
                }
            }
        }
        let skip = match (self.skipped, self.plan.skip_depth) {
            (false, Some(k)) => {
                encoded.nth_depth_from(start, (k - 1).saturating_sub(self.depth_seen) as usize)
            }
            _ => None,
        };
        if skip == Some(start) {
            self.skipped = true;
            self.depth_seen += 1;
            self.advance_past(lap, &encoded, start);
            return Ok(Flow::Continue);
        }
        // The chunk stops where the next fault is due.
        let mut chunk_end = encoded.chunk_end(start, end, CHUNK_BYTES);
        chunk_end =
            chunk_end.min(start.saturating_add(usize::try_from(allowed).unwrap_or(usize::MAX)));
        let room = |count: Option<u64>, sent: u64| {
            count
                .filter(|&c| c > sent)
                .map(|c| start + (c - sent) as usize)
        };
        let mut limits = vec![room(self.plan.drop_after, self.sent), skip];
        if !self.stalled {
            limits.push(room(
                self.plan
                    .stall_after
                    .filter(|_| self.plan.stall_ms.is_some()),
                self.sent,
            ));
        }
        if let Some(every) = self.plan.malformed_every {
            limits.push(Some(start + (every - self.sent % every) as usize));
        }
        for limit in limits.into_iter().flatten() {
            chunk_end = chunk_end.min(limit);
        }
        if let Some(ending) = self.push(encoded.bytes_of(start..chunk_end)).await? {
            return Ok(Flow::End(ending));
        }
        let count = (chunk_end - start) as u64;
        self.sent += count;
        self.depth_seen += encoded.depth_count(start..chunk_end) as u64;
        self.venue
            .replay
            .messages_sent
            .fetch_add(count, Ordering::Relaxed);
        if chunk_end == end {
            self.advance(lap, end_line);
        } else {
            self.position = lap * lines + encoded.message_line[chunk_end] as u64;
            self.report_position();
        }
        Ok(Flow::Continue)
    }

    /// Writes `bytes`, but gives up when the client closes or a venue order comes meanwhile:
    /// a client that stopped reading must not keep the connection (and its task) forever.
    async fn push(&mut self, bytes: &[u8]) -> std::io::Result<Option<Ending>> {
        let mut written = 0;
        while written < bytes.len() {
            tokio::select! {
                biased;
                result = self.writer.write(&bytes[written..]) => {
                    let n = result?;
                    if n == 0 {
                        return Err(std::io::ErrorKind::WriteZero.into());
                    }
                    written += n;
                }
                incoming = self.events.recv() => match incoming {
                    Some(Ok(Some(ClientMessage::Close(_))) | Ok(None) | Err(_)) | None => {
                        return Ok(Some(Ending::ClientClosed));
                    }
                    Some(other) => self.pending.push_back(other),
                },
                _ = self.commands.changed() => {
                    let command = *self.commands.borrow_and_update();
                    if command.disconnects != self.seen_disconnects {
                        return Ok(Some(Ending::Reset));
                    }
                    if command.shutdown {
                        return Ok(Some(Ending::ClientClosed));
                    }
                }
            }
        }
        Ok(None)
    }

    fn advance(&mut self, lap: u64, line: usize) {
        self.position = lap * self.venue.replay.lines() + line as u64;
        self.report_position();
    }

    fn advance_past(&mut self, lap: u64, encoded: &Encoded, message: usize) {
        self.advance(lap, encoded.message_line[message] as usize + 1);
    }

    fn report_position(&self) {
        if !self.venue.replay.speed.is_timed() {
            self.venue.replay.advance_to(self.position);
        }
    }

    async fn on_client(&mut self, incoming: Incoming) -> std::io::Result<Flow> {
        match incoming {
            Ok(Some(ClientMessage::Text(text))) => {
                let reply = self.on_request(&text);
                let mut frame = Vec::with_capacity(reply.len() + 4);
                frames::push_frame(&mut frame, OPCODE_TEXT, reply.as_bytes());
                if let Some(ending) = self.push(&frame).await? {
                    return Ok(Flow::End(ending));
                }
            }
            Ok(Some(ClientMessage::Ping(payload))) => {
                let mut frame = Vec::with_capacity(payload.len() + 2);
                frames::push_frame(&mut frame, OPCODE_PONG, &payload[..payload.len().min(125)]);
                if let Some(ending) = self.push(&frame).await? {
                    return Ok(Flow::End(ending));
                }
            }
            Ok(Some(ClientMessage::Binary(_) | ClientMessage::Pong)) => {}
            Ok(Some(ClientMessage::Close(_))) => {
                self.writer
                    .write_all(&frames::close_frame(1000, ""))
                    .await?;
                return Ok(Flow::End(Ending::ClientClosed));
            }
            Ok(None) | Err(_) => return Ok(Flow::End(Ending::ClientClosed)),
        }
        Ok(Flow::Continue)
    }

    /// Answers a live-subscription request (`{"method":...,"params":[...],"id":...}`).
    fn on_request(&mut self, text: &[u8]) -> String {
        let request: serde_json::Value = match serde_json::from_slice(text) {
            Ok(value) => value,
            Err(error) => return error_reply(3, &format!("Invalid JSON: {error}"), "null"),
        };
        let id = request
            .get("id")
            .map_or("null".to_string(), serde_json::Value::to_string);
        let params: Vec<String> = request
            .get("params")
            .and_then(|p| p.as_array())
            .map(|p| {
                p.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        match request.get("method").and_then(|m| m.as_str()) {
            Some("SUBSCRIBE") => {
                self.subscribe(&params);
                format!("{{\"result\":null,\"id\":{id}}}")
            }
            Some("UNSUBSCRIBE") => {
                self.unsubscribe(&params);
                format!("{{\"result\":null,\"id\":{id}}}")
            }
            Some("LIST_SUBSCRIPTIONS") => format!(
                "{{\"result\":{},\"id\":{id}}}",
                serde_json::to_string(&self.requested).unwrap_or_default()
            ),
            Some("SET_PROPERTY") => format!("{{\"result\":null,\"id\":{id}}}"),
            Some("GET_PROPERTY") => {
                format!("{{\"result\":{},\"id\":{id}}}", self.mode == Mode::Combined)
            }
            _ => error_reply(2, "Invalid request: unknown method", &id),
        }
    }

    fn subscribe(&mut self, names: &[String]) {
        for name in names {
            if !self.requested.contains(name) {
                self.requested.push(name.clone());
            }
        }
        self.resubscribe();
    }

    fn unsubscribe(&mut self, names: &[String]) {
        self.requested.retain(|r| !names.contains(r));
        self.resubscribe();
    }

    /// Re-frames for the new subscription set. A connection that goes from nothing to
    /// something starts at the shared replay position, and starts the clock if it is first.
    fn resubscribe(&mut self) {
        let capture = &self.venue.replay.capture;
        self.selectors = self
            .requested
            .iter()
            .filter(|name| self.category.map_or(true, |c| streams::category(name) == c))
            .flat_map(|name| capture.resolve(name, self.venue.depth_as_captured))
            .collect();
        let was_active = self.active;
        if !was_active {
            self.position = self.venue.replay.position();
        }
        let lines = self.venue.replay.lines().max(1);
        self.encoded_lap = self.position / lines;
        self.encoded = self
            .venue
            .encodings
            .get(self.mode, &self.selectors, self.encoded_lap);
        self.active = self.encoded.messages() > 0;
        if self.active && !was_active {
            if let (Speed::Rate(rate), None) = (self.venue.replay.speed, &self.pacer) {
                // Without a timer the connection could only burst; say so and send unpaced.
                self.pacer = Pacer::new(rate)
                    .map_err(|e| eprintln!("twinfeed-venue: no pacing timer ({e}); sending at max"))
                    .ok();
            }
        }
        if !self.requested.is_empty() {
            self.venue.replay.start();
        }
    }
}

fn error_reply(code: i32, message: &str, id: &str) -> String {
    format!(
        "{{\"error\":{{\"code\":{code},\"msg\":{}}},\"id\":{id}}}",
        serde_json::to_string(message).unwrap_or_default()
    )
}
