//! numpy's array interface: `__array_interface__` (a version-3 dict) and `__array_struct__`
//! (a `PyArrayInterface` struct in a capsule), translated into a `Py_buffer`.
//!
//! Both describe memory with a type string (`'<f8'`: byte order, kind, size in bytes), a
//! shape, byte strides (or none for C order) and a data address. This module turns the type
//! string into the PEP 3118 format the buffer protocol would give for the same items (`'<d'`),
//! copies the shape and strides into storage it owns, and leaves every check of the numbers
//! to the shared validation (`crate::acquire`, `crate::layout`).
//!
//! | key | what pybuf does with it |
//! |---|---|
//! | `version` | must be 3 when present |
//! | `typestr` | `<`, `>`, `\|` or `=`; kinds `b i u f c S V` become formats; `U`, `O`, long double become the PEP 3118 codes no Rust type reads (`w`, `O`, `g`); `m`, `M`, `t`, unusual sizes and anything else are refused |
//! | `descr` | for `V` items: a record format `T{...}` built from the fields, padding included |
//! | `shape`, `strides` | copied; negative or overflowing values are refused by the shared layout checks |
//! | `data` | `(address, read-only)`: the address is trusted as the producer's promise, as numpy trusts it; an object with the buffer protocol (Pillow passes `bytes`), or `None`/absent for the object's own buffer: that buffer is held for the handle's lifetime and the array must lie inside it |
//! | `offset` | added to a buffer's address; refused (unless 0) with an address tuple, which it does not apply to |
//! | `mask` | refused unless `None` |
//!
//! `__array_struct__` carries the same facts in C: `typekind`, `itemsize`, the `NOTSWAPPED`
//! flag for the byte order, `WRITEABLE`, and `descr` (with `ARR_HAS_DESCR`). The capsule is
//! held for the handle's lifetime (it owns the struct and, for numpy, a reference to the
//! array).
//!
//! Every handle holds a strong reference to the object itself (`Py_buffer.obj`), which is
//! what keeps the memory alive under the protocol's rules.

use std::ffi::{c_char, c_int, c_void, CString};
use std::ptr;

use ndarray::{Dimension, IxDyn};
use pyo3::exceptions::PyAttributeError;
use pyo3::types::{PyBytes, PyDict, PyInt, PyList, PyString, PyTuple};
use pyo3::{ffi, intern, prelude::*};

use super::buffer_protocol::{recycle, zeroed_view};
use super::{names::type_name, Filled, Request, Source};
use crate::error::Error;
use crate::format::FormatError;
use crate::layout::Layout;
use crate::release;

/// numpy's `NPY_ARRAY_NOTSWAPPED`: the data is in native byte order.
const NOTSWAPPED: c_int = 0x0200;
/// numpy's `NPY_ARRAY_WRITEABLE`.
const WRITEABLE: c_int = 0x0400;
/// numpy's `NPY_ARR_HAS_DESCR`: `descr` is set.
const ARR_HAS_DESCR: c_int = 0x0800;

/// `PyArrayInterface` of numpy's `ndarraytypes.h`, the struct in an `__array_struct__`
/// capsule.
#[repr(C)]
struct PyArrayInterface {
    /// 2, as a sanity check.
    two: c_int,
    nd: c_int,
    typekind: c_char,
    itemsize: c_int,
    flags: c_int,
    shape: *mut ffi::Py_ssize_t,
    strides: *mut ffi::Py_ssize_t,
    data: *mut c_void,
    descr: *mut ffi::PyObject,
}

/// What a handle acquired through the array interface owns, behind `Py_buffer.internal`.
struct State {
    /// `Py_buffer.shape` points into it.
    shape: Box<[ffi::Py_ssize_t]>,
    /// `Py_buffer.strides` points into it (`None`: NULL, C order).
    strides: Option<Box<[ffi::Py_ssize_t]>>,
    /// `Py_buffer.format` points to it.
    format: CString,
    /// The buffer of the `data` object, held until release.
    data: Option<DataBuffer>,
    /// The `__array_struct__` capsule, which owns the `PyArrayInterface`.
    _capsule: Option<Py<PyAny>>,
}

