//! Shared helpers for the integration tests: an embedded interpreter with the usual exporters
//! imported, and conversions of Python's own answers into Rust values.
#![allow(dead_code)]

use std::ffi::CString;

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// A namespace with numpy, ctypes, array, mmap, struct and _testbuffer imported.
pub fn namespace(py: Python<'_>) -> Bound<'_, PyDict> {
    let g = PyDict::new(py);
    run(
        py,
        &g,
        "import numpy as np, ctypes, array, mmap, struct, sys\n\
         from numpy.lib.stride_tricks import as_strided\n\
         import _testbuffer\n",
    );
    g
}

/// Evaluates a Python expression in `g`.
pub fn eval<'py>(g: &Bound<'py, PyDict>, expr: &str) -> Bound<'py, PyAny> {
    let code = CString::new(expr).unwrap();
    g.py()
        .eval(&code, Some(g), None)
        .unwrap_or_else(|e| panic!("evaluating {expr:?}: {e}"))
}

/// Executes Python statements in `g`.
pub fn run(py: Python<'_>, g: &Bound<'_, PyDict>, code: &str) {
    let c = CString::new(code).unwrap();
    py.run(&c, Some(g), None)
        .unwrap_or_else(|e| panic!("running {code:?}: {e}"));
}

/// Python's own bytes of `x` in logical C order: `memoryview(x).tobytes()`, which CPython
/// computes for any layout (strides, suboffsets) and any format.
pub fn c_bytes(g: &Bound<'_, PyDict>, x: &Bound<'_, PyAny>) -> Vec<u8> {
    g.set_item("_x", x).unwrap();
    eval(g, "memoryview(_x).tobytes(order='C')")
        .extract()
        .unwrap()
}

/// The raw bytes of a slice of plain-old-data elements.
pub fn as_bytes<T: Copy>(v: &[T]) -> Vec<u8> {
    // SAFETY: test helper for element types without padding (integers, floats, bool,
    // complex, byte-order types); reading their initialized bytes is sound.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
        .to_vec()
}

/// Whether a handle dropped on a thread attached to the interpreter is released at once. It
/// is everywhere except in a stable-ABI build (pyo3's `abi3-py311`) running on CPython 3.11,
/// where pybuf cannot tell an attached thread from a detached one with limited-API calls and
/// queues every drop (see `pybuf::flush_releases` and the release module's documentation).
pub fn attached_drops_release_at_once(py: Python<'_>) -> bool {
    !(cfg!(Py_LIMITED_API) && py.version_info() < (3, 12))
}

/// Completes the releases of handles just dropped on this attached thread, so that the
/// exporter's reference and export counts can be compared with what they were: nothing to do
/// where such drops release at once, `flush_releases` where they are queued (see
/// [`attached_drops_release_at_once`]). The caller's own checks then verify the documented
/// behaviour of each case. (Other tests of the same binary acquire and drop concurrently, so
/// the process-wide queue's length is not asserted here; `tests/release.rs` checks it exactly,
/// one scenario per child process.)
pub fn finish_attached_drops(py: Python<'_>) {
    if !attached_drops_release_at_once(py) {
        pybuf::flush_releases(py);
    }
}
