//! `twinfeed._features`: the Python batch binding of the feature crate. Thin wrappers only: no
//! feature logic lives here (it would then differ from the live ingest).

mod arrow;
mod config;
mod error;
mod ring;
mod run;

use std::collections::BTreeMap;
use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use twinfeed_features::capture::{CaptureLine, CaptureReader};
use twinfeed_features::record::{
    GapReason, Kind, StatusEvent, FIELDS, FLAGS, RECORD_SIZE, SCHEMA_VERSION,
};

/// `(name, numpy type string, byte offset)` of every record field, in layout order.
#[pyfunction]
fn record_fields() -> Vec<(&'static str, &'static str, usize)> {
    FIELDS
        .iter()
        .map(|f| (f.name, f.ty.numpy(), f.offset))
        .collect()
}

/// The numpy dtype of one record (built from the crate's layout, never spelled out in Python).
#[pyfunction]
pub(crate) fn record_dtype(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let numpy = py.import("numpy")?;
    let spec = PyDict::new(py);
    spec.set_item("names", FIELDS.iter().map(|f| f.name).collect::<Vec<_>>())?;
    spec.set_item(
        "formats",
        FIELDS.iter().map(|f| f.ty.numpy()).collect::<Vec<_>>(),
    )?;
    spec.set_item(
        "offsets",
        FIELDS.iter().map(|f| f.offset).collect::<Vec<_>>(),
    )?;
    spec.set_item("itemsize", RECORD_SIZE)?;
    numpy.getattr("dtype")?.call1((spec,))
}

/// The Arrow schema of feature batches.
#[pyfunction]
#[pyo3(name = "arrow_schema")]
fn feature_arrow_schema() -> pyo3_arrow::PySchema {
    pyo3_arrow::PySchema::new(arrow::schema())
}

/// Record kind codes by name.
#[pyfunction]
fn record_kinds() -> Vec<(&'static str, u8)> {
    Kind::ALL.iter().map(|k| (k.name(), *k as u8)).collect()
}

/// The record codes by table and name: `kind`, `flag` (bits of quote/trade/book records),
/// `gap_reason` (`flags` of gap records) and `status_event` (`flags` of status records).
#[pyfunction]
fn record_codes() -> BTreeMap<&'static str, Vec<(&'static str, u8)>> {
    BTreeMap::from([
        (
            "kind",
            Kind::ALL.iter().map(|k| (k.name(), *k as u8)).collect(),
        ),
        ("flag", FLAGS.to_vec()),
        (
            "gap_reason",
            GapReason::ALL
                .iter()
                .map(|g| (g.name(), *g as u8))
                .collect(),
        ),
        (
            "status_event",
            StatusEvent::ALL
                .iter()
                .map(|e| (e.name(), *e as u8))
                .collect(),
        ),
    ])
}

/// The first non-blank line of a capture file (plain, gzip or zstd, read as the pipeline reads
/// it): (its 1-based line number, its bytes without the newline); None when the file holds no
/// complete non-blank line.
#[pyfunction]
fn first_capture_line(
    py: Python<'_>,
    path: PathBuf,
) -> PyResult<Option<(u64, Bound<'_, PyBytes>)>> {
    let mut reader = CaptureReader::open(&path).map_err(error::to_py)?;
    while let Some(line) = reader.next_line().map_err(error::to_py)? {
        match line {
            CaptureLine::Complete(line) if !line.iter().all(u8::is_ascii_whitespace) => {
                let bytes = PyBytes::new(py, line);
                return Ok(Some((reader.line_number(), bytes)));
            }
            CaptureLine::Complete(_) => continue,
            CaptureLine::Torn(_) => break,
        }
    }
    Ok(None)
}

/// Line `number` (1-based, as records count them within a file) of a capture file (plain, gzip
/// or zstd), without its newline; a torn last line too. None past the end.
#[pyfunction]
fn capture_line(
    py: Python<'_>,
    path: PathBuf,
    number: u64,
) -> PyResult<Option<Bound<'_, PyBytes>>> {
    let mut reader = CaptureReader::open(&path).map_err(error::to_py)?;
    loop {
        // Every line the reader returns, complete or torn, is the next number.
        let this = reader.line_number() + 1;
        match reader.next_line().map_err(error::to_py)? {
            Some(CaptureLine::Complete(bytes) | CaptureLine::Torn(bytes)) if this == number => {
                return Ok(Some(PyBytes::new(py, bytes)));
            }
            Some(_) => {}
            None => return Ok(None),
        }
    }
}

/// The last complete line of a capture file (plain, gzip or zstd) whose frame (the text after
/// the receive stamp) starts with `prefix`: (its 1-based line number, its bytes without the
/// newline), or None. One pass; a line is compared only at its start.
#[pyfunction]
fn last_capture_line_with<'py>(
    py: Python<'py>,
    path: PathBuf,
    prefix: &[u8],
) -> PyResult<Option<(u64, Bound<'py, PyBytes>)>> {
    let mut reader = CaptureReader::open(&path).map_err(error::to_py)?;
    let mut found: Option<(u64, Vec<u8>)> = None;
    while let Some(line) = reader.next_line().map_err(error::to_py)? {
        if let CaptureLine::Complete(line) = line {
            let frame = line
                .iter()
                .position(|&b| b == b' ')
                .map_or(&line[..0], |i| &line[i + 1..]);
            if frame.starts_with(prefix) {
                let line = line.to_vec();
                found = Some((reader.line_number(), line));
            }
        }
    }
    Ok(found.map(|(number, line)| (number, PyBytes::new(py, &line))))
}

/// How many lines a capture file holds (plain, gzip or zstd; a torn last line counts, as the
/// pipeline counts it).
#[pyfunction]
fn capture_line_count(path: PathBuf) -> PyResult<u64> {
    let mut reader = CaptureReader::open(&path).map_err(error::to_py)?;
    while reader.next_line().map_err(error::to_py)?.is_some() {}
    Ok(reader.line_number())
}

#[pymodule]
fn _features(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", twinfeed_features::VERSION)?;
    m.add(
        "BUILD_PROFILE",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    )?;
    m.add(
        "GIT_REVISION",
        option_env!("TWINFEED_GIT_REVISION").unwrap_or("unknown"),
    )?;
    m.add("SCHEMA_VERSION", SCHEMA_VERSION)?;
    m.add("RECORD_SIZE", RECORD_SIZE)?;
    m.add("TwinfeedError", py.get_type::<error::TwinfeedError>())?;
    m.add("ConfigError", py.get_type::<error::ConfigError>())?;
    m.add("CaptureError", py.get_type::<error::CaptureError>())?;
    m.add("RingError", py.get_type::<error::RingError>())?;
    m.add_class::<config::PyFeatureConfig>()?;
    m.add_class::<run::PyFeatureRun>()?;
    m.add_class::<run::PyPipeline>()?;
    m.add_class::<ring::PyRingReader>()?;
    m.add_function(wrap_pyfunction!(record_fields, m)?)?;
    m.add_function(wrap_pyfunction!(record_dtype, m)?)?;
    m.add_function(wrap_pyfunction!(feature_arrow_schema, m)?)?;
    m.add_function(wrap_pyfunction!(record_kinds, m)?)?;
    m.add_function(wrap_pyfunction!(record_codes, m)?)?;
    m.add_function(wrap_pyfunction!(first_capture_line, m)?)?;
    m.add_function(wrap_pyfunction!(capture_line, m)?)?;
    m.add_function(wrap_pyfunction!(capture_line_count, m)?)?;
    m.add_function(wrap_pyfunction!(last_capture_line_with, m)?)?;
    Ok(())
}