/// A buffer-protocol view of an interface's `data` object, released on drop.
///
/// Dropped only while attached to the interpreter: in acquisition's error paths, or by
/// [`release_interface`], which the release machinery calls attached (after finalization it
/// leaks the whole state instead of dropping it).
struct DataBuffer(Box<ffi::Py_buffer>);

impl Drop for DataBuffer {
    fn drop(&mut self) {
        // SAFETY: the view was filled by a successful `PyObject_GetBuffer` and is released
        // once, here; we are attached (see the type's documentation).
        unsafe { ffi::PyBuffer_Release(&mut *self.0) };
    }
}

/// A described array before it becomes a `Py_buffer`.
struct Description {
    /// Empty when `ndim` is out of range (0 to 64): the shared checks then report `ndim`.
    shape: Vec<ffi::Py_ssize_t>,
    ndim: c_int,
    strides: Option<Vec<ffi::Py_ssize_t>>,
    format: String,
    itemsize: ffi::Py_ssize_t,
    buf: *mut c_void,
    readonly: bool,
    data: Option<DataBuffer>,
    capsule: Option<Py<PyAny>>,
}

/// Acquires through `__array_interface__`; `None` when `obj` has no such attribute.
pub(crate) fn acquire_dict(
    obj: &Bound<'_, PyAny>,
    request: Request,
) -> Option<Result<Filled, Error>> {
    let iface = lookup(obj, intern!(obj.py(), "__array_interface__"))?;
    Some(iface.and_then(|iface| {
        release::on_acquire(obj.py());
        let description = describe_dict(obj, &iface, request)?;
        finish(obj, description, request, Source::ArrayInterface)
    }))
}

/// Acquires through `__array_struct__`; `None` when `obj` has no such attribute.
pub(crate) fn acquire_struct(
    obj: &Bound<'_, PyAny>,
    request: Request,
) -> Option<Result<Filled, Error>> {
    let capsule = lookup(obj, intern!(obj.py(), "__array_struct__"))?;
    Some(capsule.and_then(|capsule| {
        release::on_acquire(obj.py());
        let description = describe_struct(obj, capsule)?;
        finish(obj, description, request, Source::ArrayStruct)
    }))
}

/// `obj.<name>`: `None` when it does not exist, the exporter's refusal when looking it up
/// raised anything but `AttributeError`.
pub(super) fn lookup<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
) -> Option<Result<Bound<'py, PyAny>, Error>> {
    match obj.getattr(name) {
        Ok(value) => Some(Ok(value)),
        Err(err) if err.is_instance_of::<PyAttributeError>(obj.py()) => None,
        Err(cause) => Some(Err(Error::Refused {
            type_name: type_name(obj),
            writable: false,
            cause,
        })),
    }
}

fn interchange(obj: &Bound<'_, PyAny>, protocol: Source, expected: &str, found: String) -> Error {
    Error::Interchange {
        type_name: type_name(obj),
        protocol,
        expected: expected.to_string(),
        found,
    }
}

/// A short description of a Python value for messages: its repr, cut to 60 characters.
fn show(value: &Bound<'_, PyAny>) -> String {
    let text = value
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| format!("a '{}'", type_name(value)));
    if text.chars().count() > 60 {
        let cut: String = text.chars().take(57).collect();
        format!("{cut}...")
    } else {
        text
    }
}

