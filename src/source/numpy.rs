//! numpy arrays read directly: the fast source for the most common argument.
//!
//! numpy's buffer export (`array_getbuffer`) builds and compares a format string and a
//! cached shape/strides block on every request, which costs about 550 instructions before
//! pybuf sees a single field. For an exact `numpy.ndarray` whose dtype is a built-in scalar
//! in native byte order, that is all avoidable: the array struct holds the data pointer,
//! shape, strides, flags and dtype, and this module reads them (as rust-numpy does) into the
//! same kind of filled `Py_buffer` every source produces, with a strong reference to the array
//! in `obj`. Everything downstream — element, ndim and layout checks, views, the borrow
//! registry, release — is shared with the other sources.
//!
//! # What it takes, and what it leaves to the buffer protocol
//!
//! Only objects whose type *is* `numpy.ndarray` (subclasses may override `__buffer__`), only
//! after numpy was imported by someone else (pybuf never imports it), only built-in numeric
//! and bool dtypes in native byte order, only arrays numpy flags as aligned (so the format is
//! the one numpy's own export would give: `'d'`, `'l'`, `'Zf'`, ...), not contiguous arrays
//! with an axis of length 0 or 1 (numpy's export rewrites their strides to the canonical
//! ones), and for a writable request only arrays flagged writeable and not "warn on write"
//! (`np.broadcast_arrays` results).
//! Anything else — and any acquisition that fails a later check — goes through the buffer
//! protocol, which then produces the usual value or error. So this source changes costs,
//! never answers (the tests compare the two on every dtype and layout).
//!
//! # Layout of the structs read
//!
//! `PyArrayObject_fields` (`data`, `nd`, `dimensions`, `strides`, `base`, `descr`, `flags`)
//! and the first fields of `PyArray_Descr` (`typeobj`, `kind`, `type`, `byteorder`, a spare
//! byte, `type_num`) have the same layout in numpy 1.x and 2.x (numpy's own headers define
//! the "1.x and 2.x compatible" descr struct with exactly these fields), and the type numbers
//! of the built-in dtypes are fixed by numpy's ABI.
//!
//! # Lifetime
//!
//! The strong reference keeps the array, and through its `base` chain its memory, alive.
//! Holding it protects the memory exactly as numpy's buffer export does: numpy keeps no
//! count of buffer exports, so in both cases it is numpy's own reference checks that refuse
//! `a.resize()`, and `a.resize(refcheck=False)` from Python while a buffer is held is the
//! trust boundary either way. `shape` and `strides` point into the array's own arrays, which
//! `a.shape = ...` can replace: they are read once, at acquisition, while attached and before
//! any Python code can run (see the contract in [`super`]).

use std::ffi::{c_char, c_int, CStr};
use std::sync::atomic::{AtomicPtr, Ordering};

use pyo3::{ffi, prelude::*};

use super::{buffer_protocol::zeroed_view, Filled, Request, Source};

/// The fields of numpy's `PyArrayObject_fields` that are read.
#[repr(C)]
struct ArrayFields {
    ob_base: ffi::PyObject,
    data: *mut c_char,
    nd: c_int,
    dimensions: *mut ffi::Py_ssize_t,
    strides: *mut ffi::Py_ssize_t,
    base: *mut ffi::PyObject,
    descr: *mut DescrFields,
    flags: c_int,
}

/// The first fields of numpy's `PyArray_Descr`, shared by numpy 1.x and 2.x.
#[repr(C)]
struct DescrFields {
    ob_base: ffi::PyObject,
    typeobj: *mut ffi::PyTypeObject,
    kind: c_char,
    type_: c_char,
    byteorder: c_char,
    former_flags: c_char,
    type_num: c_int,
}

const NPY_ARRAY_C_CONTIGUOUS: c_int = 0x0001;
const NPY_ARRAY_F_CONTIGUOUS: c_int = 0x0002;
const NPY_ARRAY_ALIGNED: c_int = 0x0100;
const NPY_ARRAY_WRITEABLE: c_int = 0x0400;
const NPY_ARRAY_WARN_ON_WRITE: c_int = i32::MIN; // 1 << 31

/// numpy's `type(np.ndarray)` pointer, once numpy has been seen imported; NULL before.
static NDARRAY: AtomicPtr<ffi::PyTypeObject> = AtomicPtr::new(std::ptr::null_mut());

/// The format numpy's buffer export gives an aligned, native array of a built-in type
/// number, with its item size; `None` for every other type number.
fn format_of(type_num: c_int) -> Option<(&'static CStr, usize)> {
    use std::mem::size_of;
    use std::os::raw::{c_long, c_longlong, c_short};
    Some(match type_num {
        0 => (c"?", 1),                        // NPY_BOOL
        1 => (c"b", 1),                        // NPY_BYTE
        2 => (c"B", 1),                        // NPY_UBYTE
        3 => (c"h", size_of::<c_short>()),     // NPY_SHORT
        4 => (c"H", size_of::<c_short>()),     // NPY_USHORT
        5 => (c"i", size_of::<c_int>()),       // NPY_INT
        6 => (c"I", size_of::<c_int>()),       // NPY_UINT
        7 => (c"l", size_of::<c_long>()),      // NPY_LONG
        8 => (c"L", size_of::<c_long>()),      // NPY_ULONG
        9 => (c"q", size_of::<c_longlong>()),  // NPY_LONGLONG
        10 => (c"Q", size_of::<c_longlong>()), // NPY_ULONGLONG
        11 => (c"f", 4),                       // NPY_FLOAT
        12 => (c"d", 8),                       // NPY_DOUBLE
        14 => (c"Zf", 8),                      // NPY_CFLOAT
        15 => (c"Zd", 16),                     // NPY_CDOUBLE
        23 => (c"e", 2),                       // NPY_HALF
        _ => return None,
    })
}

