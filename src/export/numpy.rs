//! `numpy.ndarray` results without a numpy dependency: numpy is imported when asked for.

use pyo3::exceptions::PyImportError;
use pyo3::prelude::*;

use crate::Error;

/// `numpy.asarray(obj)`, or [`Error::NumpyUnavailable`] when numpy cannot be imported.
pub(crate) fn asarray<'py>(obj: &Bound<'py, PyAny>) -> Result<Bound<'py, PyAny>, Error> {
    let py = obj.py();
    let numpy = py.import("numpy").map_err(|cause| {
        if cause.is_instance_of::<PyImportError>(py) {
            Error::NumpyUnavailable { cause }
        } else {
            Error::Python(cause)
        }
    })?;
    Ok(numpy.getattr("asarray")?.call1((obj,))?)
}