fn describe_dict(
    obj: &Bound<'_, PyAny>,
    iface: &Bound<'_, PyAny>,
    request: Request,
) -> Result<Description, Error> {
    const P: Source = Source::ArrayInterface;
    let dict = iface
        .cast::<PyDict>()
        .map_err(|_| interchange(obj, P, "a dict", format!("a '{}'", type_name(iface))))?;
    let get = |key: &str| -> Result<Option<Bound<'_, PyAny>>, Error> {
        Ok(dict.get_item(key)?.filter(|v| !v.is_none()))
    };

    if let Some(version) = get("version")? {
        if version.extract::<i64>().ok() != Some(3) {
            return Err(interchange(obj, P, "version 3", show(&version)));
        }
    }
    if let Some(mask) = get("mask")? {
        return Err(interchange(
            obj,
            P,
            "no mask (pybuf reads every item)",
            format!("a mask {}", show(&mask)),
        ));
    }

    let typestr = get("typestr")?
        .ok_or_else(|| interchange(obj, P, "a 'typestr' entry", "none".to_string()))?;
    let typestr: String = if let Ok(bytes) = typestr.cast::<PyBytes>() {
        String::from_utf8_lossy(bytes.as_bytes()).into_owned()
    } else if let Ok(text) = typestr.cast::<PyString>() {
        text.to_string()
    } else {
        return Err(interchange(obj, P, "'typestr' as a str", show(&typestr)));
    };
    let typed = parse_typestr(&typestr).map_err(|error| Error::Format {
        type_name: type_name(obj),
        error: Box::new(error),
    })?;
    let format = match (typed.kind, get("descr")?) {
        (b'V', Some(descr)) if !is_default_descr(&descr, &typestr) => record_format(&descr)
            .map_err(|found| {
                interchange(
                    obj,
                    P,
                    "'descr' as a list of (name, typestr or descr[, shape]) tuples",
                    found,
                )
            })?,
        _ => typed.format,
    };

    let shape_obj =
        get("shape")?.ok_or_else(|| interchange(obj, P, "a 'shape' entry", "none".to_string()))?;
    let shape = int_tuple(obj, &shape_obj, "'shape' as a tuple of integers")?;
    let strides = match get("strides")? {
        None => None,
        Some(strides) => {
            let strides = int_tuple(obj, &strides, "'strides' as None or a tuple of integers")?;
            if strides.len() != shape.len() {
                return Err(interchange(
                    obj,
                    P,
                    &format!("{} strides (one per axis of the shape)", shape.len()),
                    format!("{}", strides.len()),
                ));
            }
            Some(strides)
        }
    };
    let offset = match get("offset")? {
        None => 0,
        Some(offset) => offset
            .extract::<isize>()
            .map_err(|_| interchange(obj, P, "'offset' as an integer", show(&offset)))?,
    };

    let data = get("data")?;
    let (buf, readonly, data) = match data {
        Some(data) if data.is_instance_of::<PyTuple>() => {
            let tuple = data.cast::<PyTuple>().map_err(PyErr::from)?;
            let expected = "'data' as (address, read-only)";
            if tuple.len() != 2 {
                return Err(interchange(obj, P, expected, show(&data)));
            }
            let address: usize = tuple
                .get_item(0)?
                .extract()
                .map_err(|_| interchange(obj, P, expected, show(&data)))?;
            let readonly = tuple.get_item(1)?.is_truthy()?;
            if offset != 0 {
                return Err(interchange(
                    obj,
                    P,
                    "'offset' 0 with an (address, read-only) 'data' (offset applies to buffers)",
                    format!("offset {offset}"),
                ));
            }
            (address as *mut c_void, readonly, None)
        }
        // A buffer object, or the object itself when `data` is None or absent.
        data => {
            let holder = data.unwrap_or_else(|| obj.clone());
            let view = data_buffer(obj, &holder, request)?;
            let readonly = view.0.readonly != 0;
            let buf = (view.0.buf as usize).wrapping_add_signed(offset) as *mut c_void;
            (buf, readonly, Some(view))
        }
    };
    Ok(Description {
        ndim: c_int::try_from(shape.len()).unwrap_or(c_int::MAX),
        shape,
        strides,
        format,
        itemsize: typed.size as ffi::Py_ssize_t,
        buf,
        readonly,
        data,
        capsule: None,
    })
}