/// Whether `ty` is numpy's ndarray type. Learns the type once numpy is in `sys.modules`.
#[inline(always)]
fn is_ndarray(py: Python<'_>, ty: *mut ffi::PyTypeObject) -> bool {
    let known = NDARRAY.load(Ordering::Relaxed);
    if !known.is_null() {
        return ty == known;
    }
    learn_ndarray(py, ty)
}

#[cold]
#[inline(never)]
fn learn_ndarray(py: Python<'_>, ty: *mut ffi::PyTypeObject) -> bool {
    let found = (|| -> PyResult<Option<*mut ffi::PyTypeObject>> {
        let modules = py.import("sys")?.getattr("modules")?;
        let Some(numpy) = modules.get_item("numpy").ok() else {
            return Ok(None); // not imported (yet): nothing can be an ndarray
        };
        let ndarray = numpy.getattr("ndarray")?;
        let Ok(ndarray) = ndarray.cast_into::<pyo3::types::PyType>() else {
            return Ok(None);
        };
        // numpy's types are static: keep the pointer for the rest of the process (the
        // reference is leaked on purpose, so the pointer can never dangle or be reused).
        Ok(Some(ndarray.into_ptr().cast::<ffi::PyTypeObject>()))
    })()
    .unwrap_or(None);
    match found {
        Some(ndarray) => {
            if NDARRAY
                .compare_exchange(
                    std::ptr::null_mut(),
                    ndarray,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
            {
                // another thread stored it first (the same type): drop our extra reference
                // SAFETY: we own the reference `into_ptr` gave us, and are attached (`py`).
                unsafe { ffi::Py_DECREF(ndarray.cast()) };
            }
            ty == NDARRAY.load(Ordering::Relaxed)
        }
        None => false,
    }
}

/// The array, read directly, when it is one this source takes (see the module docs); `None`
/// sends the caller to the buffer protocol.
#[inline(always)]
pub(crate) fn acquire(obj: &Bound<'_, PyAny>, request: Request) -> Option<Filled> {
    if !is_ndarray(obj.py(), obj.get_type_ptr()) {
        return None;
    }
    // SAFETY: `obj` is an exact numpy.ndarray (its type is numpy's ndarray type), alive while
    // bound, so its memory is a `PyArrayObject_fields`, whose leading fields `ArrayFields`
    // mirrors (module docs); we are attached, so no Python code changes them while we read.
    let array = unsafe { &*obj.as_ptr().cast::<ArrayFields>() };
    if array.descr.is_null() {
        return None;
    }
    // SAFETY: an array's `descr` is a live dtype object it holds a reference to, whose
    // leading fields `DescrFields` mirrors (the layout numpy 1.x and 2.x share).
    let descr = unsafe { &*array.descr };
    let native = match descr.byteorder as u8 {
        b'=' | b'|' => true,
        b'<' => cfg!(target_endian = "little"),
        b'>' => cfg!(target_endian = "big"),
        _ => false,
    };
    let (format, itemsize) = format_of(descr.type_num)?;
    let flags = array.flags;
    // numpy exports "warn on write" arrays as read-only to read requests, and warns (or
    // refuses) on writable ones: leave those requests to it
    let writable = flags & NPY_ARRAY_WRITEABLE != 0 && flags & NPY_ARRAY_WARN_ON_WRITE == 0;
    if !native
        || flags & NPY_ARRAY_ALIGNED == 0
        || (request.writable() && !writable)
        || !(0..=64).contains(&array.nd)
        || (array.nd > 0 && (array.dimensions.is_null() || array.strides.is_null()))
    {
        return None;
    }
    // The byte length `Py_buffer.len` states (the layout reader checks it against the shape).
    let mut len: isize = itemsize as isize;
    let mut short_axis = false;
    for axis in 0..array.nd as usize {
        // SAFETY: numpy's `dimensions` holds `nd` entries (checked non-NULL above).
        let n = unsafe { *array.dimensions.add(axis) };
        short_axis |= n < 2;
        len = len.checked_mul(n)?;
    }
    // numpy's buffer export rewrites the strides of a contiguous array to the canonical ones,
    // which differ from the array's own only on axes of length 0 or 1: leave those arrays to
    // the buffer protocol, so that `strides()` answers the same through both.
    if short_axis && flags & (NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_F_CONTIGUOUS) != 0 {
        return None;
    }
    let mut view = zeroed_view();
    view.buf = array.data.cast();
    // SAFETY: `obj` is alive; the new strong reference is given back by `release_array`.
    view.obj = unsafe {
        ffi::Py_INCREF(obj.as_ptr());
        obj.as_ptr()
    };
    view.len = len;
    view.itemsize = itemsize as isize;
    view.readonly = c_int::from(!writable);
    view.ndim = array.nd;
    view.format = format.as_ptr().cast_mut();
    view.shape = array.dimensions;
    view.strides = array.strides;
    // SAFETY: filled as the source contract asks: integer fields final, `format` a static
    // string, `shape`/`strides` numpy's arrays (read at acquisition only, see module docs),
    // `obj` a strong reference that `release_array` gives back.
    Some(unsafe { Filled::new(obj.py(), view, release_array, Source::Numpy) })
}

/// Gives back the reference `acquire` took.
///
/// # Safety
/// See [`crate::release::ReleaseFn`]; `view.obj` is the strong reference `acquire` took.
unsafe fn release_array(view: &mut ffi::Py_buffer) {
    let obj = std::mem::replace(&mut view.obj, std::ptr::null_mut());
    // SAFETY: attached (the `ReleaseFn` contract); `obj` is our strong reference, dropped once.
    unsafe { ffi::Py_DECREF(obj) };
}
