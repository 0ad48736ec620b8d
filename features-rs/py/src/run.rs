//! Batch runs over capture files, and an incremental `Pipeline` for pushing frames one by one.

use std::path::PathBuf;
use std::sync::Mutex;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use pyo3_arrow::PyTable;
use twinfeed_features::capture::{CaptureRun, CaptureSource};
use twinfeed_features::pipeline::{Pipeline, Stats};
use twinfeed_features::record::{extend_bytes, Record};

use crate::arrow::Columns;
use crate::config::PyFeatureConfig;
use crate::error::to_py;

fn stats_dict<'py>(
    py: Python<'py>,
    stats: &Stats,
    warnings: Vec<String>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("lines", stats.lines)?;
    d.set_item("bytes", stats.bytes)?;
    d.set_item("frames", stats.frames)?;
    d.set_item("blank_lines", stats.blank_lines)?;
    d.set_item("malformed_lines", stats.malformed_lines)?;
    d.set_item("decode_errors", stats.decode_errors)?;
    d.set_item("unknown_frames", stats.unknown_frames)?;
    d.set_item("filtered", stats.filtered)?;
    d.set_item("over_symbol_cap", stats.over_symbol_cap)?;
    d.set_item("unchanged_quotes", stats.unchanged_quotes)?;
    d.set_item("records", stats.records)?;
    d.set_item("gaps", stats.gaps)?;
    d.set_item("snapshots", stats.snapshots)?;
    d.set_item("unattributed_snapshots", stats.unattributed_snapshots)?;
    d.set_item("heartbeats", stats.heartbeats)?;
    d.set_item("checksums_verified", stats.checksums_verified)?;
    let errors: Vec<(u64, String)> = stats
        .errors
        .iter()
        .map(|e| (e.line, e.message.clone()))
        .collect();
    d.set_item("errors", errors)?;
    d.set_item("warnings", warnings)?;
    Ok(d)
}

/// Rows of one Arrow record batch (12 MB of columns); a larger `next_arrow` returns a table of
/// several.
const CHUNK_ROWS: usize = 1 << 16;

/// A Python binary file object as a byte stream: `read(n)` called with the GIL taken for the
/// call (the run itself decodes without it).
struct PyReader(Py<PyAny>);

impl std::io::Read for PyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        Python::attach(|py| {
            let chunk = self
                .0
                .call_method1(py, "read", (buf.len(),))
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let bytes = chunk
                .cast_bound::<PyBytes>(py)
                .map_err(|_| std::io::Error::other("read() did not return bytes"))?
                .as_bytes();
            if bytes.len() > buf.len() {
                return Err(std::io::Error::other(format!(
                    "read({}) returned {} bytes",
                    buf.len(),
                    bytes.len()
                )));
            }
            buf[..bytes.len()].copy_from_slice(bytes);
            Ok(bytes.len())
        })
    }
}

/// A pipeline run over capture files (in order), pulled in batches. Releases the GIL while
/// decoding.
#[pyclass(name = "FeatureRun", module = "twinfeed._features")]
pub struct PyFeatureRun {
    /// In a mutex only so the class is `Sync` (a stream source is `Send` but not `Sync`):
    /// `&mut self` methods take it without locking (`get_mut`), the few `&self` ones lock.
    /// Without `unsendable`, a run may be dropped on any thread (a Dask worker's garbage
    /// collector, say), which an unsendable class refuses (it leaks and raises instead).
    run: Mutex<CaptureRun>,
    schema: SchemaRef,
    buffer: Vec<Record>,
}