/// The buffer of an interface's `data` object (`PyBUF_SIMPLE`: contiguous bytes), writable
/// when `request` is; a read-only one for a writable request is refused.
fn data_buffer(
    obj: &Bound<'_, PyAny>,
    holder: &Bound<'_, PyAny>,
    request: Request,
) -> Result<DataBuffer, Error> {
    let get = |flags: c_int| -> Option<DataBuffer> {
        let mut view = zeroed_view();
        // SAFETY: `holder` is alive (we hold a reference and are attached); `view` is a
        // zeroed, boxed `Py_buffer` that does not move while the buffer is held.
        if unsafe { ffi::PyObject_GetBuffer(holder.as_ptr(), &mut *view, flags) } == 0 {
            Some(DataBuffer(view))
        } else {
            recycle(view);
            None
        }
    };
    // SAFETY: `holder` is alive and we are attached.
    if unsafe { ffi::PyObject_CheckBuffer(holder.as_ptr()) } == 0 {
        return Err(interchange(
            obj,
            Source::ArrayInterface,
            "'data' as (address, read-only) or an object with the buffer protocol",
            format!("a '{}'", type_name(holder)),
        ));
    }
    let writable = request.writable();
    if writable {
        if let Some(view) = get(ffi::PyBUF_SIMPLE | ffi::PyBUF_WRITABLE) {
            return Ok(view);
        }
        // refused: read-only memory, or a refusal the read-only request below repeats
        drop(PyErr::take(obj.py()));
    }
    match get(ffi::PyBUF_SIMPLE) {
        Some(_) if writable => Err(Error::ReadOnly {
            type_name: type_name(obj),
        }),
        Some(view) => Ok(view),
        None => Err(Error::Refused {
            type_name: type_name(holder),
            writable,
            cause: PyErr::fetch(obj.py()),
        }),
    }
}

fn int_tuple(
    obj: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
    expected: &str,
) -> Result<Vec<ffi::Py_ssize_t>, Error> {
    let tuple = value
        .cast::<PyTuple>()
        .map_err(|_| interchange(obj, Source::ArrayInterface, expected, show(value)))?;
    tuple
        .iter()
        .enumerate()
        .map(|(axis, item)| {
            item.extract::<ffi::Py_ssize_t>().map_err(|_| {
                if item.is_instance_of::<PyInt>() {
                    Error::InvalidLayout {
                        type_name: type_name(obj),
                        reason: format!("length or stride {item} on axis {axis} overflows"),
                    }
                } else {
                    interchange(obj, Source::ArrayInterface, expected, show(value))
                }
            })
        })
        .collect()
}

