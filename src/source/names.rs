//! What an acquisition remembers of the exporter for later messages: its format string and
//! its type name, both copied while attached so that no later call (on any thread, with or
//! without the interpreter lock) reads Python-owned memory again.

use std::ffi::{c_char, CStr};
use std::fmt;

use pyo3::{ffi, prelude::*};

use crate::format::FormatError;

/// Format strings up to this many bytes are stored without an allocation.
const INLINE: usize = 14;

/// A copy of the exporter's format string.
#[derive(Clone)]
pub(crate) enum FormatText {
    /// A short ASCII string (the usual case: `"d"`, `"<f"`, `"B"`).
    Inline { len: u8, bytes: [u8; INLINE] },
    /// A longer ASCII or UTF-8 string (struct formats).
    Heap(Box<str>),
    /// Not UTF-8: the lossy text and where decoding failed (boxed: rare, and it keeps the
    /// type small on the acquisition path).
    Invalid(Box<(Box<str>, usize)>),
}

impl FormatText {
    /// Copies the exporter's NUL-terminated format; NULL means `"B"`.
    ///
    /// # Safety
    /// A non-NULL `ptr` is a NUL-terminated string that stays valid for the call.
    #[inline(always)]
    pub(crate) unsafe fn copy(ptr: *const c_char) -> FormatText {
        let mut bytes = [0u8; INLINE];
        if ptr.is_null() {
            bytes[0] = b'B';
            return FormatText::Inline { len: 1, bytes };
        }
        // Fast path: a short ASCII string, found and copied in one pass.
        for (len, dst) in bytes.iter_mut().enumerate() {
            // SAFETY: a NUL-terminated string (caller's promise); we stop at its NUL, so every
            // byte read is at or before it.
            let byte = unsafe { *ptr.add(len) } as u8;
            if byte == 0 {
                return FormatText::Inline {
                    len: len as u8,
                    bytes,
                };
            }
            if !byte.is_ascii() {
                break;
            }
            *dst = byte;
        }
        // SAFETY: as above.
        let all = unsafe { CStr::from_ptr(ptr) }.to_bytes();
        match std::str::from_utf8(all) {
            Ok(text) => FormatText::Heap(text.into()),
            Err(e) => FormatText::Invalid(Box::new((
                String::from_utf8_lossy(all).into(),
                e.valid_up_to(),
            ))),
        }
    }

    /// The exporter's format if it is at most two bytes long (NULL is `"B"`), else `None`.
    ///
    /// # Safety
    /// As for [`FormatText::copy`].
    #[inline(always)]
    pub(crate) unsafe fn short(ptr: *const c_char) -> Option<FormatText> {
        let mut bytes = [0u8; INLINE];
        if ptr.is_null() {
            bytes[0] = b'B';
            return Some(FormatText::Inline { len: 1, bytes });
        }
        for len in 0..3 {
            // SAFETY: NUL-terminated (caller's promise); we stop at the NUL.
            let byte = unsafe { *ptr.add(len) } as u8;
            if byte == 0 {
                return Some(FormatText::Inline {
                    len: len as u8,
                    bytes,
                });
            }
            if len == 2 || !byte.is_ascii() {
                break;
            }
            bytes[len] = byte;
        }
        None
    }

    /// The bytes as the exporter gave them (lossily decoded when they were not UTF-8).
    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            FormatText::Inline { len, bytes } => &bytes[..usize::from(*len)],
            FormatText::Heap(text) => text.as_bytes(),
            FormatText::Invalid(invalid) => invalid.0.as_bytes(),
        }
    }

    /// The text (lossily decoded when the exporter's bytes were not UTF-8).
    #[inline]
    pub(crate) fn as_str(&self) -> &str {
        match self {
            // ASCII by construction; `from_utf8` cannot fail, and costs a few instructions.
            FormatText::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or("")
            }
            FormatText::Heap(text) => text,
            FormatText::Invalid(invalid) => &invalid.0,
        }
    }

    /// The text, or a format error when the exporter's bytes were not UTF-8.
    pub(crate) fn checked(&self) -> Result<&str, FormatError> {
        match self {
            FormatText::Invalid(invalid) => Err(FormatError {
                format: invalid.0.to_string(),
                position: invalid.1,
                expected: "an ASCII format string".into(),
                found: None,
            }),
            _ => Ok(self.as_str()),
        }
    }
}

