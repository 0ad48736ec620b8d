//! `twinfeed.FeatureConfig`.

use std::path::PathBuf;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use twinfeed_features::FeatureConfig as Config;

use crate::error::to_py;

/// Feature configuration. `FeatureConfig.default()` is the documented default; wherever a
/// config is optional, that default applies.
///
/// `FeatureConfig(symbols=["BTCUSDT"], bar_ms=500)` sets fields by name over the default
/// (each name belongs to one section of the TOML file: `[filter]`, `[downsample]`,
/// `[features]` or `[ingest]`); a section can also be given whole, `filter={"symbols": [...]}`.
/// The result is checked like a TOML file (errors name the field).
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

/// Sections of the config file, in file order.
const SECTIONS: [&str; 4] = ["filter", "downsample", "features", "ingest"];

/// Fields left out of the default's TOML (written only when not at their default).
const HIDDEN_FIELDS: [(&str, &str); 2] = [("filter", "max_symbols"), ("filter", "venues")];

fn to_toml_value(key: &str, value: &Bound<'_, PyAny>) -> PyResult<toml::Value> {
    if value.is_instance_of::<PyBool>() {
        return Ok(toml::Value::Boolean(value.extract()?));
    }
    if value.is_instance_of::<PyInt>() {
        return Ok(toml::Value::Integer(value.extract()?));
    }
    if value.is_instance_of::<PyFloat>() {
        return Ok(toml::Value::Float(value.extract()?));
    }
    if value.is_instance_of::<PyString>() {
        return Ok(toml::Value::String(value.extract()?));
    }
    if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        let items = value
            .try_iter()?
            .map(|item| to_toml_value(key, &item?))
            .collect::<PyResult<Vec<_>>>()?;
        return Ok(toml::Value::Array(items));
    }
    Err(PyTypeError::new_err(format!(
        "FeatureConfig: {key}: expected a bool, int, float, str or a list of them, got {}",
        value.get_type().name()?
    )))
}

/// The section of the config file that holds `field`.
fn section_of(defaults: &toml::Table, field: &str) -> Option<&'static str> {
    SECTIONS.into_iter().find(|section| {
        defaults
            .get(*section)
            .and_then(toml::Value::as_table)
            .is_some_and(|table| table.contains_key(field))
            || HIDDEN_FIELDS.contains(&(*section, field))
    })
}

fn known_fields(defaults: &toml::Table) -> String {
    let mut names: Vec<String> = SECTIONS
        .iter()
        .filter_map(|section| defaults.get(*section).and_then(toml::Value::as_table))
        .flat_map(|table| table.keys().cloned())
        .chain(HIDDEN_FIELDS.iter().map(|(_, field)| field.to_string()))
        .collect();
    names.sort();
    names.join(", ")
}

#[pymethods]
impl PyFeatureConfig {
    #[new]
    #[pyo3(signature = (**fields))]
    fn new(fields: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let Some(fields) = fields else {
            return Ok(Self::default());
        };
        let defaults = toml::Table::try_from(Config::default())
            .map_err(|error| PyTypeError::new_err(error.to_string()))?;
        let mut document = toml::Table::new();
        let mut set = |section: &str, field: String, value: toml::Value| {
            document
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .expect("sections are tables")
                .insert(field, value);
        };
        for (key, value) in fields.iter() {
            let key: String = key.extract()?;
            if SECTIONS.contains(&key.as_str()) {
                let section = value.cast::<PyDict>().map_err(|_| {
                    PyTypeError::new_err(format!(
                        "FeatureConfig: {key}: expected a dict of the [{key}] section's fields"
                    ))
                })?;
                for (field, item) in section.iter() {
                    let field: String = field.extract()?;
                    let item = to_toml_value(&format!("{key}.{field}"), &item)?;
                    set(&key, field, item);
                }
                continue;
            }
            let Some(section) = section_of(&defaults, &key) else {
                return Err(to_py(twinfeed_features::Error::config(
                    "FeatureConfig(...)",
                    format!("unknown field {key:?}; known: {}", known_fields(&defaults)),
                )));
            };
            let item = to_toml_value(&key, &value)?;
            set(section, key, item);
        }
        let text =
            toml::to_string(&document).map_err(|error| PyTypeError::new_err(error.to_string()))?;
        Ok(PyFeatureConfig {
            inner: Config::from_toml_str(&text, "FeatureConfig(...)").map_err(to_py)?,
        })
    }

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