fn describe_struct(
    obj: &Bound<'_, PyAny>,
    capsule: Bound<'_, PyAny>,
) -> Result<Description, Error> {
    const P: Source = Source::ArrayStruct;
    // SAFETY: `capsule` is alive and we are attached.
    if unsafe { ffi::PyCapsule_CheckExact(capsule.as_ptr()) } == 0 {
        return Err(interchange(
            obj,
            P,
            "a PyCapsule holding a PyArrayInterface",
            format!("a '{}'", type_name(&capsule)),
        ));
    }
    // SAFETY: `capsule` is a live capsule; its name pointer (possibly NULL, as numpy's) is
    // passed straight back, so `PyCapsule_GetPointer` accepts it whatever it is.
    let inter = unsafe {
        let name = ffi::PyCapsule_GetName(capsule.as_ptr());
        ffi::PyCapsule_GetPointer(capsule.as_ptr(), name)
    }
    .cast::<PyArrayInterface>();
    if inter.is_null() {
        drop(PyErr::take(obj.py()));
        return Err(interchange(
            obj,
            P,
            "a PyCapsule holding a PyArrayInterface",
            "a capsule without a pointer".to_string(),
        ));
    }
    // SAFETY: the capsule's pointer is a `PyArrayInterface` (the protocol's promise), owned by
    // the capsule, which we hold for as long as the struct is used. It is read field by field
    // into copies (`read` on the raw pointer, no reference is formed), and only after the
    // sanity field says it is one.
    let inter = unsafe {
        if ptr::addr_of!((*inter).two).read() != 2 {
            let two = ptr::addr_of!((*inter).two).read();
            return Err(interchange(
                obj,
                P,
                "a PyArrayInterface (its first field 2)",
                format!("first field {two}"),
            ));
        }
        inter.read()
    };
    let ndim = inter.nd;
    let in_range = usize::try_from(ndim).is_ok_and(|n| n <= crate::MAX_NDIM);
    let axes = if in_range { ndim as usize } else { 0 };
    let copy = |ptr: *mut ffi::Py_ssize_t| -> Option<Vec<ffi::Py_ssize_t>> {
        (!ptr.is_null()).then(|| {
            // SAFETY: a non-NULL `shape`/`strides` of a `PyArrayInterface` holds `nd` values
            // (the protocol's promise); `axes` is `nd`, checked to be 0..=64.
            unsafe { std::slice::from_raw_parts(ptr, axes) }.to_vec()
        })
    };
    let shape = match copy(inter.shape) {
        Some(shape) => shape,
        None if axes == 0 => Vec::new(),
        None => {
            return Err(interchange(
                obj,
                P,
                &format!("a shape for {ndim} dimensions"),
                "NULL".to_string(),
            ))
        }
    };
    let strides = copy(inter.strides).filter(|_| axes > 0);
    let order = if inter.flags & NOTSWAPPED != 0 {
        b'|'
    } else if cfg!(target_endian = "little") {
        b'>'
    } else {
        b'<'
    };
    let kind = inter.typekind as u8;
    let itemsize = usize::try_from(inter.itemsize).map_err(|_| Error::InvalidLayout {
        type_name: type_name(obj),
        reason: format!("negative itemsize {}", inter.itemsize),
    })?;
    // a type string counts `U` items in characters, `itemsize` in bytes
    let count = if kind == b'U' { itemsize / 4 } else { itemsize };
    let typestr = format!("{}{}{}", order as char, kind as char, count);
    let typed = parse_typestr(&typestr).map_err(|error| Error::Format {
        type_name: type_name(obj),
        error: Box::new(error),
    })?;
    let format = if kind == b'V' && inter.flags & ARR_HAS_DESCR != 0 && !inter.descr.is_null() {
        // SAFETY: with `ARR_HAS_DESCR`, `descr` is a live object the capsule's struct holds a
        // reference to; we take our own for the call.
        let descr = unsafe { Bound::from_borrowed_ptr(obj.py(), inter.descr) };
        if is_default_descr(&descr, &typestr) {
            typed.format
        } else {
            record_format(&descr).map_err(|found| {
                interchange(
                    obj,
                    P,
                    "descr as a list of (name, typestr or descr[, shape]) tuples",
                    found,
                )
            })?
        }
    } else {
        typed.format
    };
    Ok(Description {
        shape,
        ndim,
        strides,
        format,
        itemsize: typed.size as ffi::Py_ssize_t,
        buf: inter.data,
        readonly: inter.flags & WRITEABLE == 0,
        data: None,
        capsule: Some(capsule.unbind()),
    })
}

