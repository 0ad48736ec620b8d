//! Maps crate errors to the `twinfeed.TwinfeedError` exception tree.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::PyErr;

create_exception!(
    twinfeed,
    TwinfeedError,
    PyException,
    "Root of every twinfeed error."
);
create_exception!(
    twinfeed,
    ConfigError,
    TwinfeedError,
    "A configuration file or value is invalid."
);
create_exception!(
    twinfeed,
    CaptureError,
    TwinfeedError,
    "A capture file cannot be read."
);
create_exception!(
    twinfeed,
    RingError,
    TwinfeedError,
    "A shared-memory ring cannot be used."
);

pub fn to_py(error: twinfeed_features::Error) -> PyErr {
    use twinfeed_features::Error;
    let message = error.to_string();
    match error {
        Error::Config { .. } => ConfigError::new_err(message),
        Error::Io { .. } | Error::Capture { .. } => CaptureError::new_err(message),
    }
}
