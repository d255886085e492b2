//! Where a buffer's memory comes from, and how it is given back.
//!
//! Every source ends in the same place: an [`Acquired`], which owns one filled `Py_buffer`
//! (boxed, so it never moves: exporters may point `shape` and `strides` into it) that describes
//! the memory exactly as the buffer protocol would, and the function that gives it back. The
//! buffer protocol fills the `Py_buffer` itself ([`buffer_protocol`]); other protocols
//! translate their own description into one. From there a single validation path
//! (`crate::acquire`) serves every source, so every source gets the same checks, the same
//! errors and the same release rules.
//!
//! What a source must guarantee for its `Py_buffer` while the `Acquired` lives: `buf`, `len`,
//! `itemsize`, `readonly`, `ndim`, `format`, `shape`, `strides` and `suboffsets` keep their
//! values, and every pointer among them stays valid (nothing else is trusted: the values are
//! validated by `crate::acquire` and `crate::layout`). The release function is called exactly
//! once, on a thread attached to the main interpreter, or never (after finalization).

pub(crate) mod buffer_protocol;
mod names;

use std::mem::ManuallyDrop;

use pyo3::{ffi, prelude::*};

use crate::error::Error;
use crate::format::FormatError;
use crate::release::{self, ReleaseFn};

pub(crate) use names::{ExporterName, FormatText};

/// The protocol a buffer was acquired through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// The buffer protocol (PEP 3118: `PyObject_GetBuffer`, `__buffer__`).
    BufferProtocol,
    /// DLPack (`__dlpack__`).
    DLPack,
    /// numpy's array interface in C (`__array_struct__`).
    ArrayStruct,
    /// numpy's array interface in Python (`__array_interface__`).
    ArrayInterface,
}

/// What is asked of the exporter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// Read-only access (writable memory is fine too).
    Read,
    /// Writable memory; read-only memory is refused with [`Error::ReadOnly`].
    Write,
}

impl Request {
    pub(crate) fn writable(self) -> bool {
        self == Request::Write
    }
}

/// One acquisition from any source: a filled `Py_buffer` that is given back exactly once.
pub(crate) struct Acquired {
    /// Dropped (handed to [`release`]) only in `Drop`.
    view: ManuallyDrop<Box<ffi::Py_buffer>>,
    release: ReleaseFn,
    source: Source,
    /// The format, copied and decoded at acquisition: the exporter's bytes are never read
    /// again, so an exporter that rewrites them later cannot change what was validated.
    format: FormatText,
    /// The exporter's type name, recorded at acquisition while attached (see [`ExporterName`]).
    exporter: ExporterName,
}

// SAFETY: `Acquired` owns its `Py_buffer`: nothing else reads or writes that struct. Reading
// its integer fields from any thread is plain memory access (they are never written after
// acquisition). The pointers in it (`buf`, `shape`, `strides`, `suboffsets`, `obj`) are only
// dereferenced by code that states its own argument (layout reading at acquisition, element
// access under registry borrows, `obj` only with a `Python` token). Release goes through
// `release::release`, which calls into Python only on an attached thread.
unsafe impl Send for Acquired {}
// SAFETY: shared access only reads the immutable fields (see `Send`).
unsafe impl Sync for Acquired {}

impl Acquired {
    /// Wraps a filled `Py_buffer`. `obj` is the object it came from (for the type name).
    ///
    /// # Safety
    /// `view` was filled by `source` as the module documentation requires, has not been
    /// released, and `release` is the function that releases it.
    #[inline]
    pub(crate) unsafe fn new(
        obj: &Bound<'_, PyAny>,
        view: Box<ffi::Py_buffer>,
        release: ReleaseFn,
        source: Source,
        record_name: bool,
    ) -> Acquired {
        // SAFETY: the caller's promise: a non-NULL format stays valid until release.
        let format = unsafe { FormatText::copy(view.format) };
        let exporter = ExporterName::of(obj, record_name || view.readonly != 0);
        Acquired {
            view: ManuallyDrop::new(view),
            release,
            source,
            format,
            exporter,
        }
    }

    /// Acquires from the first source `obj` supports: the buffer protocol, then (when the
    /// object has no buffer protocol) the other protocols in the documented order.
    #[inline]
    pub(crate) fn new_any(
        obj: &Bound<'_, PyAny>,
        request: Request,
        record_name: bool,
    ) -> Result<Acquired, Error> {
        buffer_protocol::acquire(obj, request, record_name)
    }

    /// The filled `Py_buffer`.
    #[inline]
    pub(crate) fn view(&self) -> &ffi::Py_buffer {
        &self.view
    }

    /// The protocol it came through.
    #[inline]
    pub(crate) fn source(&self) -> Source {
        self.source
    }

    /// The format as the exporter gave it (`"B"` for NULL), decoded lossily if it was not
    /// UTF-8.
    #[inline]
    pub(crate) fn format(&self) -> &str {
        self.format.as_str()
    }

    /// The format's bytes (as [`format`](Acquired::format)).
    #[inline]
    pub(crate) fn format_bytes(&self) -> &[u8] {
        self.format.as_bytes()
    }

    /// The format, or the error for an exporter whose format was not ASCII.
    #[inline]
    pub(crate) fn checked_format(&self) -> Result<&str, FormatError> {
        self.format.checked()
    }

    /// Whether the exporter says the memory is read-only.
    #[inline]
    pub(crate) fn is_readonly(&self) -> bool {
        self.view.readonly != 0
    }

    /// The exporter's type name, as recorded at acquisition.
    pub(crate) fn exporter_name(&self) -> String {
        self.exporter.to_string()
    }

    /// Records the exporter's type name if acquisition skipped it (writable buffers of heap
    /// types), for an error message about to be built. `obj` is the object acquired.
    #[cold]
    pub(crate) fn record_name(&mut self, obj: &Bound<'_, PyAny>) {
        if matches!(self.exporter, ExporterName::Unrecorded) {
            self.exporter = ExporterName::of(obj, true);
        }
    }

    /// The exporting object (`view.obj`), or `None` if the exporter left it NULL.
    pub(crate) fn obj<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        let ptr = self.view.obj;
        // SAFETY: a non-NULL `obj` is a strong reference the view holds until release, so
        // taking another strong reference to it is sound while we are attached (`py`).
        unsafe { Bound::from_borrowed_ptr_or_opt(py, ptr) }
    }
}

impl Drop for Acquired {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `view` is taken once, here, and never used again.
        let view = unsafe { ManuallyDrop::take(&mut self.view) };
        release::release(view, self.release);
    }
}

impl std::fmt::Debug for Acquired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.view();
        f.debug_struct("Acquired")
            .field("source", &self.source)
            .field("format", &self.format())
            .field("buf", &v.buf)
            .field("len", &v.len)
            .field("itemsize", &v.itemsize)
            .field("ndim", &v.ndim)
            .field("readonly", &v.readonly)
            .finish_non_exhaustive()
    }
}
