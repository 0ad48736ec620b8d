//! Capture files (contract 1): one line per websocket frame, `<local_receive_ns> <frame>\n`,
//! plain, gzip or zstd (detected from the first bytes, not the file name).
//!
//! Reading: a last line without its newline is *torn* (the writer died mid-line); it is
//! reported and skipped, never decoded. Compressed data that cannot be decoded (garbage after
//! the last frame, a corrupt gzip member or zstd frame) ends the file there: every line before
//! the damage is read, and the damage (file, byte offset, what) is reported like a torn end. Writing: append-only, one `write` per line, rotation by
//! size into numbered files; a restarted writer never appends to an old (possibly torn) file.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::pipeline::Pipeline;
use crate::record::Record;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// One line read from a capture.
#[derive(Debug, PartialEq, Eq)]
pub enum CaptureLine<'a> {
    /// A complete line, without its newline.
    Complete(&'a [u8]),
    /// The file ended inside this line.
    Torn(&'a [u8]),
}

/// Streams the lines of one capture file. Lines are handed out as slices of one large read
/// buffer (no per-line copy); a line longer than the buffer grows it.
pub struct CaptureReader {
    path: PathBuf,
    inner: Box<dyn Read + Send>,
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    eof: bool,
    /// Compressed input that ended inside a compressed frame (the writer was killed mid-write).
    truncated: bool,
    /// Compressed input that could not be decoded from some point on: what and where.
    damage: Option<String>,
    torn_reported: bool,
    compressed: bool,
    line: u64,
    /// Total size of the file on disk (for progress).
    pub file_size: u64,
    counted: CountingHandle,
}

/// Bytes of the read buffer (and of each `read` call). Small enough that the kernel's copy is
/// still in the core's L2 cache when the parser reads it: 2–3 % faster than 4 MiB on
/// bookTicker-heavy input (Intel Xeon VM, 2 MiB L2 per core; 128 KiB and 1 MiB fell between).
const READ_CHUNK: usize = 256 << 10;

/// Bytes of the underlying file consumed so far (compressed bytes for compressed files), and
/// whether reading the file itself failed (as opposed to decoding what was read).
#[derive(Clone, Default)]
struct CountingHandle(std::sync::Arc<Counters>);

#[derive(Default)]
struct Counters {
    bytes: std::sync::atomic::AtomicU64,
    file_failed: std::sync::atomic::AtomicBool,
}

impl CountingHandle {
    fn add(&self, n: usize) {
        self.0
            .bytes
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }

    fn bytes(&self) -> u64 {
        self.0.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn note<T>(&self, result: std::io::Result<T>) -> std::io::Result<T> {
        if result.is_err() {
            self.0
                .file_failed
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        result
    }

    fn file_failed(&self) -> bool {
        self.0
            .file_failed
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Counts bytes as the consumer takes them: read, or consumed from the buffer (so the count is
/// where a decompressor stopped, not how far the buffer read ahead).
struct CountingRead<R> {
    inner: R,
    count: CountingHandle,
}

impl<R: Read> Read for CountingRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.count.note(self.inner.read(buf))?;
        self.count.add(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for CountingRead<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        let count = self.count.clone();
        count.note(self.inner.fill_buf())
    }

    fn consume(&mut self, amount: usize) {
        self.inner.consume(amount);
        self.count.add(amount);
    }
}

impl CaptureReader {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let file_size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Self::from_reader(path, Box::new(file), file_size)
    }

    /// Reads a capture from any byte stream (a file system client's file object, say): plain,
    /// gzip or zstd, told apart by its first bytes as for a file. `name` names it in errors
    /// and `file_size` (0 if unknown) is its size for progress.
    pub fn from_reader(
        name: &Path,
        mut file: Box<dyn Read + Send>,
        file_size: u64,
    ) -> Result<Self> {
        let path = name;
        let counted = CountingHandle::default();
        let mut head = [0u8; 4];
        let head_len = read_full(&mut file, &mut head).map_err(|e| Error::io(path, e))?;
        let head = &head[..head_len];
        let raw = std::io::Cursor::new(head.to_vec()).chain(file);
        let compressed = head.starts_with(&GZIP_MAGIC) || head.starts_with(&ZSTD_MAGIC);
        let buffered = |capacity, raw| CountingRead {
            inner: BufReader::with_capacity(capacity, raw),
            count: counted.clone(),
        };
        let inner: Box<dyn Read + Send> = if head.starts_with(&GZIP_MAGIC) {
            Box::new(flate2::bufread::MultiGzDecoder::new(buffered(1 << 20, raw)))
        } else if head.starts_with(&ZSTD_MAGIC) {
            Box::new(
                zstd::stream::read::Decoder::with_buffer(buffered(
                    zstd::zstd_safe::DCtx::in_size(),
                    raw,
                ))
                .map_err(|e| Error::io(path, e))?,
            )
        } else {
            Box::new(CountingRead {
                inner: raw,
                count: counted.clone(),
            })
        };
        Ok(CaptureReader {
            path: path.to_path_buf(),
            inner,
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            eof: false,
            truncated: false,
            damage: None,
            torn_reported: false,
            compressed,
            line: 0,
            file_size,
            counted,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// 1-based number of the line last returned.
    pub fn line_number(&self) -> u64 {
        self.line
    }

    /// Bytes of the file read so far.
    pub fn bytes_read(&self) -> u64 {
        self.counted.bytes()
    }

    /// Whether the file is compressed and ends inside a compressed frame: what that frame held
    /// past the last complete line is lost, and the reader reports it as a torn last line.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Why and where compressed data stopped decoding, if it did: the lines before it were
    /// read, and the reader reports it as a torn last line.
    pub fn damage(&self) -> Option<&str> {
        self.damage.as_deref()
    }

    /// The next line, or `None` at the end of the file.
    pub fn next_line(&mut self) -> Result<Option<CaptureLine<'_>>> {
        let mut searched = self.start;
        loop {
            if let Some(at) = memchr::memchr(b'\n', &self.buf[searched..self.end]) {
                let newline = searched + at;
                let line_start = self.start;
                self.start = newline + 1;
                self.line += 1;
                return Ok(Some(CaptureLine::Complete(&self.buf[line_start..newline])));
            }
            searched = self.end;
            if self.eof {
                // A truncated or damaged compressed end is reported even when it cut at a line
                // break.
                let cut = self.truncated || self.damage.is_some();
                if self.start == self.end && (!cut || self.torn_reported) {
                    return Ok(None);
                }
                self.torn_reported = true;
                let line_start = self.start;
                self.start = self.end;
                self.line += 1;
                return Ok(Some(CaptureLine::Torn(&self.buf[line_start..self.end])));
            }
            // Keep the partial line, moved to the front; grow when it fills the buffer.
            searched -= self.start;
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.end == self.buf.len() {
                self.buf.resize(self.buf.len() * 2, 0);
            }
            let n = match read_retrying(&mut self.inner, &mut self.buf[self.end..]) {
                Ok(n) => n,
                // A compressed stream that stops inside a frame: a torn end, like a torn line.
                Err(e) if self.compressed && e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    self.truncated = true;
                    0
                }
                // Data the decompressor cannot decode (not a failure to read the file): the
                // file ends here, like a torn end.
                Err(e) if self.compressed && !self.counted.file_failed() => {
                    self.damage = Some(format!(
                        "compressed data cannot be decoded after byte {} of the file ({e}); \
                         the rest of the file is skipped",
                        self.counted.bytes()
                    ));
                    0
                }
                Err(e) => {
                    return Err(Error::Capture {
                        path: self.path.clone(),
                        line: self.line + 1,
                        message: format!("cannot read: {e}"),
                    })
                }
            };
            self.end += n;
            self.eof = n == 0;
        }
    }
}

fn read_retrying(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match read_retrying(reader, &mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Records [`CaptureRun`] gathers before handing them out: 64 records are 12 KiB, so they are
/// still in the L1 cache when the caller copies them out (the binding's row-to-column
/// transpose). 3-7 % faster than 1,024 on bookTicker-heavy input, in interleaved runs.
const PENDING_RECORDS: usize = 64;

/// One input of a [`CaptureRun`]: a capture file, or a byte stream the caller opened (an
/// object store's file, say), named for errors and [`CaptureRun::locate`].
pub enum CaptureSource {
    File(PathBuf),
    Stream {
        name: PathBuf,
        reader: Box<dyn Read + Send>,
        /// Bytes of the stream (0 if unknown), for progress.
        size: u64,
    },
}

/// A pipeline run over one or more capture files (e.g. a rotated live capture), in order.
/// Line numbers in records count across files; [`CaptureRun::locate`] maps them back.
pub struct CaptureRun {
    sources: std::collections::VecDeque<CaptureSource>,
    reader: Option<CaptureReader>,
    pipeline: Pipeline,
    pending: Vec<Record>,
    pending_start: usize,
    /// (path, number of lines before this file) for every file opened.
    offsets: Vec<(PathBuf, u64)>,
    /// Torn lines found, as (path, line).
    pub torn: Vec<(PathBuf, u64)>,
    finished_bytes: u64,
    pub total_bytes: u64,
}

impl CaptureRun {
    pub fn new(paths: Vec<PathBuf>, pipeline: Pipeline) -> Result<Self> {
        Self::from_sources(
            paths.into_iter().map(CaptureSource::File).collect(),
            pipeline,
        )
    }

    /// A run over files and streams, in order.
    pub fn from_sources(sources: Vec<CaptureSource>, pipeline: Pipeline) -> Result<Self> {
        if sources.is_empty() {
            return Err(Error::Capture {
                path: PathBuf::new(),
                line: 0,
                message: "no capture files given".into(),
            });
        }
        let mut total_bytes = 0;
        for source in &sources {
            total_bytes += match source {
                CaptureSource::File(path) => std::fs::metadata(path)
                    .map_err(|e| Error::io(path, e))?
                    .len(),
                CaptureSource::Stream { size, .. } => *size,
            };
        }
        Ok(CaptureRun {
            sources: sources.into(),
            reader: None,
            pipeline,
            pending: Vec::new(),
            pending_start: 0,
            offsets: Vec::new(),
            torn: Vec::new(),
            finished_bytes: 0,
            total_bytes,
        })
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Bytes of the input files consumed so far (for progress bars).
    pub fn bytes_read(&self) -> u64 {
        self.finished_bytes + self.reader.as_ref().map_or(0, |r| r.bytes_read())
    }

    /// The file and 1-based line within it of a record's `line`.
    pub fn locate(&self, line: u64) -> Option<(&Path, u64)> {
        self.offsets
            .iter()
            .rev()
            .find(|(_, before)| *before < line)
            .map(|(path, before)| (path.as_path(), line - before))
    }

    /// Appends up to `max_rows` records to `out`; returns false once the input is exhausted and
    /// nothing was appended.
    pub fn next_batch(&mut self, max_rows: usize, out: &mut Vec<Record>) -> Result<bool> {
        let start = out.len();
        while out.len() - start < max_rows {
            match self.next_records(max_rows - (out.len() - start))? {
                Some(records) => out.extend_from_slice(records),
                None => break,
            }
        }
        Ok(out.len() > start)
    }

    /// The next records, at most `max_rows` of them, borrowed from the run (no copy); `None`
    /// once the input is exhausted. Slices hold up to about 64 records (`PENDING_RECORDS`).
    pub fn next_records(&mut self, max_rows: usize) -> Result<Option<&[Record]>> {
        if self.pending_start == self.pending.len() {
            self.pending.clear();
            self.pending_start = 0;
            if !self.read_some()? {
                return Ok(None);
            }
        }
        let from = self.pending_start;
        let take = (self.pending.len() - from).min(max_rows.max(1));
        self.pending_start += take;
        Ok(Some(&self.pending[from..from + take]))
    }

    /// Feeds lines until the pipeline produced something or the input ended.
    fn read_some(&mut self) -> Result<bool> {
        loop {
            if self.reader.is_none() {
                let Some(source) = self.sources.pop_front() else {
                    return Ok(false);
                };
                let reader = match source {
                    CaptureSource::File(path) => CaptureReader::open(&path)?,
                    CaptureSource::Stream { name, reader, size } => {
                        CaptureReader::from_reader(&name, reader, size)?
                    }
                };
                self.offsets
                    .push((reader.path().to_path_buf(), self.pipeline.stats().lines));
                self.reader = Some(reader);
            }
            let reader = self.reader.as_mut().unwrap();
            let torn_len = match reader.next_line()? {
                Some(CaptureLine::Complete(line)) => {
                    self.pipeline.push_line(line, &mut self.pending);
                    if self.pending.len() >= PENDING_RECORDS {
                        return Ok(true);
                    }
                    continue;
                }
                Some(CaptureLine::Torn(line)) => line.len(),
                None => {
                    self.finished_bytes += reader.file_size;
                    self.reader = None;
                    if !self.pending.is_empty() {
                        return Ok(true);
                    }
                    continue;
                }
            };
            let reader = self.reader.as_ref().unwrap();
            let message = if let Some(damage) = reader.damage() {
                format!(
                    "{}: {damage}: {torn_len} decoded bytes after the last complete line (line {}) skipped",
                    reader.path().display(),
                    reader.line_number() - 1
                )
            } else if reader.truncated() {
                format!(
                    "{}: compressed data ends inside a frame (the writer was killed mid-write): \
                     torn last line ({torn_len} decoded bytes without a newline), skipped",
                    reader.path().display()
                )
            } else {
                format!(
                    "{}: torn last line ({torn_len} bytes without a newline), skipped",
                    reader.path().display()
                )
            };
            self.torn
                .push((reader.path().to_path_buf(), reader.line_number()));
            self.pipeline.skip_line(message);
        }
    }
}

/// How a [`CaptureWriter`] stores its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Plain text, `capture-NNNNNN.txt`.
    #[default]
    None,
    /// `capture-NNNNNN.txt.zst` at this zstd level: every chunk written is one complete zstd
    /// frame (a file is a sequence of them), so a kill leaves whole frames and at most one torn
    /// last frame, which readers report like a torn line.
    Zstd(i32),
}

/// Append-only capture writer with size-based rotation into `dir/capture-NNNNNN.txt` (or
/// `.txt.zst`, see [`Compression`]); the size counts bytes on disk.
///
/// Lines are collected in memory and written by [`CaptureWriter::flush`] (or handed over whole
/// by [`CaptureWriter::write_chunk`]) with one `write` call. A kill therefore leaves whole lines
/// and at most one torn last line, which readers detect; lines still in memory are lost. (The
/// live ingest writes from a separate thread and publishes records first, so after a kill its
/// ring can hold records of the last lines that did not reach the file.)
pub struct CaptureWriter {
    dir: PathBuf,
    rotate_bytes: u64,
    index: u64,
    file: File,
    written: u64,
    buffer: Vec<u8>,
    compressor: Option<zstd::bulk::Compressor<'static>>,
    /// The compressed form of the chunk being written.
    packed: Vec<u8>,
    pub lines: u64,
}

/// Buffered bytes that trigger a flush on their own.
const FLUSH_BYTES: usize = 1 << 20;

impl CaptureWriter {
    /// Starts a new plain-text file after the highest-numbered one already in `dir`.
    pub fn create(dir: &Path, rotate_bytes: u64) -> Result<Self> {
        Self::create_with(dir, rotate_bytes, Compression::None)
    }

    /// Starts a new file after the highest-numbered one already in `dir`, stored as `compression` says.
    pub fn create_with(dir: &Path, rotate_bytes: u64, compression: Compression) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut index = 0;
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let name = entry.map_err(|e| Error::io(dir, e))?.file_name();
            if let Some(n) = capture_index(&name.to_string_lossy()) {
                index = index.max(n + 1);
            }
        }
        let compressor = match compression {
            Compression::None => None,
            Compression::Zstd(level) => Some(
                zstd::bulk::Compressor::new(level)
                    .map_err(|e| Error::io(capture_path(dir, index, true), e))?,
            ),
        };
        let file = open_capture(dir, index, compressor.is_some())?;
        Ok(CaptureWriter {
            dir: dir.to_path_buf(),
            rotate_bytes: rotate_bytes.max(1),
            index,
            file,
            written: 0,
            buffer: Vec::with_capacity(FLUSH_BYTES),
            compressor,
            packed: Vec::new(),
            lines: 0,
        })
    }

    pub fn current_path(&self) -> PathBuf {
        capture_path(&self.dir, self.index, self.compressor.is_some())
    }

    /// Appends one line to the buffer (see [`CaptureWriter::flush`]).
    pub fn write_line(&mut self, local_ns: i64, frame: &str) -> Result<()> {
        if self.written + self.buffer.len() as u64 >= self.rotate_bytes {
            self.flush()?;
            self.rotate()?;
        }
        append_line(&mut self.buffer, local_ns, frame);
        self.lines += 1;
        if self.buffer.len() >= FLUSH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the buffered lines to the file with one `write` call.
    pub fn flush(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let buffer = std::mem::take(&mut self.buffer);
        let written = self.write_out(&buffer);
        self.buffer = buffer;
        self.buffer.clear();
        written
    }

    /// Writes `chunk`, whole lines formatted by [`append_line`] (`lines` of them), with one
    /// `write` call. Rotation happens between chunks, so a file can exceed the rotation size by
    /// up to one chunk.
    pub fn write_chunk(&mut self, chunk: &[u8], lines: u64) -> Result<()> {
        self.flush()?;
        if self.written >= self.rotate_bytes {
            self.rotate()?;
        }
        self.write_out(chunk)?;
        self.lines += lines;
        Ok(())
    }

    /// Flushes and syncs file data to disk.
    pub fn sync(&mut self) -> Result<()> {
        self.flush()?;
        self.file
            .sync_data()
            .map_err(|e| Error::io(self.current_path(), e))
    }

    fn rotate(&mut self) -> Result<()> {
        self.index += 1;
        self.file = open_capture(&self.dir, self.index, self.compressor.is_some())?;
        self.written = 0;
        Ok(())
    }

    /// One `write` of `bytes` (whole lines), as one zstd frame when compressing.
    fn write_out(&mut self, bytes: &[u8]) -> Result<()> {
        let out = match &mut self.compressor {
            None => bytes,
            Some(compressor) => {
                self.packed.clear();
                self.packed
                    .reserve(zstd::zstd_safe::compress_bound(bytes.len()));
                compressor
                    .compress_to_buffer(bytes, &mut self.packed)
                    .map_err(|e| Error::io(self.current_path(), e))?;
                &self.packed
            }
        };
        (&self.file)
            .write_all(out)
            .map_err(|e| Error::io(self.current_path(), e))?;
        self.written += out.len() as u64;
        Ok(())
    }
}

impl Drop for CaptureWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Appends one capture line, `<local_ns> <frame>\n`, to `buffer`. A frame can never span
/// lines: raw line breaks (which JSON only allows as whitespace) become spaces.
pub fn append_line(buffer: &mut Vec<u8>, local_ns: i64, frame: &str) {
    let bytes = frame.as_bytes();
    if memchr::memchr2(b'\n', b'\r', bytes).is_none() {
        append_clean_line(buffer, local_ns, frame);
        return;
    }
    buffer.extend_from_slice(itoa::Buffer::new().format(local_ns).as_bytes());
    buffer.push(b' ');
    buffer.extend(
        bytes
            .iter()
            .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
    );
    buffer.push(b'\n');
}

/// [`append_line`] for a frame the caller already knows holds no CR or LF.
#[inline]
pub fn append_clean_line(buffer: &mut Vec<u8>, local_ns: i64, frame: &str) {
    debug_assert!(memchr::memchr2(b'\n', b'\r', frame.as_bytes()).is_none());
    buffer.extend_from_slice(itoa::Buffer::new().format(local_ns).as_bytes());
    buffer.push(b' ');
    buffer.extend_from_slice(frame.as_bytes());
    buffer.push(b'\n');
}

fn capture_path(dir: &Path, index: u64, compressed: bool) -> PathBuf {
    let suffix = if compressed { ".zst" } else { "" };
    dir.join(format!("capture-{index:06}.txt{suffix}"))
}

/// The index of a file named `capture-NNNNNN.txt` or `capture-NNNNNN.txt.zst`.
pub fn capture_index(name: &str) -> Option<u64> {
    let name = name.strip_suffix(".zst").unwrap_or(name);
    name.strip_prefix("capture-")?
        .strip_suffix(".txt")?
        .parse()
        .ok()
}

/// The capture files of a directory in writing order.
pub fn capture_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            capture_index(&entry.file_name().to_string_lossy()).map(|i| (i, entry.path()))
        })
        .collect();
    files.sort();
    Ok(files.into_iter().map(|(_, path)| path).collect())
}

fn open_capture(dir: &Path, index: u64, compressed: bool) -> Result<File> {
    let path = capture_path(dir, index, compressed);
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FeatureConfig;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("twinfeed-capture-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn writer_rotates_and_reader_detects_torn_last_line() {
        let dir = temp_dir("rotate");
        let mut writer = CaptureWriter::create(&dir, 100).unwrap();
        for i in 0..10 {
            writer
                .write_line(1000 + i, "{\"twinfeed\":\"heartbeat\"}")
                .unwrap();
        }
        writer.flush().unwrap();
        let files = capture_files(&dir).unwrap();
        assert!(files.len() > 1);
        // Simulate a kill mid-line.
        let mut last = OpenOptions::new()
            .append(true)
            .open(files.last().unwrap())
            .unwrap();
        last.write_all(b"1234 {\"twinf").unwrap();
        let mut run = CaptureRun::new(files, Pipeline::new(FeatureConfig::default())).unwrap();
        let mut out = Vec::new();
        while run.next_batch(3, &mut out).unwrap() {}
        assert_eq!(out.len(), 10);
        assert_eq!(run.torn.len(), 1);
        assert_eq!(run.pipeline().stats().malformed_lines, 1);
        let (path, line) = run.locate(out[9].line).unwrap();
        assert!(path.ends_with("capture-000001.txt") || line >= 1);
        // A restarted writer starts a new file.
        let writer = CaptureWriter::create(&dir, 100).unwrap();
        assert_eq!(
            capture_index(&writer.current_path().file_name().unwrap().to_string_lossy()),
            Some(run_files(&dir) as u64 - 1)
        );
    }

    fn run_files(dir: &Path) -> usize {
        capture_files(dir).unwrap().len()
    }

    #[test]
    fn zstd_writer_rotates_one_frame_per_chunk_and_a_torn_frame_is_reported() {
        let dir = temp_dir("zstd");
        let mut writer = CaptureWriter::create_with(&dir, 150, Compression::Zstd(1)).unwrap();
        let mut expected = Vec::new();
        for chunk in 0..6i64 {
            let mut bytes = Vec::new();
            for i in 0..20 {
                let line = format!("{{\"twinfeed\":\"heartbeat\",\"n\":{}}}", chunk * 20 + i);
                append_line(&mut bytes, 1000 + chunk * 20 + i, &line);
            }
            writer.write_chunk(&bytes, 20).unwrap();
            expected.extend_from_slice(&bytes);
        }
        writer.sync().unwrap();
        assert_eq!(writer.lines, 120);
        let files = capture_files(&dir).unwrap();
        assert!(files.len() > 1, "rotated on compressed bytes: {files:?}");
        for file in &files {
            assert!(file.to_string_lossy().ends_with(".txt.zst"), "{file:?}");
        }
        let mut read = Vec::new();
        for file in &files {
            let mut reader = CaptureReader::open(file).unwrap();
            while let Some(CaptureLine::Complete(line)) = reader.next_line().unwrap() {
                read.extend_from_slice(line);
                read.push(b'\n');
            }
            assert!(!reader.truncated());
        }
        assert_eq!(read, expected);
        // A restarted writer numbers after the compressed files.
        let next = CaptureWriter::create(&dir, 150).unwrap();
        assert_eq!(
            capture_index(&next.current_path().file_name().unwrap().to_string_lossy()),
            Some(files.len() as u64)
        );
        drop(next);
        // Cut the last frame short, as a kill in the middle of a write would.
        let last = files.last().unwrap();
        let bytes = std::fs::read(last).unwrap();
        std::fs::write(last, &bytes[..bytes.len() - 3]).unwrap();
        let mut run =
            CaptureRun::new(files.clone(), Pipeline::new(FeatureConfig::default())).unwrap();
        let mut out = Vec::new();
        while run.next_batch(7, &mut out).unwrap() {}
        assert_eq!(run.torn.len(), 1);
        assert_eq!(run.pipeline().stats().malformed_lines, 1);
        let errors = &run.pipeline().stats().errors;
        assert!(
            errors[0].message.contains("ends inside a frame"),
            "{errors:?}"
        );
        // Every heartbeat of the complete frames is there.
        assert!(out.len() >= 100 && out.len() < 120, "{}", out.len());
    }

    #[test]
    fn a_line_longer_than_the_read_buffer_grows_it() {
        let dir = temp_dir("long");
        let long = format!(
            "{{\"twinfeed\":\"heartbeat\",\"pad\":\"{}\"}}",
            "x".repeat(3 * READ_CHUNK)
        );
        let text = format!(
            "1 {{\"twinfeed\":\"heartbeat\"}}\n2 {long}\n3 {{\"twinfeed\":\"heartbeat\"}}\n"
        );
        let path = dir.join("long.txt");
        std::fs::write(&path, &text).unwrap();
        let mut reader = CaptureReader::open(&path).unwrap();
        let mut lengths = Vec::new();
        while let Some(CaptureLine::Complete(line)) = reader.next_line().unwrap() {
            lengths.push(line.len());
        }
        assert_eq!(lengths, [26, long.len() + 2, 26]);
    }

    #[test]
    fn a_gzip_capture_cut_short_reads_up_to_the_cut_and_reports_it() {
        let dir = temp_dir("gzip-cut");
        let mut text = Vec::new();
        for i in 0..2000 {
            append_line(&mut text, 1000 + i, "{\"twinfeed\":\"heartbeat\"}");
        }
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&text).unwrap();
        let packed = encoder.finish().unwrap();
        let path = dir.join("cut.gz");
        std::fs::write(&path, &packed[..packed.len() * 2 / 3]).unwrap();
        let mut reader = CaptureReader::open(&path).unwrap();
        let (mut complete, mut torn) = (0, 0);
        while let Some(line) = reader.next_line().unwrap() {
            match line {
                CaptureLine::Complete(_) => complete += 1,
                CaptureLine::Torn(_) => torn += 1,
            }
        }
        assert!(reader.truncated() && torn == 1, "{complete} {torn}");
        assert!(complete > 0 && complete < 2000, "{complete}");
    }

    #[test]
    fn reads_gzip_and_zstd() {
        let dir = temp_dir("compressed");
        let text = b"1 {\"twinfeed\":\"heartbeat\"}\n2 {\"twinfeed\":\"heartbeat\"}\n";
        let gz = dir.join("a.gz");
        let mut encoder =
            flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
        encoder.write_all(text).unwrap();
        encoder.finish().unwrap();
        let zst = dir.join("a.zst");
        std::fs::write(&zst, zstd::encode_all(&text[..], 1).unwrap()).unwrap();
        for path in [gz, zst] {
            let mut reader = CaptureReader::open(&path).unwrap();
            let mut n = 0;
            while let Some(line) = reader.next_line().unwrap() {
                assert!(matches!(line, CaptureLine::Complete(_)));
                n += 1;
            }
            assert_eq!(n, 2);
        }
    }
}
