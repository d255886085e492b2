//! Shared helpers for the benchmarks: Python data, the raw-FFI floor and a reduction that
//! every Rust variant uses, so that only the access path differs between them.
//!
//! The benches embed CPython like the tests do: run them through `scripts/bench.sh` (or
//! `. scripts/env.sh` first).

#![allow(dead_code)] // each bench binary uses a different subset

use std::ffi::CStr;
use std::mem::MaybeUninit;

use criterion::Criterion;
use pyo3::prelude::*;
use pyo3::{ffi, types::PyModule};

/// Criterion defaults for this suite: short runs (the machine has 2 shared cores). Command
/// line options (`--warm-up-time`, `--measurement-time`, `--sample-size`) still override.
pub fn config(sample_size: usize) -> Criterion {
    Criterion::default()
        .sample_size(sample_size)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(2))
        .without_plots()
}

/// Runs `code` as a module and returns it (the benchmark's Python-side data).
pub fn module<'py>(py: Python<'py>, code: &CStr) -> Bound<'py, PyModule> {
    PyModule::from_code(py, code, c"bench_data.py", c"bench_data").expect("bench data module")
}

/// Attribute `name` of `module`.
pub fn attr<'py>(module: &Bound<'py, PyModule>, name: &str) -> Bound<'py, PyAny> {
    module.getattr(name).expect("bench data attribute")
}

/// Sum with eight independent accumulators: vectorizes, and runs at memory bandwidth for
/// large inputs. Every Rust variant of the sum benchmark uses it, so only the path to the
/// slice differs.
#[inline(always)]
pub fn sum8(xs: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = xs.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for k in 0..8 {
            acc[k] += c[k];
        }
    }
    let mut total: f64 = acc.iter().sum();
    for &x in tail {
        total += x;
    }
    total
}

/// The floor for acquisition: `PyObject_GetBuffer(PyBUF_FULL_RO)` into a `Py_buffer` on
/// the stack, then `PyBuffer_Release`. Returns the buffer pointer so the work is not
/// optimized away.
#[inline(always)]
pub fn raw_acquire_release(obj: &Bound<'_, PyAny>) -> *mut std::ffi::c_void {
    raw_acquire_release_with(obj, ffi::PyBUF_FULL_RO)
}

/// [`raw_acquire_release`] with the request `flags` (`PyBUF_FULL` is the writable floor).
#[inline(always)]
pub fn raw_acquire_release_with(
    obj: &Bound<'_, PyAny>,
    flags: std::ffi::c_int,
) -> *mut std::ffi::c_void {
    let mut view = MaybeUninit::<ffi::Py_buffer>::uninit();
    // SAFETY: `obj` is a live object and this thread is attached (we hold a `Bound`);
    // `view` is writable storage for one `Py_buffer` that does not move until released.
    let rc = unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), view.as_mut_ptr(), flags) };
    assert_eq!(rc, 0, "PyObject_GetBuffer failed");
    // SAFETY: filled by the successful call above, released exactly once, still attached.
    unsafe {
        let buf = view.assume_init_ref().buf;
        ffi::PyBuffer_Release(view.as_mut_ptr());
        buf
    }
}

/// A raw `Py_buffer` held across a benchmark (the floor for element access). Must be
/// dropped on an attached thread.
pub struct RawView {
    view: Box<ffi::Py_buffer>,
}

impl RawView {
    /// `PyObject_GetBuffer(PyBUF_FULL_RO)`.
    pub fn get(obj: &Bound<'_, PyAny>) -> RawView {
        // SAFETY: all-zero bytes are a valid `Py_buffer` (integers and pointers).
        let mut view: Box<ffi::Py_buffer> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: live object, attached thread, boxed view that does not move.
        let rc = unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), &mut *view, ffi::PyBUF_FULL_RO) };
        assert_eq!(rc, 0, "PyObject_GetBuffer failed");
        RawView { view }
    }

    /// Base pointer.
    pub fn ptr(&self) -> *const u8 {
        self.view.buf.cast_const().cast()
    }

    /// Byte length.
    pub fn len_bytes(&self) -> usize {
        self.view.len as usize
    }

    /// Shape (requires a non-NULL shape, which `PyBUF_FULL_RO` guarantees).
    pub fn shape(&self) -> &[isize] {
        // SAFETY: the exporter filled `ndim` shape entries, valid while the view is held.
        unsafe { std::slice::from_raw_parts(self.view.shape, self.view.ndim as usize) }
    }

    /// Byte strides.
    pub fn strides(&self) -> &[isize] {
        // SAFETY: as for `shape` (numpy always fills strides for FULL requests).
        unsafe { std::slice::from_raw_parts(self.view.strides, self.view.ndim as usize) }
    }

    /// The contiguous f64 contents as a slice.
    ///
    /// # Safety
    /// The buffer holds contiguous, aligned f64 and nothing writes it while the slice lives.
    pub unsafe fn as_f64_slice(&self) -> &[f64] {
        // SAFETY: the caller's promise; `len` bytes from `buf` belong to the exporter.
        unsafe { std::slice::from_raw_parts(self.ptr().cast::<f64>(), self.len_bytes() / 8) }
    }
}

impl Drop for RawView {
    fn drop(&mut self) {
        // SAFETY: acquired in `get`, released once; the benches drop it while attached.
        unsafe { ffi::PyBuffer_Release(&mut *self.view) };
    }
}
