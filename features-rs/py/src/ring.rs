//! `RingReader`: the Python end of the live ring. Batches of records come back as one numpy
//! structured array of `record_dtype()` over a `bytes` copy, made here through numpy's C API
//! (`np.frombuffer` in Python cost more than the read itself); waiting happens without the
//! GIL.

use std::time::{Duration, Instant};

use numpy::npyffi::{npy_intp, NpyTypes, PyArrayObject, PY_ARRAY_API};
use numpy::{PyArrayDescr, PyArrayDescrMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use twinfeed_features::record::{Kind, Record, RECORD_SIZE};
use twinfeed_ring::{ReaderOptions, RingReader, Start};

use crate::error::RingError;

/// Longest wait without the GIL before checking for KeyboardInterrupt.
const WAIT_SLICE: Duration = Duration::from_millis(100);

fn ring_err(error: twinfeed_ring::Error) -> PyErr {
    RingError::new_err(error.to_string())
}

/// A reader of a shared-memory ring written by `twinfeed-ingest`.
#[pyclass(name = "RingReader", module = "twinfeed._features")]
pub struct PyRingReader {
    reader: RingReader,
    /// `record_dtype()`, resolved once.
    dtype: Py<PyArrayDescr>,
    buffer: Vec<u8>,
    records_read: u64,
    gaps_seen: u64,
    last_heartbeat_ns: Option<i64>,
    last_record_ns: Option<i64>,
}

impl PyRingReader {
    /// The records in `buffer` as a new read-only structured array over a `bytes` copy (an
    /// array owning its data costs numpy ~2 us per batch with this dtype, a view ~0.2 us).
    fn records<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let bytes = PyBytes::new(py, &self.buffer);
        let mut dims = [(self.buffer.len() / RECORD_SIZE) as npy_intp];
        // SAFETY: numpy's C API with its documented contract. `PyArray_NewFromDescr` steals
        // the dtype reference (`into_dtype_ptr` hands over a new one) and views `dims[0]`
        // records at the data pointer, which is the `bytes` object's immutable buffer of
        // exactly that many records; flags 0 make the view read-only. `PyArray_SetBaseObject`
        // steals the reference to `bytes` passed to it, which keeps the buffer alive as long
        // as the array.
        unsafe {
            let array = PY_ARRAY_API.PyArray_NewFromDescr(
                py,
                PY_ARRAY_API.get_type_object(py, NpyTypes::PyArray_Type),
                self.dtype.bind(py).clone().into_dtype_ptr(),
                1,
                dims.as_mut_ptr(),
                std::ptr::null_mut(),
                bytes.as_bytes().as_ptr().cast_mut().cast(),
                0,
                std::ptr::null_mut(),
            );
            let array = Bound::from_owned_ptr_or_err(py, array)?;
            if PY_ARRAY_API.PyArray_SetBaseObject(
                py,
                array.as_ptr().cast::<PyArrayObject>(),
                bytes.into_ptr(),
            ) < 0
            {
                return Err(PyErr::fetch(py));
            }
            Ok(array)
        }
    }

    /// Feed-health bookkeeping over the batch just read (done here, not per batch in numpy,
    /// because a latency-bound reader often reads one record at a time).
    fn observe(&mut self) {
        let kind_at = std::mem::offset_of!(Record, kind);
        let local_ns_at = std::mem::offset_of!(Record, local_ns);
        let local_ns = |record: &[u8]| {
            i64::from_le_bytes(
                record[local_ns_at..local_ns_at + 8]
                    .try_into()
                    .expect("8 bytes"),
            )
        };
        for record in self.buffer.chunks_exact(RECORD_SIZE) {
            let kind = record[kind_at];
            if kind == Kind::Heartbeat as u8 {
                self.last_heartbeat_ns = Some(local_ns(record));
            } else if kind == Kind::Gap as u8 {
                self.gaps_seen += 1;
            }
            self.records_read += 1;
        }
        if let Some(last) = self.buffer.rchunks_exact(RECORD_SIZE).next() {
            self.last_record_ns = Some(local_ns(last));
        }
    }
}

