//! The capture, written by its own thread. The receive loop formats lines into a buffer (a
//! memory copy) and hands full buffers over; the `write` system calls, which cost more than
//! decoding a frame, happen off the path from socket to ring. Buffers come back for reuse.
//!
//! What survives a kill is unchanged in kind: complete lines already handed to `write` are in
//! the file, lines still in memory are not, and a torn last line is detected by readers.

use std::path::PathBuf;
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{anyhow, Result};
use twinfeed_features::capture::{append_clean_line, CaptureWriter};

/// A buffer is handed over once it holds this many bytes (and at every [`CaptureThread::flush`]).
const HANDOVER_BYTES: usize = 1 << 20;
/// Buffers in flight before the receive loop waits for the disk (64 MiB or more).
const QUEUE: usize = 64;

pub struct CaptureThread {
    buffer: Vec<u8>,
    buffered_lines: u64,
    /// Lines handed to the writer thread so far.
    pub lines: u64,
    sender: Option<SyncSender<(Vec<u8>, u64)>>,
    spare: Receiver<Vec<u8>>,
    current: Arc<Mutex<PathBuf>>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl CaptureThread {
    pub fn start(mut writer: CaptureWriter) -> Result<Self> {
        let (sender, chunks) = sync_channel::<(Vec<u8>, u64)>(QUEUE);
        let (give_back, spare) = channel();
        let current = Arc::new(Mutex::new(writer.current_path()));
        let shared = current.clone();
        let thread = std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || {
                for (mut chunk, lines) in chunks {
                    if let Err(error) = writer.write_chunk(&chunk, lines) {
                        eprintln!("twinfeed-ingest: cannot write the capture: {error:#}");
                    }
                    *shared.lock().expect("capture path lock") = writer.current_path();
                    chunk.clear();
                    let _ = give_back.send(chunk);
                }
                writer
                    .sync()
                    .map_err(|e| format!("cannot sync the capture: {e}"))
            })?;
        Ok(CaptureThread {
            buffer: Vec::with_capacity(HANDOVER_BYTES + (64 << 10)),
            buffered_lines: 0,
            lines: 0,
            sender: Some(sender),
            spare,
            current,
            thread: Some(thread),
        })
    }

    /// Formats one line into the buffer; hands the buffer over when it is full. The frame
    /// must hold no CR or LF (the sink replaces them first).
    pub fn write_line(&mut self, local_ns: i64, frame: &str) {
        append_clean_line(&mut self.buffer, local_ns, frame);
        self.buffered_lines += 1;
        if self.buffer.len() >= HANDOVER_BYTES {
            self.flush();
        }
    }

    /// Hands the buffered lines over if they are at least `bytes` long.
    pub fn flush_if_at_least(&mut self, bytes: usize) {
        if self.buffer.len() >= bytes.max(1) {
            self.flush();
        }
    }

    /// Hands the buffered lines to the writer thread.
    pub fn flush(&mut self) {
        let Some(sender) = &self.sender else { return };
        if self.buffer.is_empty() {
            return;
        }
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(HANDOVER_BYTES + (64 << 10)));
        let chunk = std::mem::replace(&mut self.buffer, next);
        let lines = std::mem::take(&mut self.buffered_lines);
        // Blocks only when QUEUE buffers wait for a slow disk.
        if sender.send((chunk, lines)).is_ok() {
            self.lines += lines;
        }
    }

    /// The file being written.
    pub fn current_path(&self) -> PathBuf {
        self.current.lock().expect("capture path lock").clone()
    }

    /// Hands over the rest, waits until everything is written and synced.
    pub fn finish(&mut self) -> Result<()> {
        self.flush();
        self.sender = None;
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| anyhow!("the capture thread panicked"))?
                .map_err(|e| anyhow!(e)),
            None => Ok(()),
        }
    }
}

impl Drop for CaptureThread {
    fn drop(&mut self) {
        if let Err(error) = self.finish() {
            eprintln!("twinfeed-ingest: {error:#}");
        }
    }
}
