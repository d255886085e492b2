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
//! What a source must guarantee for its `Py_buffer`: while the `Acquired` lives, `buf`, `len`,
//! `itemsize`, `readonly`, `ndim` and `obj` keep their values and `format` stays a valid
//! string; `shape`, `strides` and `suboffsets` are valid at least until the acquisition has
//! been validated (the layout is read then, while attached, and copied; only the buffer
//! protocol's and the other protocols' own storage outlive that, which the numpy source's
//! do not — see [`numpy`]). Nothing else is trusted: the values are validated by
//! `crate::acquire` and `crate::layout`. The release function is called exactly once, on a
//! thread attached to the main interpreter, or never (after finalization).

pub(crate) mod array_interface;
pub(crate) mod buffer_protocol;
pub(crate) mod dlpack;
mod names;
pub(crate) mod numpy;

use std::mem::ManuallyDrop;

use pyo3::{ffi, prelude::*};

use crate::error::Error;
use crate::format::{self, FormatError, ItemLayout};
use crate::release::{self, ReleaseFn};

use names::ExporterName;
pub(crate) use names::{type_name, FormatText};

/// The protocol a buffer was acquired through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// The buffer protocol (PEP 3118: `PyObject_GetBuffer`, `__buffer__`).
    BufferProtocol,
    /// DLPack (`__dlpack__`).
    DLPack,
    /// A `numpy.ndarray` of a built-in numeric or bool dtype in native byte order, read from
    /// numpy's array struct directly (the fast path for numpy arrays; the result is the same
    /// as through the buffer protocol, which numpy arrays of other dtypes and numpy
    /// subclasses go through).
    Numpy,
    /// numpy's array interface in C (`__array_struct__`).
    ArrayStruct,
    /// numpy's array interface in Python (`__array_interface__`).
    ArrayInterface,
}