/// Fills the `Py_buffer`, checks that an array over a data buffer stays inside it, and
/// refuses read-only memory for a writable request.
fn finish(
    obj: &Bound<'_, PyAny>,
    description: Description,
    request: Request,
    source: Source,
) -> Result<Filled, Error> {
    if request.writable() && description.readonly {
        return Err(Error::ReadOnly {
            type_name: type_name(obj),
        });
    }
    let Description {
        shape,
        ndim,
        strides,
        format,
        itemsize,
        buf,
        readonly,
        data,
        capsule,
    } = description;
    let format = CString::new(format).map_err(|_| Error::Format {
        type_name: type_name(obj),
        error: Box::new(FormatError {
            format: "<contains NUL>".into(),
            position: 0,
            expected: "a format without NUL bytes".into(),
            found: Some('\0'),
        }),
    })?;
    let len = super::byte_len(&shape, itemsize).map_err(|reason| Error::InvalidLayout {
        type_name: type_name(obj),
        reason,
    })?;
    let mut state = Box::new(State {
        shape: shape.into_boxed_slice(),
        strides: strides.map(Vec::into_boxed_slice),
        format,
        data,
        _capsule: capsule,
    });
    let mut view = zeroed_view();
    view.buf = buf;
    view.len = len;
    view.itemsize = itemsize;
    view.readonly = c_int::from(readonly);
    view.ndim = ndim;
    view.format = state.format.as_ptr().cast_mut();
    view.shape = if state.shape.is_empty() {
        ptr::null_mut()
    } else {
        state.shape.as_mut_ptr()
    };
    view.strides = match &mut state.strides {
        Some(strides) if !strides.is_empty() => strides.as_mut_ptr(),
        _ => ptr::null_mut(),
    };
    if let Some(data) = &state.data {
        if let Err(reason) = check_inside(&view, &data.0) {
            recycle(view);
            return Err(Error::InvalidLayout {
                type_name: type_name(obj),
                reason,
            });
        }
    }
    view.obj = obj.clone().into_ptr();
    view.internal = Box::into_raw(state).cast::<c_void>();
    // SAFETY: `view` describes the memory as the buffer protocol would: `format`, `shape`
    // and `strides` point into the boxed `State` behind `internal`, whose heap storage does
    // not move and is freed only by `release_interface`; the memory itself is kept alive by
    // `obj` (a strong reference), by the held `data` buffer or by the held capsule. No field
    // changes after this point. `release_interface` undoes exactly this.
    Ok(unsafe { Filled::new(obj.py(), view, release_interface, source) })
}

/// With a data buffer, every item of the array must lie inside it. The layout is read with
/// the shared reader; a layout it refuses is left for the shared checks to report (the same
/// reader refuses it again there), so nothing out of bounds is ever accepted.
fn check_inside(view: &ffi::Py_buffer, data: &ffi::Py_buffer) -> Result<(), String> {
    // SAFETY: `shape` and `strides` point to `ndim` values in the state we own (or are
    // NULL); `suboffsets` is NULL.
    let Ok(layout) = (unsafe { Layout::<IxDyn>::read(view) }) else {
        return Ok(());
    };
    if layout.len == 0 {
        return Ok(());
    }
    // Offsets from `buf` of the lowest and one past the highest byte (no overflow: the
    // layout reader checked these sums).
    let (mut low, mut high) = (0isize, layout.itemsize as isize);
    for (&n, &s) in layout.shape.slice().iter().zip(layout.strides()) {
        let span = (n as isize - 1) * s;
        if span < 0 {
            low += span;
        } else {
            high += span;
        }
    }
    let start = (view.buf as isize).wrapping_sub(data.buf as isize);
    let inside = start
        .checked_add(low)
        .zip(start.checked_add(high))
        .is_some_and(|(lo, hi)| lo >= 0 && hi <= data.len);
    if inside {
        Ok(())
    } else {
        Err(format!(
            "the array spans bytes {} to {} of its data buffer, which holds {} bytes",
            start.saturating_add(low),
            start.saturating_add(high),
            data.len
        ))
    }
}

/// [`ReleaseFn`](crate::release::ReleaseFn) of both array-interface sources.
///
/// # Safety
/// As for `ReleaseFn`; `view` was filled by [`finish`].
unsafe fn release_interface(view: &mut ffi::Py_buffer) {
    let state = std::mem::replace(&mut view.internal, ptr::null_mut()).cast::<State>();
    // SAFETY: `internal` is the `State` boxed by `finish`, taken back once (set to NULL).
    // Dropping it releases the data buffer and the capsule; we are attached (the caller's
    // promise).
    drop(unsafe { Box::from_raw(state) });
    let obj = std::mem::replace(&mut view.obj, ptr::null_mut());
    // SAFETY: `obj` is the strong reference `finish` stored; attached.
    unsafe { ffi::Py_XDECREF(obj) };
}

/// A type string reduced to what a format needs.
struct TypeStr {
    /// The kind character (`b'f'`).
    kind: u8,
    /// The item size in bytes.
    size: usize,
    /// The equivalent PEP 3118 format.
    format: String,
}