#[pymethods]
impl PyRingReader {
    /// Opens ring `name` (`/dev/shm/twinfeed-<name>`, or an absolute path). Checks the header
    /// (magic, layout and schema versions, record size) and, if given, the fingerprint; a
    /// mismatch raises RingError naming the field and both values. `start` is "oldest" (every
    /// record still in the ring) or "latest" (only new ones). A waiting read polls for
    /// `spin_us` microseconds before it sleeps on a futex.
    #[staticmethod]
    #[pyo3(signature = (name, expected_fingerprint = None, start = "oldest", spin_us = 50.0))]
    fn open(
        py: Python<'_>,
        name: &str,
        expected_fingerprint: Option<String>,
        start: &str,
        spin_us: f64,
    ) -> PyResult<Self> {
        if !(spin_us.is_finite() && (0.0..=1e7).contains(&spin_us)) {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "spin_us must be between 0 and 1e7, got {spin_us}"
            )));
        }
        let start = match start {
            "oldest" => Start::Oldest,
            "latest" => Start::Latest,
            other => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "start must be \"oldest\" or \"latest\", got {other:?}"
                )))
            }
        };
        let options = ReaderOptions {
            expected_fingerprint,
            start,
            spin: Duration::from_secs_f64(spin_us / 1e6),
        };
        let reader = RingReader::open_with(name, &options).map_err(ring_err)?;
        let dtype = PyArrayDescr::new(py, crate::record_dtype(py)?)?.unbind();
        Ok(PyRingReader {
            reader,
            dtype,
            buffer: Vec::new(),
            records_read: 0,
            gaps_seen: 0,
            last_heartbeat_ns: None,
            last_record_ns: None,
        })
    }

    /// Up to `max_rows` records as `(array, lost)` (a read-only numpy array of
    /// `record_dtype()`), waiting up to `timeout_s` for the first one. `lost` counts records
    /// overwritten before this reader got to them; they were lost immediately before the
    /// first returned record (a batch never spans a loss). The array is empty on timeout or
    /// once a closed ring is drained.
    #[pyo3(signature = (max_rows = 65536, timeout_s = 1.0))]
    fn read<'py>(
        &mut self,
        py: Python<'py>,
        max_rows: usize,
        timeout_s: f64,
    ) -> PyResult<(Bound<'py, PyAny>, u64)> {
        let timeout = if timeout_s.is_finite() && timeout_s > 0.0 {
            Duration::from_secs_f64(timeout_s.min(1e9))
        } else {
            Duration::ZERO
        };
        self.buffer.clear();
        // Records already waiting are copied without letting go of the GIL (releasing and
        // taking it back costs more than the copy of a few records).
        let ready = self.reader.read(&mut self.buffer, max_rows);
        // A ring file cut short under the mapping reads as zeros from then on (see
        // twinfeed_ring's guard): raise instead of returning nothing forever.
        self.reader.check().map_err(ring_err)?;
        if ready.records > 0 || ready.lost > 0 || max_rows == 0 || timeout.is_zero() {
            self.observe();
            return Ok((self.records(py)?, ready.lost));
        }
        let deadline = Instant::now() + timeout;
        let outcome = loop {
            let slice = deadline
                .saturating_duration_since(Instant::now())
                .min(WAIT_SLICE);
            let reader = &mut self.reader;
            let buffer = &mut self.buffer;
            let outcome = py.detach(|| reader.read_wait(buffer, max_rows, slice));
            self.reader.check().map_err(ring_err)?;
            if outcome.records > 0
                || outcome.lost > 0
                || Instant::now() >= deadline
                || self.reader.writer_closed()
            {
                break outcome;
            }
            py.check_signals()?;
        };
        self.observe();
        Ok((self.records(py)?, outcome.lost))
    }

    /// Records returned by `read` so far.
    #[getter]
    fn records_read(&self) -> u64 {
        self.records_read
    }

    /// Gap records among them.
    #[getter]
    fn gaps_seen(&self) -> u64 {
        self.gaps_seen
    }

    /// `local_ns` of the newest heartbeat record read, if any.
    #[getter]
    fn last_heartbeat_ns(&self) -> Option<i64> {
        self.last_heartbeat_ns
    }

    /// `local_ns` of the newest record read, if any.
    #[getter]
    fn last_record_ns(&self) -> Option<i64> {
        self.last_record_ns
    }

    /// Waits up to `timeout_s` for records without reading them; True if some are ready.
    #[pyo3(signature = (timeout_s = 1.0))]
    fn wait(&self, py: Python<'_>, timeout_s: f64) -> PyResult<bool> {
        let timeout = Duration::from_secs_f64(timeout_s.clamp(0.0, 1e9));
        let reader = &self.reader;
        let ready = py.detach(|| reader.wait(timeout));
        self.reader.check().map_err(ring_err)?;
        Ok(ready)
    }

    /// Static header fields and the live state (write_seq, writer state, this reader's cursor).
    fn header<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.reader.check().map_err(ring_err)?;
        let info = self.reader.info();
        let d = PyDict::new(py);
        d.set_item("path", self.reader.path().display().to_string())?;
        d.set_item("layout_version", info.layout_version)?;
        d.set_item("schema_version", info.schema_version)?;
        d.set_item("record_size", info.record_size)?;
        d.set_item("capacity", info.capacity)?;
        d.set_item("fingerprint", &info.fingerprint)?;
        d.set_item("writer_pid", info.writer_pid)?;
        d.set_item("created_ns", info.created_ns)?;
        d.set_item("write_seq", self.reader.write_seq())?;
        d.set_item("writer_closed", self.reader.writer_closed())?;
        d.set_item("writer_alive", self.reader.writer_alive())?;
        d.set_item("cursor", self.reader.cursor())?;
        d.set_item("backlog", self.reader.backlog())?;
        d.set_item("lost_total", self.reader.lost_total())?;
        Ok(d)
    }

    /// The ingest's counters from the ring header (see twinfeed_ring::Counter), by name.
    fn counters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (name, value) in self.reader.counters() {
            d.set_item(name, value)?;
        }
        Ok(d)
    }

    /// The ring file was replaced by a new writer (reopen to follow it).
    fn replaced(&self) -> bool {
        self.reader.replaced()
    }

    #[getter]
    fn writer_pid(&self) -> u32 {
        self.reader.writer_pid()
    }

    #[getter]
    fn fingerprint(&self) -> String {
        self.reader.fingerprint().to_string()
    }

    #[getter]
    fn path(&self) -> String {
        self.reader.path().display().to_string()
    }

    #[getter]
    fn capacity(&self) -> u64 {
        self.reader.info().capacity
    }

    #[getter]
    fn cursor(&self) -> u64 {
        self.reader.cursor()
    }

    #[getter]
    fn write_seq(&self) -> u64 {
        self.reader.write_seq()
    }

    #[getter]
    fn backlog(&self) -> u64 {
        self.reader.backlog()
    }

    #[getter]
    fn lost_total(&self) -> u64 {
        self.reader.lost_total()
    }

    #[getter]
    fn writer_closed(&self) -> bool {
        self.reader.writer_closed()
    }

    #[getter]
    fn writer_alive(&self) -> bool {
        self.reader.writer_alive()
    }

    fn __repr__(&self) -> String {
        format!(
            "RingReader(path={:?}, capacity={}, cursor={}, write_seq={}, writer_pid={})",
            self.reader.path().display().to_string(),
            self.reader.info().capacity,
            self.reader.cursor(),
            self.reader.write_seq(),
            self.reader.writer_pid()
        )
    }
}