/// `Py_buffer.len` for a source that fills the view itself: items × itemsize. A negative or
/// overflowing shape gives 0, which the shared layout checks never get to compare: they
/// report the shape first. A byte length beyond `isize::MAX` is the error returned.
pub(crate) fn byte_len(
    shape: &[ffi::Py_ssize_t],
    itemsize: ffi::Py_ssize_t,
) -> Result<ffi::Py_ssize_t, String> {
    let items = shape
        .iter()
        .try_fold(1isize, |n, &d| if d < 0 { None } else { n.checked_mul(d) });
    match items {
        None => Ok(0),
        Some(items) => items.checked_mul(itemsize).ok_or_else(|| {
            format!("shape {shape:?} of {itemsize}-byte items holds more than isize::MAX bytes")
        }),
    }
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

/// A filled `Py_buffer` from any source, given back exactly once (when dropped), before
/// anything is recorded about it: the acquisition fast path validates this and records only
/// once the checks pass ([`Filled::record`]).
pub(crate) struct Filled {
    /// Handed to [`release`] only in `Drop`.
    view: ManuallyDrop<Box<ffi::Py_buffer>>,
    release: ReleaseFn,
    source: Source,
}

// SAFETY: `Filled` owns its `Py_buffer`: nothing else reads or writes that struct. Reading its
// integer fields from any thread is plain memory access (they are never written after
// acquisition). The pointers in it (`buf`, `format`, `shape`, `strides`, `suboffsets`, `obj`)
// are only dereferenced by code that states its own argument (layout reading and format
// copying at acquisition, while attached; element access under registry borrows; `obj` only
// with a `Python` token). Release goes through `release::release`, which calls into Python
// only on an attached thread.
unsafe impl Send for Filled {}
// SAFETY: shared access only reads the immutable fields (see `Send`).
unsafe impl Sync for Filled {}

impl Filled {
    /// Wraps a filled `Py_buffer`. Tells the release machinery about the acquisition first
    /// (`release::on_acquire`: it records the interpreter that releases must run on), so no
    /// source can forget it.
    ///
    /// # Safety
    /// `view` was filled by `source` as the module documentation requires, has not been
    /// released, and `release` is the function that releases it.
    #[inline(always)]
    pub(crate) unsafe fn new(
        py: Python<'_>,
        view: Box<ffi::Py_buffer>,
        release: ReleaseFn,
        source: Source,
    ) -> Filled {
        release::on_acquire(py);
        Filled {
            view: ManuallyDrop::new(view),
            release,
            source,
        }
    }

    /// Acquires from the first source `obj` supports: the buffer protocol, then, only when
    /// the object has no buffer protocol at all, `__dlpack__`, `__array_struct__` and
    /// `__array_interface__`, in that order. (An object whose buffer protocol refuses the
    /// request is tried through `__dlpack__` as well.)
    #[inline(always)]
    pub(crate) fn new_any(obj: &Bound<'_, PyAny>, request: Request) -> Result<Filled, Error> {
        match buffer_protocol::acquire(obj, request) {
            Ok(filled) => Ok(filled),
            Err(err) => Filled::after_buffer_protocol(obj, request, err),
        }
    }

    /// What follows a failed buffer request: the other protocols for an object without the
    /// buffer protocol, DLPack for one whose buffer protocol refused.
    #[cold]
    #[inline(never)]
    fn after_buffer_protocol(
        obj: &Bound<'_, PyAny>,
        request: Request,
        err: Error,
    ) -> Result<Filled, Error> {
        match err {
            Error::NotABuffer { type_name } => {
                // A class is never an array, though it has the protocols' attributes (as
                // descriptors).
                if obj.is_instance_of::<pyo3::types::PyType>() {
                    return Err(Error::NotABuffer { type_name });
                }
                for source in [Source::DLPack, Source::ArrayStruct, Source::ArrayInterface] {
                    if let Some(result) = Filled::try_source(obj, source, request) {
                        return result;
                    }
                }
                Err(Error::NotABuffer { type_name })
            }
            // jax refuses buffers of bfloat16, which DLPack carries; when DLPack fails too,
            // the buffer protocol's refusal is the error
            refused @ Error::Refused { .. } => match dlpack::acquire(obj, request) {
                Some(Ok(filled)) => Ok(filled),
                _ => Err(refused),
            },
            err => Err(err),
        }
    }

    /// Acquires through one protocol only (the explicit constructors, such as
    /// `Buffer::from_dlpack`); [`Error::MissingProtocol`] when `obj` does not implement it.
    pub(crate) fn new_from(
        obj: &Bound<'_, PyAny>,
        source: Source,
        request: Request,
    ) -> Result<Filled, Error> {
        Filled::try_source(obj, source, request).unwrap_or_else(|| {
            Err(Error::MissingProtocol {
                type_name: type_name(obj),
                protocol: source,
            })
        })
    }

    /// `None` when `obj` does not implement the protocol at all.
    fn try_source(
        obj: &Bound<'_, PyAny>,
        source: Source,
        request: Request,
    ) -> Option<Result<Filled, Error>> {
        match source {
            Source::BufferProtocol | Source::Numpy => {
                match buffer_protocol::acquire(obj, request) {
                    Err(Error::NotABuffer { .. }) => None,
                    result => Some(result),
                }
            }
            Source::DLPack => dlpack::acquire(obj, request),
            Source::ArrayStruct => array_interface::acquire_struct(obj, request),
            Source::ArrayInterface => array_interface::acquire_dict(obj, request),
        }
    }

    /// The filled `Py_buffer`.
    #[inline(always)]
    pub(crate) fn view(&self) -> &ffi::Py_buffer {
        &self.view
    }

    /// The format when it is at most two bytes long (`"d"`, `"<f"`; NULL is `"B"`), read from
    /// the exporter's string: the acquisition fast path. `None` for anything longer.
    #[inline(always)]
    pub(crate) fn short_format(&self, _attached: Python<'_>) -> Option<FormatText> {
        // SAFETY: a non-NULL format is a NUL-terminated string that stays valid while the
        // view is held (the sources' guarantee); `FormatText::short` stops at its NUL.
        unsafe { FormatText::short(self.view.format) }
    }

    /// Records what later messages need — the format and the exporter's type name (for heap
    /// types only when `record_name` or the memory is read-only) — while attached.
    /// `format` is the format when the caller has read it already.
    #[inline(always)]
    pub(crate) fn record(
        self,
        obj: &Bound<'_, PyAny>,
        format: Option<FormatText>,
        record_name: bool,
    ) -> Acquired {
        let format = format.unwrap_or_else(|| {
            // SAFETY: as in `short_format`: NUL-terminated and valid while held.
            unsafe { FormatText::copy(self.view.format) }
        });
        let exporter = ExporterName::of(obj, record_name || self.view.readonly != 0);
        Acquired {
            filled: self,
            format,
            exporter,
        }
    }
}

impl Drop for Filled {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `view` is taken once, here, and never used again.
        let view = unsafe { ManuallyDrop::take(&mut self.view) };
        release::release(view, self.release);
    }
}