/// Turns an array-interface type string (`'<f8'`, `'|u1'`, `'>i4'`, `'|V16'`) into the PEP
/// 3118 format the buffer protocol would give for the same items.
///
/// Every scalar gets an explicit standard-size prefix (`<` or `>`; `|` and `=` become the
/// machine's), so sizes are the standard ones and no alignment is implied. Kinds with a PEP 3118
/// code that no Rust type reads (`U` as `w`, `O`, long double `g`) keep that code, and the
/// shared parser refuses them as it refuses them from buffer exporters.
fn parse_typestr(typestr: &str) -> Result<TypeStr, FormatError> {
    let error = |position: usize, expected: &str| FormatError {
        format: typestr.to_string(),
        position,
        expected: expected.to_string(),
        found: typestr.get(position..).and_then(|rest| rest.chars().next()),
    };
    let bytes = typestr.as_bytes();
    let prefix = match bytes.first() {
        Some(b'<') => '<',
        Some(b'>') => '>',
        // native ('not relevant' for one-byte kinds): spelled out, as numpy's buffers do
        Some(b'|') | Some(b'=') => crate::format::Endian::NATIVE.prefix(),
        _ => return Err(error(0, "a byte order ('<', '>', '|' or '=')")),
    };
    let kind = match bytes.get(1) {
        Some(&k) if b"biufcSUVOmMt".contains(&k) => k,
        _ => {
            return Err(error(
                1,
                "a type kind of the array interface (b, i, u, f, c, S, U, V, O, m, M, t)",
            ))
        }
    };
    if matches!(kind, b'm' | b'M' | b't') {
        return Err(error(
            1,
            "a type kind with a PEP 3118 equivalent (datetimes, timedeltas and bit fields \
             have none)",
        ));
    }
    let digits = &typestr[2..];
    let size: usize = match digits.parse() {
        Ok(size) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => size,
        _ => {
            let bad = digits
                .bytes()
                .position(|b| !b.is_ascii_digit())
                .unwrap_or(0);
            return Err(error(2 + bad, "the item size in bytes (decimal digits)"));
        }
    };
    if size > isize::MAX as usize {
        return Err(error(2, "an item size of at most isize::MAX bytes"));
    }
    let code = match (kind, size) {
        (b'b', 1) => "?",
        (b'i', 1) => "b",
        (b'i', 2) => "h",
        (b'i', 4) => "i",
        (b'i', 8) => "q",
        (b'u', 1) => "B",
        (b'u', 2) => "H",
        (b'u', 4) => "I",
        (b'u', 8) => "Q",
        (b'f', 2) => "e",
        (b'f', 4) => "f",
        (b'f', 8) => "d",
        (b'f', 12) | (b'f', 16) => "g",
        (b'c', 8) => "Zf",
        (b'c', 16) => "Zd",
        (b'c', 24) | (b'c', 32) => "Zg",
        (b'O', _) => "O",
        (b'S', n) => {
            return Ok(TypeStr {
                kind,
                size: n,
                format: format!("{n}s"),
            })
        }
        (b'V', n) => {
            return Ok(TypeStr {
                kind,
                size: n,
                format: format!("{n}x"),
            })
        }
        // the count of `U` is in characters (UCS-4), not bytes
        (b'U', n) if n <= isize::MAX as usize / 4 => {
            return Ok(TypeStr {
                kind,
                size: n * 4,
                format: format!("{prefix}{n}w"),
            })
        }
        _ => return Err(error(2, "an item size that exists for this kind")),
    };
    Ok(TypeStr {
        kind,
        size,
        format: format!("{prefix}{code}"),
    })
}

/// Whether `descr` is the default `[('', typestr)]`, which says nothing beyond `typestr`.
fn is_default_descr(descr: &Bound<'_, PyAny>, typestr: &str) -> bool {
    let Ok(list) = descr.cast::<PyList>() else {
        return false;
    };
    if list.len() != 1 {
        return false;
    }
    let Ok(item) = list.get_item(0) else {
        return false;
    };
    item.extract::<(String, String)>()
        .is_ok_and(|(name, t)| name.is_empty() && t == typestr)
}

