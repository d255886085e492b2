//! Releasing acquired buffers from any thread (placeholder interface; helper branch `release`
//! implements it).

use pyo3::{ffi, Python};

/// Releases one acquired `Py_buffer`: at once when this thread is attached to the
/// interpreter, otherwise queued for the next safe point.
pub(crate) fn release(view: Box<ffi::Py_buffer>) {
    if Python::try_attach(|_py| ()).is_some() {
        // SAFETY: placeholder: the view came from a successful PyObject_GetBuffer.
        let mut view = view;
        unsafe { ffi::PyBuffer_Release(&mut *view) };
    } else {
        std::mem::forget(view);
    }
}

/// Called at every acquisition: drains the queue of pending releases.
pub(crate) fn on_acquire(_py: Python<'_>) {}

/// Releases every queued buffer now; returns how many were released.
pub fn flush_releases(_py: Python<'_>) -> usize {
    0
}

/// The number of buffers dropped off the interpreter and not yet released.
pub fn pending_releases() -> usize {
    0
}
