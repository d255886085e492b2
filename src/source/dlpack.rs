//! DLPack (`__dlpack__`): not written yet.

use pyo3::prelude::*;

use super::{Acquired, Request};
use crate::error::Error;

/// Acquires through `__dlpack__`; `None` when `obj` has no such attribute.
pub(crate) fn acquire(
    obj: &Bound<'_, PyAny>,
    request: Request,
    record_name: bool,
) -> Option<Result<Acquired, Error>> {
    let _ = (obj, request, record_name);
    None
}