/// The PEP 3118 record format (`T{...}`) of a `descr` list; `Err` says what was found
/// instead of a well-formed descr.
fn record_format(descr: &Bound<'_, PyAny>) -> Result<String, String> {
    let mut out = String::new();
    write_record(descr, &mut out, 0)?;
    Ok(out)
}

fn write_record(descr: &Bound<'_, PyAny>, out: &mut String, depth: usize) -> Result<(), String> {
    if depth > crate::format::MAX_NESTING {
        return Err(format!(
            "records nested more than {} levels deep",
            crate::format::MAX_NESTING
        ));
    }
    let list = descr.cast::<PyList>().map_err(|_| show(descr))?;
    out.push_str("T{");
    for field in list.iter() {
        let tuple = field.cast::<PyTuple>().map_err(|_| show(&field))?;
        if !(2..=3).contains(&tuple.len()) {
            return Err(show(&field));
        }
        let name_obj = tuple.get_item(0).map_err(|_| show(&field))?;
        // a (title, name) pair names the field by its second entry
        let name: String = match name_obj.extract::<(Bound<'_, PyAny>, String)>() {
            Ok((_, name)) => name,
            Err(_) => name_obj.extract().map_err(|_| show(&field))?,
        };
        let ty = tuple.get_item(1).map_err(|_| show(&field))?;
        let shape: Option<Vec<usize>> = match tuple.get_item(2) {
            Ok(shape) => Some(
                shape
                    .extract::<Vec<usize>>()
                    .or_else(|_| shape.extract::<usize>().map(|n| vec![n]))
                    .map_err(|_| show(&field))?,
            ),
            Err(_) => None,
        };
        if let Some(shape) = &shape {
            let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
            out.push('(');
            out.push_str(&dims.join(","));
            out.push(')');
        }
        if let Ok(typestr) = ty.extract::<String>() {
            let typed = parse_typestr(&typestr).map_err(|e| e.to_string())?;
            if typed.kind == b'V' && name.is_empty() && shape.is_none() {
                // unnamed void: padding
                out.push_str(&typed.format);
                continue;
            }
            out.push_str(&typed.format);
        } else {
            write_record(&ty, out, depth + 1)?;
        }
        if !name.is_empty() {
            if name.contains(':') {
                return Err(format!("field name {name:?}, which a format cannot carry"));
            }
            out.push(':');
            out.push_str(&name);
            out.push(':');
        }
    }
    out.push('}');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typestrs_become_the_formats_of_the_buffer_protocol() {
        let f = |t: &str| parse_typestr(t).map(|t| (t.format, t.size));
        assert_eq!(f("<f8").unwrap(), ("<d".into(), 8));
        assert_eq!(f(">f8").unwrap(), (">d".into(), 8));
        assert_eq!(f("|u1").unwrap(), ("<B".into(), 1));
        assert_eq!(f("|b1").unwrap(), ("<?".into(), 1));
        assert_eq!(f("=f4").unwrap(), ("<f".into(), 4));
        assert_eq!(f("<i8").unwrap(), ("<q".into(), 8));
        assert_eq!(f("<c16").unwrap(), ("<Zd".into(), 16));
        assert_eq!(f("|S5").unwrap(), ("5s".into(), 5));
        assert_eq!(f("<U3").unwrap(), ("<3w".into(), 12));
        assert_eq!(f("|V16").unwrap(), ("16x".into(), 16));
        for bad in [
            "", "f8", "<x8", "<f", "<f3", "<f8x", "<M8[ns]", "<i-1", "|t1",
        ] {
            assert!(f(bad).is_err(), "{bad}");
        }
        assert_eq!(f("<x8").unwrap_err().position, 1);
        assert_eq!(f("<f8x").unwrap_err().position, 3);
    }
}