impl PyFeatureRun {
    fn locked(&self) -> std::sync::MutexGuard<'_, CaptureRun> {
        self.run.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl PyFeatureRun {
    /// `paths`: capture files (str or path-like) or streams given as `(name, file, size)`: a
    /// binary file object whose `read(n)` returns bytes (an fsspec file, say), named in errors,
    /// with its size in bytes for progress (0 if unknown).
    #[new]
    #[pyo3(signature = (paths, config = None))]
    fn new(paths: Vec<Bound<'_, PyAny>>, config: Option<PyFeatureConfig>) -> PyResult<Self> {
        let config = config.map(|c| c.inner).unwrap_or_default();
        let mut sources = Vec::with_capacity(paths.len());
        for item in paths {
            if let Ok((name, file, size)) = item.extract::<(String, Py<PyAny>, u64)>() {
                sources.push(CaptureSource::Stream {
                    name: PathBuf::from(name),
                    reader: Box::new(PyReader(file)),
                    size,
                });
            } else {
                sources.push(CaptureSource::File(item.extract::<PathBuf>()?));
            }
        }
        let run = CaptureRun::from_sources(sources, Pipeline::new(config)).map_err(to_py)?;
        Ok(PyFeatureRun {
            run: Mutex::new(run),
            schema: crate::arrow::schema(),
            buffer: Vec::new(),
        })
    }

    fn fill(&mut self, py: Python<'_>, max_rows: usize) -> PyResult<bool> {
        self.buffer.clear();
        let run = self.run.get_mut().unwrap_or_else(|e| e.into_inner());
        let buffer = &mut self.buffer;
        py.detach(|| run.next_batch(max_rows.max(1), buffer))
            .map_err(to_py)
    }

    /// The next Arrow batch (as a table with one chunk, exported through the Arrow PyCapsule
    /// interface) of at most `max_rows` rows (in record batches of at most 65,536 rows), or None at the end.
    #[pyo3(signature = (max_rows = 65536))]
    fn next_arrow(&mut self, py: Python<'_>, max_rows: usize) -> PyResult<Option<PyTable>> {
        let rows = max_rows.max(1);
        let run = self.run.get_mut().unwrap_or_else(|e| e.into_inner());
        let schema = self.schema.clone();
        let batches = py
            .detach(|| -> twinfeed_features::Result<Vec<RecordBatch>> {
                // Straight from the run's small record chunks into the columns: each record
                // is transposed while it is still in cache. Chunks of at most CHUNK_ROWS keep
                // the memory a short capture touches small.
                let mut batches = Vec::new();
                let mut total = 0;
                while total < rows {
                    let mut columns = Columns::with_capacity((rows - total).min(CHUNK_ROWS));
                    while columns.len() < columns.capacity() {
                        match run.next_records(columns.capacity() - columns.len())? {
                            Some(records) => columns.extend(records),
                            None => break,
                        }
                    }
                    let (len, full) = (columns.len(), columns.len() == columns.capacity());
                    if len > 0 {
                        total += len;
                        batches.push(columns.finish(&run.pipeline().symbols(), schema.clone()));
                    }
                    if !full {
                        break;
                    }
                }
                Ok(batches)
            })
            .map_err(to_py)?;
        if batches.is_empty() {
            return Ok(None);
        }
        Ok(Some(PyTable::try_new(batches, self.schema.clone())?))
    }

    /// The next at most `max_rows` records as raw little-endian bytes (see `record_dtype()`),
    /// or None at the end.
    #[pyo3(signature = (max_rows = 65536))]
    fn next_records<'py>(
        &mut self,
        py: Python<'py>,
        max_rows: usize,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        if !self.fill(py, max_rows)? {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        extend_bytes(&mut bytes, &self.buffer);
        Ok(Some(PyBytes::new(py, &bytes)))
    }

    /// Counters so far, the kept line errors and warnings.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let run = self.locked();
        let pipeline = run.pipeline();
        stats_dict(py, pipeline.stats(), pipeline.warnings())
    }

    /// Symbol names by id.
    fn symbols(&self) -> Vec<String> {
        self.locked()
            .pipeline()
            .symbols()
            .into_iter()
            .map(String::from)
            .collect()
    }

    /// (path, line within that file) of a record's `line`.
    fn locate(&self, line: u64) -> Option<(PathBuf, u64)> {
        self.locked()
            .locate(line)
            .map(|(p, l)| (p.to_path_buf(), l))
    }

    #[getter]
    fn bytes_read(&self) -> u64 {
        self.locked().bytes_read()
    }

    #[getter]
    fn total_bytes(&self) -> u64 {
        self.locked().total_bytes
    }

    #[getter]
    fn fingerprint(&self) -> String {
        self.locked().pipeline().fingerprint().to_string()
    }
}

/// An incremental pipeline: push frames one at a time (what the ingest does).
#[pyclass(name = "Pipeline", module = "twinfeed._features", unsendable)]
pub struct PyPipeline {
    inner: Pipeline,
    buffer: Vec<Record>,
}

#[pymethods]
impl PyPipeline {
    #[new]
    #[pyo3(signature = (config = None))]
    fn new(config: Option<PyFeatureConfig>) -> Self {
        PyPipeline {
            inner: Pipeline::new(config.map(|c| c.inner).unwrap_or_default()),
            buffer: Vec::new(),
        }
    }

    /// Pushes one frame received at `local_ns`; returns the records' bytes.
    fn push<'py>(&mut self, py: Python<'py>, local_ns: i64, frame: &str) -> Bound<'py, PyBytes> {
        self.buffer.clear();
        self.inner.push(local_ns, frame, &mut self.buffer);
        let mut bytes = Vec::new();
        extend_bytes(&mut bytes, &self.buffer);
        PyBytes::new(py, &bytes)
    }

    /// Pushes raw capture lines (`<ns> <frame>\n`...); returns the records' bytes.
    fn push_lines<'py>(&mut self, py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
        self.buffer.clear();
        for line in data.split_inclusive(|b| *b == b'\n') {
            self.inner.push_line(line, &mut self.buffer);
        }
        let mut bytes = Vec::new();
        extend_bytes(&mut bytes, &self.buffer);
        PyBytes::new(py, &bytes)
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats_dict(py, self.inner.stats(), self.inner.warnings())
    }

    fn symbols(&self) -> Vec<String> {
        self.inner.symbols().into_iter().map(String::from).collect()
    }
}
