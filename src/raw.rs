//! One acquisition of the buffer protocol: `PyObject_GetBuffer` in, `PyBuffer_Release` out.
//!
//! [`Acquired`] owns exactly one successfully filled `Py_buffer`. It lives in a `Box` because
//! exporters may point `shape`/`strides` into the `Py_buffer` itself (`PyBuffer_FillInfo`
//! does), so it must never move. Dropping it hands the box to [`release`](crate::release),
//! which releases it at once or later but exactly once; a failed request never produces an
//! `Acquired`, so it is never released.

use std::cell::RefCell;
use std::ffi::CStr;

use pyo3::{ffi, prelude::*, PyErr};

use crate::error::Error;
use crate::format::FormatError;
use crate::release;

/// An acquired `Py_buffer`.
pub(crate) struct Acquired {
    /// `Some` from a successful `PyObject_GetBuffer` until `Drop` hands it to `release`.
    view: Option<Box<ffi::Py_buffer>>,
}

// SAFETY: `Acquired` owns the view: nothing else reads or writes the `Py_buffer` struct.
// Reading its fields from any thread is plain memory access (the exporter filled them before
// `PyObject_GetBuffer` returned and never changes them while the view is held), and release
// goes through `release::release`, which only calls into Python on an attached thread.
unsafe impl Send for Acquired {}
// SAFETY: shared access only reads the immutable fields (see `Send`).
unsafe impl Sync for Acquired {}

impl Acquired {
    /// Requests a buffer: `PyBUF_FULL_RO` (strides, suboffsets, format), plus
    /// `PyBUF_WRITABLE` when `writable`.
    ///
    /// A writable request on read-only memory fails with [`Error::ReadOnly`], whether the
    /// exporter refuses it (`bytes`) or hands out read-only memory anyway (exporters that
    /// ignore request flags).
    #[inline]
    pub fn new(obj: &Bound<'_, PyAny>, writable: bool) -> Result<Acquired, Error> {
        let acquired = Self::request(obj, writable).map_err(|err| match err {
            Error::Refused { .. } if writable && Self::is_read_only_exporter(obj) => {
                Error::ReadOnly {
                    type_name: type_name(obj),
                }
            }
            err => err,
        })?;
        if writable && acquired.is_readonly() {
            return Err(Error::ReadOnly {
                type_name: type_name(obj),
            });
        }
        Ok(acquired)
    }

    /// After a refused writable request: does a read request show read-only memory? (Then
    /// the refusal meant "read-only", and the user gets that error instead of the exporter's.)
    fn is_read_only_exporter(obj: &Bound<'_, PyAny>) -> bool {
        Self::request(obj, false).is_ok_and(|probe| probe.is_readonly())
    }

    #[inline]
    fn request(obj: &Bound<'_, PyAny>, writable: bool) -> Result<Acquired, Error> {
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
            let cause = PyErr::fetch(py);
            // SAFETY: `obj` is a live object and we are attached.
            let supports = unsafe { ffi::PyObject_CheckBuffer(obj.as_ptr()) } != 0;
            let type_name = type_name(obj);
            return Err(if supports {
                Error::Refused {
                    type_name,
                    writable,
                    cause,
                }
            } else {
                Error::NotABuffer { type_name }
            });
        }
        Ok(Acquired { view: Some(view) })
    }

    /// The filled `Py_buffer`.
    #[inline]
    pub fn view(&self) -> &ffi::Py_buffer {
        self.view
            .as_deref()
            .expect("an Acquired holds its view until dropped")
    }

    /// The format string, verbatim; `"B"` when the exporter gave none.
    #[inline]
    pub fn format(&self) -> Result<&str, FormatError> {
        let ptr = self.view().format;
        if ptr.is_null() {
            return Ok("B");
        }
        // Fast path for the usual short ASCII string: one pass finds the NUL and checks ASCII.
        let mut len = 0;
        loop {
            // SAFETY: a non-NULL format is a NUL-terminated string owned by the exporter, valid
            // while the buffer is held (which outlives `&self`); we stop at its NUL.
            let byte = unsafe { *ptr.add(len) } as u8;
            if byte == 0 {
                // SAFETY: `len` bytes before the NUL were read above, all ASCII.
                let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
                // SAFETY: ASCII is valid UTF-8.
                return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
            }
            if !byte.is_ascii() {
                break;
            }
            len += 1;
        }
        // SAFETY: as above: NUL-terminated and valid while the buffer is held.
        let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
        std::str::from_utf8(bytes).map_err(|e| FormatError {
            format: String::from_utf8_lossy(bytes).into_owned(),
            position: e.valid_up_to(),
            expected: "an ASCII format string".into(),
            found: None,
        })
    }

    /// Whether the exporter says the memory is read-only.
    #[inline]
    pub fn is_readonly(&self) -> bool {
        self.view().readonly != 0
    }

    /// The exporting object (`view.obj`), or `None` if the exporter left it NULL.
    pub fn obj<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        let ptr = self.view().obj;
        // SAFETY: a non-NULL `obj` is a strong reference the view holds until release, so
        // taking another strong reference to it is sound while we are attached (`py`).
        unsafe { Bound::from_borrowed_ptr_or_opt(py, ptr) }
    }
}

impl Acquired {
    /// The exporting object's type name (`numpy.ndarray`, `bytes`), read from the type's
    /// `tp_name` without attaching to the interpreter, so errors can be built on any thread.
    pub fn exporter_type_name(&self) -> String {
        let obj = self.view().obj;
        if obj.is_null() {
            return "<unknown exporter>".to_string();
        }
        // SAFETY: the view holds a strong reference to `obj`, which keeps it and its type
        // alive; `tp_name` is a NUL-terminated string owned by the type object.
        let name = unsafe { CStr::from_ptr((*ffi::Py_TYPE(obj)).tp_name) };
        let name = name.to_string_lossy();
        name.strip_prefix("builtins.").unwrap_or(&name).to_string()
    }
}

impl Drop for Acquired {
    fn drop(&mut self) {
        if let Some(view) = self.view.take() {
            release::release(view, release::release_buffer_protocol);
        }
    }
}

impl std::fmt::Debug for Acquired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.view();
        f.debug_struct("Acquired")
            .field("buf", &v.buf)
            .field("len", &v.len)
            .field("itemsize", &v.itemsize)
            .field("ndim", &v.ndim)
            .field("readonly", &v.readonly)
            .finish_non_exhaustive()
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

/// Keeps a released `Py_buffer` allocation for reuse (or frees it when this thread already
/// keeps enough, or is exiting). The caller has released the buffer: nothing in it is used
/// again before [`zeroed_view`] clears it.
#[inline]
pub(crate) fn recycle(view: Box<ffi::Py_buffer>) {
    let mut view = Some(view);
    let _ = SPARE.try_with(|spare| {
        if let Ok(mut spare) = spare.try_borrow_mut() {
            if spare.len() < SPARE_VIEWS {
                spare.push(view.take().expect("taken once"));
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
fn zeroed_view() -> Box<ffi::Py_buffer> {
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

/// `numpy.ndarray`, `bytes`, `mymodule.Point`: the qualified name without `builtins.`.
pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    use pyo3::types::PyTypeMethods;
    let name = obj
        .get_type()
        .fully_qualified_name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "<unknown type>".to_string());
    name.strip_prefix("builtins.")
        .map(str::to_string)
        .unwrap_or(name)
}
