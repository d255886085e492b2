//! The buffer protocol (PEP 3118): `PyObject_GetBuffer` in, `PyBuffer_Release` out.

use std::cell::RefCell;

use pyo3::{ffi, prelude::*, PyErr};

use super::{names::type_name, Filled, Request, Source};
use crate::error::Error;
use crate::release;

/// Requests a buffer: `PyBUF_FULL_RO` (strides, suboffsets, format), plus `PyBUF_WRITABLE`
/// for [`Request::Write`].
///
/// A writable request on read-only memory fails with [`Error::ReadOnly`], whether the exporter
/// refuses it (`bytes`) or hands out read-only memory anyway (exporters that ignore request
/// flags).
#[inline(always)]
pub(crate) fn acquire(obj: &Bound<'_, PyAny>, request: Request) -> Result<Filled, Error> {
    let writable = request.writable();
    let acquired = match get_buffer(obj, writable) {
        Ok(acquired) => acquired,
        Err(err) => return Err(refine_refusal(obj, err, writable)),
    };
    if writable && acquired.view().readonly != 0 {
        return Err(read_only(obj));
    }
    Ok(acquired)
}

/// A refused writable request on memory that a read request shows to be read-only means
/// "read-only": the user gets that error instead of the exporter's.
#[cold]
fn refine_refusal(obj: &Bound<'_, PyAny>, err: Error, writable: bool) -> Error {
    match err {
        Error::Refused { .. }
            if writable && get_buffer(obj, false).is_ok_and(|probe| probe.view().readonly != 0) =>
        {
            read_only(obj)
        }
        err => err,
    }
}

#[cold]
fn read_only(obj: &Bound<'_, PyAny>) -> Error {
    Error::ReadOnly {
        type_name: type_name(obj),
    }
}

#[inline(always)]
fn get_buffer(obj: &Bound<'_, PyAny>, writable: bool) -> Result<Filled, Error> {
    let py = obj.py();
    release::on_acquire(py);
    let flags = if writable {
        ffi::PyBUF_FULL
    } else {
        ffi::PyBUF_FULL_RO
    };
    let mut view = zeroed_view();
    // SAFETY: `obj` is a live object (we hold a reference and are attached); `view` is a
    // writable `Py_buffer` that does not move while the buffer is held (it is boxed).
    let rc = unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), &mut *view, flags) };
    if rc != 0 {
        recycle(view); // never filled: nothing to release
        return Err(refused(obj, writable));
    }
    // SAFETY: `view` was filled by a successful `PyObject_GetBuffer`, which keeps its fields
    // and pointers valid until `PyBuffer_Release`, the release function given here.
    Ok(unsafe {
        Filled::new(
            py,
            view,
            release::release_buffer_protocol,
            Source::BufferProtocol,
        )
    })
}

/// The error for a failed `PyObject_GetBuffer`.
#[cold]
fn refused(obj: &Bound<'_, PyAny>, writable: bool) -> Error {
    let py = obj.py();
    // SAFETY: `obj` is a live object and we are attached.
    let supports = unsafe { ffi::PyObject_CheckBuffer(obj.as_ptr()) } != 0;
    let type_name = type_name(obj);
    // An exporter may fail without setting an exception: say so rather than panic.
    let cause = PyErr::take(py).unwrap_or_else(|| {
        pyo3::exceptions::PyBufferError::new_err(format!(
            "'{type_name}' failed a buffer request without setting an exception"
        ))
    });
    if supports {
        Error::Refused {
            type_name,
            writable,
            cause,
        }
    } else {
        Error::NotABuffer { type_name }
    }
}

/// At most this many spare `Py_buffer` allocations are kept per thread.
const SPARE_VIEWS: usize = 16;

thread_local! {
    /// Released `Py_buffer` allocations kept for reuse by this thread's next acquisitions:
    /// acquisition is on the hot path, and a pop is far cheaper than `malloc` + `free`.
    /// (Boxes, not values: each is handed out as the stable address of one acquisition.)
    #[allow(clippy::vec_box)]
    static SPARE: RefCell<Vec<Box<ffi::Py_buffer>>> = const { RefCell::new(Vec::new()) };
}

/// Keeps a released (or never filled) `Py_buffer` allocation for reuse, or frees it when this
/// thread already keeps enough or is exiting. Nothing in it is read again before
/// [`zeroed_view`] clears it.
#[inline]
pub(crate) fn recycle(view: Box<ffi::Py_buffer>) {
    let mut view = Some(view);
    let _ = SPARE.try_with(|spare| {
        if let Ok(mut spare) = spare.try_borrow_mut() {
            if spare.len() < SPARE_VIEWS {
                spare.extend(view.take());
            }
        }
    });
    drop(view); // not kept: freed
}

/// A heap-allocated, all-zero `Py_buffer` (zeroed so that fields a careless exporter leaves
/// unset read as NULL/0, never as uninitialized memory): a spare one of this thread when
/// there is one, else a fresh one.
///
/// A fresh one is allocated with `malloc` and zeroed in place rather than with
/// `Box::new(zeroed())`, which compiles to `calloc`: glibc's `calloc` bypasses the per-thread
/// cache and costs about 200 instructions per acquisition, `malloc` + an 80-byte fill about 40.
#[inline]
pub(crate) fn zeroed_view() -> Box<ffi::Py_buffer> {
    let spare = SPARE
        .try_with(|spare| spare.try_borrow_mut().ok().and_then(|mut s| s.pop()))
        .ok()
        .flatten();
    if let Some(mut view) = spare {
        // SAFETY: all zero bytes is a valid `Py_buffer` (integers and pointers), and the box
        // is ours alone (it was released before it was recycled).
        unsafe { std::ptr::write_bytes(&mut *view as *mut ffi::Py_buffer, 0, 1) };
        return view;
    }
    let mut view = Box::<ffi::Py_buffer>::new_uninit();
    // SAFETY: `view` is a fresh allocation of one `Py_buffer`; writing zero bytes over all of
    // it initializes it, as `Py_buffer` is a plain C struct of integers and pointers, for
    // which all zero bytes is a valid (empty) value.
    // The volatile store of the first byte keeps LLVM from folding "fresh allocation, then
    // memset 0" back into `__rust_alloc_zeroed` (calloc).
    unsafe {
        std::ptr::write_volatile(view.as_mut_ptr().cast::<u8>(), 0);
        view.as_mut_ptr().write_bytes(0, 1);
        view.assume_init()
    }
}
