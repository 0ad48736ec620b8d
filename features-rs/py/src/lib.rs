//! `twinfeed._features`: the Python batch binding of the feature crate. Thin wrappers only: no
//! feature logic lives here (it would then differ from the live ingest).

mod arrow;
mod config;
mod error;
mod ring;
mod run;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use twinfeed_features::record::{Kind, FIELDS, RECORD_SIZE, SCHEMA_VERSION};

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
    Ok(())
}
