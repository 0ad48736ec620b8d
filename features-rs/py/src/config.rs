//! `twinfeed.FeatureConfig`.

use std::path::PathBuf;

use pyo3::prelude::*;
use twinfeed_features::FeatureConfig as Config;

use crate::error::to_py;

/// Feature configuration. `FeatureConfig.default()` is the documented default; wherever a
/// config is optional, that default applies.
#[pyclass(
    name = "FeatureConfig",
    module = "twinfeed._features",
    frozen,
    from_py_object
)]
#[derive(Clone)]
pub struct PyFeatureConfig {
    pub inner: Config,
}

#[pymethods]
impl PyFeatureConfig {
    #[staticmethod]
    fn default() -> Self {
        PyFeatureConfig {
            inner: Config::default(),
        }
    }

    /// Reads a TOML file; errors name the file and the field.
    #[staticmethod]
    fn from_toml(path: PathBuf) -> PyResult<Self> {
        Ok(PyFeatureConfig {
            inner: Config::from_toml_file(&path).map_err(to_py)?,
        })
    }

    /// Parses TOML text; `origin` names it in errors.
    #[staticmethod]
    #[pyo3(signature = (text, origin = "<string>"))]
    fn from_toml_str(text: &str, origin: &str) -> PyResult<Self> {
        Ok(PyFeatureConfig {
            inner: Config::from_toml_str(text, origin).map_err(to_py)?,
        })
    }

    /// sha256 over (record schema version, crate version, canonical config).
    #[getter]
    fn fingerprint(&self) -> String {
        self.inner.fingerprint()
    }

    /// The fingerprinted sections as canonical JSON.
    #[getter]
    fn canonical_json(&self) -> String {
        self.inner.canonical_json()
    }

    #[getter]
    fn symbols(&self) -> Vec<String> {
        self.inner.filter.symbols.clone()
    }

    #[getter]
    fn streams(&self) -> Vec<String> {
        self.inner.filter.streams.clone()
    }

    #[getter]
    fn heartbeat_ms(&self) -> u64 {
        self.inner.ingest.heartbeat_ms
    }

    #[getter]
    fn ingest_url(&self) -> String {
        self.inner.ingest.url.clone()
    }

    #[getter]
    fn market(&self) -> String {
        self.inner.ingest.market.clone()
    }

    /// The whole config as TOML (including the non-fingerprinted `[ingest]` section).
    fn to_toml(&self) -> String {
        self.inner.to_toml()
    }

    fn __eq__(&self, other: &Self) -> bool {
        self.inner == other.inner
    }

    fn __repr__(&self) -> String {
        format!(
            "FeatureConfig(fingerprint={:?})",
            &self.inner.fingerprint()[..16]
        )
    }
}