/// The exporter's type name (`numpy.ndarray`, `bytes`, `mymodule.Image`), for messages.
///
/// Recorded at acquisition, while attached: a heap type's name is Python-owned memory that
/// `A.__name__ = ...`, `A.__qualname__ = ...` or `obj.__class__ = B` can free at any moment, so
/// it is copied then. A static (non-heap) type is immortal and its name cannot be changed
/// (CPython refuses `__name__`/`__qualname__` assignment on immutable types), so its `tp_name`
/// is kept as a `'static` string without a copy.
#[derive(Clone)]
pub(crate) enum ExporterName {
    /// `tp_name` of a static type: a NUL-terminated string that lives as long as the process
    /// (its length is only computed when a message needs it).
    Static(StaticName),
    /// A copy of a heap type's qualified name (boxed twice to keep the type one pointer
    /// wide on the acquisition path).
    Owned(Box<Box<str>>),
    /// Not recorded (writable buffers of heap types: no message after acquisition needs it).
    Unrecorded,
}

impl ExporterName {
    /// The name of `obj`'s type; for heap types only when `record` (it costs a Python call).
    #[inline(always)]
    pub(crate) fn of(obj: &Bound<'_, PyAny>, record: bool) -> ExporterName {
        let ty = obj.get_type_ptr();
        // SAFETY: `obj` is alive and we are attached (it is bound), so its type object is alive
        // and its `tp_flags` can be read.
        let flags = unsafe { (*ty).tp_flags };
        if flags & ffi::Py_TPFLAGS_HEAPTYPE == 0 {
            // SAFETY: `ty` is a live type object (see above); a static type is never
            // deallocated and its `tp_name` is an immutable NUL-terminated string (CPython
            // refuses to rename immutable types), so the pointer stays valid for the rest of
            // the process, which is what `StaticName` requires.
            return ExporterName::Static(StaticName(unsafe { (*ty).tp_name }));
        }
        if record {
            ExporterName::Owned(Box::new(type_name(obj).into()))
        } else {
            ExporterName::Unrecorded
        }
    }
}

impl fmt::Display for ExporterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExporterName::Static(name) => {
                let name = name.as_c_str().to_string_lossy();
                f.write_str(name.strip_prefix("builtins.").unwrap_or(&name))
            }
            ExporterName::Owned(name) => f.write_str(name),
            ExporterName::Unrecorded => f.write_str("<exporter>"),
        }
    }
}

/// The `tp_name` of a static type.
///
/// Invariant: the pointer is a NUL-terminated string that is never freed or changed (the
/// only constructor is in [`ExporterName::of`], which argues it).
#[derive(Clone, Copy)]
pub(crate) struct StaticName(*const c_char);

// SAFETY: the string is immutable and lives as long as the process (the invariant), so it can
// be read from any thread.
unsafe impl Send for StaticName {}
// SAFETY: as for `Send`.
unsafe impl Sync for StaticName {}

impl StaticName {
    fn as_c_str(&self) -> &'static CStr {
        // SAFETY: the type's invariant: NUL-terminated, immutable, never freed.
        unsafe { CStr::from_ptr(self.0) }
    }
}

/// `numpy.ndarray`, `bytes`, `mymodule.Point`: the qualified name without `builtins.`.
pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    use pyo3::types::PyTypeMethods;
    let ty = obj.get_type();
    // a class without `__module__` (made by code run in a bare namespace) still has a name
    let name = ty
        .fully_qualified_name()
        .or_else(|_| ty.name())
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "<unknown type>".to_string());
    name.strip_prefix("builtins.")
        .map(str::to_string)
        .unwrap_or(name)
}