/// An acquisition with what was recorded about it: the handle's own copy of the format and
/// the exporter's type name, so that no later call reads Python-owned memory for a message.
pub(crate) struct Acquired {
    filled: Filled,
    /// The format, copied and decoded at acquisition: the exporter's bytes are never read
    /// again, so an exporter that rewrites them later cannot change what was validated.
    format: FormatText,
    /// The exporter's type name, recorded at acquisition while attached (see [`ExporterName`]).
    exporter: ExporterName,
}

impl Acquired {
    /// Acquires from the first source `obj` supports and records it.
    pub(crate) fn new_any(
        obj: &Bound<'_, PyAny>,
        request: Request,
        record_name: bool,
    ) -> Result<Acquired, Error> {
        Ok(Filled::new_any(obj, request)?.record(obj, None, record_name))
    }

    /// The filled `Py_buffer`.
    #[inline]
    pub(crate) fn view(&self) -> &ffi::Py_buffer {
        self.filled.view()
    }

    /// The protocol it came through.
    #[inline]
    pub(crate) fn source(&self) -> Source {
        self.filled.source
    }

    /// The format as the exporter gave it (`"B"` for NULL), decoded lossily if it was not
    /// UTF-8.
    #[inline]
    pub(crate) fn format(&self) -> &str {
        self.format.as_str()
    }

    /// The format, or the error for an exporter whose format was not ASCII.
    #[inline]
    pub(crate) fn checked_format(&self) -> Result<&str, FormatError> {
        self.format.checked()
    }

    /// The item the format describes. Element types without a PEP 3118 code (DLPack's
    /// bfloat16 and the DLPack types no element reads) have pybuf's own notation, which only a
    /// DLPack acquisition's format is read in: no exporter's format can produce them.
    pub(crate) fn parse_item(&self) -> Result<ItemLayout, FormatError> {
        if self.source() == Source::DLPack {
            if let Some(scalar) = dlpack::extension_scalar(self.format()) {
                return Ok(ItemLayout::scalar(scalar, 1));
            }
        }
        self.checked_format().and_then(format::parse)
    }

    /// Whether the exporter says the memory is read-only.
    #[inline]
    pub(crate) fn is_readonly(&self) -> bool {
        self.view().readonly != 0
    }

    /// The exporter's type name, as recorded at acquisition.
    pub(crate) fn exporter_name(&self) -> String {
        self.exporter.to_string()
    }

    /// The exporting object (`view.obj`), or `None` if the exporter left it NULL.
    pub(crate) fn obj<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        let ptr = self.view().obj;
        // SAFETY: a non-NULL `obj` is a strong reference the view holds until release, so
        // taking another strong reference to it is sound while we are attached (`py`).
        unsafe { Bound::from_borrowed_ptr_or_opt(py, ptr) }
    }
}

impl std::fmt::Debug for Acquired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.view();
        f.debug_struct("Acquired")
            .field("source", &self.source())
            .field("format", &self.format())
            .field("buf", &v.buf)
            .field("len", &v.len)
            .field("itemsize", &v.itemsize)
            .field("ndim", &v.ndim)
            .field("readonly", &v.readonly)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    /// The handle is moved on every acquisition: keep what it carries small.
    #[test]
    fn handle_sizes() {
        assert!(std::mem::size_of::<super::FormatText>() <= 24);
        assert!(std::mem::size_of::<super::ExporterName>() <= 16);
        assert!(std::mem::size_of::<super::Filled>() <= 24);
    }
}
