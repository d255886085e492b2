//! DLPack (`__dlpack__`, the array API standard's interchange protocol) as a source,
//! translated into a `Py_buffer`.
//!
//! The steps, as the Python specification of DLPack and `dlpack.h` lay them down:
//!
//! 1. `obj.__dlpack_device__()` must name memory the CPU can read: `kDLCPU`, `kDLCUDAHost`
//!    or `kDLCUDAManaged` ([`Error::Device`] otherwise). (A producer without the method is
//!    checked by the tensor's own `device` field instead; that check is made either way.)
//! 2. `obj.__dlpack__(max_version=(1, 1))`, plus `copy=False` for a writable request; a
//!    producer that refuses the keywords with `TypeError` (DLPack before 1.0) is called again
//!    without any.
//! 3. The result must be a capsule named `"dltensor_versioned"` (a
//!    [`DLManagedTensorVersioned`]) or `"dltensor"` (a legacy [`DLManagedTensor`]). Renaming
//!    it to `"used_dltensor_versioned"` / `"used_dltensor"` takes ownership: from then on
//!    pybuf calls the tensor's deleter exactly once — at once when the acquisition fails
//!    afterwards (a major version other than 1 included, for which the header guarantees the
//!    deleter's position), else when the handle is released (attached: at once; elsewhere:
//!    queued like buffer releases; never after finalization).
//! 4. The tensor becomes a `Py_buffer`: `buf = data + byte_offset`, strides converted from
//!    elements to bytes (NULL strides: C order), the format the buffer protocol would give
//!    for the data type (`"<f"` for float32), `readonly` from the `READ_ONLY` flag of a
//!    versioned tensor. Every further check is the shared one (`crate::acquire`).
//!
//! A legacy capsule cannot say whether its memory may be written, so pybuf follows the rules
//! of the producer: numpy's own `ndarray.__dlpack__` refuses to export a read-only array as a
//! legacy capsule, so a legacy capsule from it is writable; a legacy capsule from any other
//! producer (jax and pyarrow arrays are immutable) is read-only. numpy's own `from_dlpack`
//! marks every legacy import read-only; pybuf is as strict except for numpy itself.
//!
//! No CUDA stream is synchronized: `stream` is left `None`, which for `kDLCUDAHost` and
//! `kDLCUDAManaged` memory asks the producer to order its work on the legacy default stream.
//! The CPU reads the memory as it is.
//!
//! [`Error::Device`]: crate::Error::Device

use std::ffi::{c_int, c_void, CStr};
use std::ptr;

use pyo3::exceptions::PyTypeError;
use pyo3::types::PyDict;
use pyo3::{ffi, intern, prelude::*};

use super::array_interface::lookup;
use super::buffer_protocol::zeroed_view;
use super::{names::type_name, Filled, Request, Source};
use crate::dlpack::{
    DLDataType, DLDeviceType, DLManagedTensor, DLManagedTensorVersioned, DLTensor, FLAG_IS_COPIED,
    FLAG_IS_SUBBYTE_TYPE_PADDED, FLAG_READ_ONLY, LEGACY_CAPSULE_NAME, MAJOR_VERSION, MINOR_VERSION,
    USED_LEGACY_CAPSULE_NAME, USED_VERSIONED_CAPSULE_NAME, VERSIONED_CAPSULE_NAME,
};
use crate::error::Error;
use crate::format::{Endian, Scalar, ScalarKind};
use crate::release;

const P: Source = Source::DLPack;

/// Acquires through `__dlpack__`; `None` when `obj` has no such attribute.
pub(crate) fn acquire(obj: &Bound<'_, PyAny>, request: Request) -> Option<Result<Filled, Error>> {
    let method = lookup(obj, intern!(obj.py(), "__dlpack__"))?;
    Some(method.and_then(|method| {
        release::on_acquire(obj.py());
        check_device(obj)?;
        let capsule = call_dlpack(obj, &method, request)?;
        let managed = take(obj, &capsule)?;
        drop(capsule);
        translate(obj, managed, request)
    }))
}

fn interchange(obj: &Bound<'_, PyAny>, expected: &str, found: String) -> Error {
    Error::Interchange {
        type_name: type_name(obj),
        protocol: P,
        expected: expected.to_string(),
        found,
    }
}

/// Whether the CPU can read memory of this device type.
fn cpu_accessible(device_type: i32) -> bool {
    matches!(
        device_type,
        DLDeviceType::CPU | DLDeviceType::CUDA_HOST | DLDeviceType::CUDA_MANAGED
    )
}

/// Step 1: `__dlpack_device__()`.
fn check_device(obj: &Bound<'_, PyAny>) -> Result<(), Error> {
    let Some(method) = lookup(obj, intern!(obj.py(), "__dlpack_device__")) else {
        return Ok(()); // checked on the tensor itself
    };
    let answer = method?.call0().map_err(|cause| Error::Refused {
        type_name: type_name(obj),
        writable: false,
        cause,
    })?;
    let (device_type, device_id): (i32, i32) = answer.extract().map_err(|_| {
        interchange(
            obj,
            "__dlpack_device__() to return (device_type, device_id)",
            answer.repr().map_or_else(|_| "?".into(), |r| r.to_string()),
        )
    })?;
    if cpu_accessible(device_type) {
        Ok(())
    } else {
        Err(Error::Device {
            type_name: type_name(obj),
            device_type,
            device_id,
        })
    }
}

/// Step 2: `__dlpack__(max_version=(1, 1)[, copy=False])`, or `__dlpack__()` when the
/// producer refuses the keywords with `TypeError`.
fn call_dlpack<'py>(
    obj: &Bound<'py, PyAny>,
    method: &Bound<'py, PyAny>,
    request: Request,
) -> Result<Bound<'py, PyAny>, Error> {
    let py = obj.py();
    let refused = |cause| Error::Refused {
        type_name: type_name(obj),
        writable: request.writable(),
        cause,
    };
    let kwargs = PyDict::new(py);
    kwargs.set_item(intern!(py, "max_version"), (MAJOR_VERSION, MINOR_VERSION))?;
    if request.writable() {
        kwargs.set_item(intern!(py, "copy"), false)?;
    }
    match method.call((), Some(&kwargs)) {
        Ok(capsule) => Ok(capsule),
        Err(err) if err.is_instance_of::<PyTypeError>(py) => method.call0().map_err(refused),
        Err(err) => Err(refused(err)),
    }
}

/// A managed tensor pybuf has taken ownership of: its deleter is called exactly once, when
/// this is dropped.
///
/// Dropped only while attached to the interpreter (the deleter may call into Python, as
/// numpy's does): in acquisition's error paths, or by [`release_dlpack`], which the release
/// machinery calls attached and never after finalization (it then leaks the state without
/// dropping it).
enum Managed {
    Versioned(*mut DLManagedTensorVersioned),
    Legacy(*mut DLManagedTensor),
}

impl Drop for Managed {
    fn drop(&mut self) {
        // SAFETY: the pointer is the capsule's managed tensor, whose ownership `take`
        // transferred to us by renaming the capsule, so nobody else calls its deleter. The
        // deleter field is read through the raw pointer (its position is the same in every
        // major version, as `dlpack.h` guarantees) and called once, here; it frees the
        // tensor, which is not touched afterwards. We are attached (see the type).
        unsafe {
            match *self {
                Managed::Versioned(p) => {
                    if let Some(deleter) = ptr::addr_of!((*p).deleter).read() {
                        deleter(p);
                    }
                }
                Managed::Legacy(p) => {
                    if let Some(deleter) = ptr::addr_of!((*p).deleter).read() {
                        deleter(p);
                    }
                }
            }
            // A deleter has nobody to report an exception to: say it, as CPython does for
            // destructors, rather than leave it set for unrelated code to trip over.
            if !ffi::PyErr_Occurred().is_null() {
                ffi::PyErr_WriteUnraisable(ptr::null_mut());
            }
        }
    }
}

/// Step 3: checks the capsule's name and takes ownership of its tensor.
fn take(obj: &Bound<'_, PyAny>, capsule: &Bound<'_, PyAny>) -> Result<Managed, Error> {
    const EXPECTED: &str = "a PyCapsule named 'dltensor_versioned' or 'dltensor'";
    // SAFETY: `capsule` is alive and we are attached.
    if unsafe { ffi::PyCapsule_CheckExact(capsule.as_ptr()) } == 0 {
        return Err(interchange(
            obj,
            EXPECTED,
            format!("a '{}'", type_name(capsule)),
        ));
    }
    // SAFETY: a live capsule; the name is NULL or a string the capsule keeps alive, read here
    // before anything can change it.
    let name = unsafe { ffi::PyCapsule_GetName(capsule.as_ptr()) };
    let name = (!name.is_null()).then(|| {
        // SAFETY: see above.
        unsafe { CStr::from_ptr(name) }
    });
    let (versioned, used) = match name {
        Some(n) if n == VERSIONED_CAPSULE_NAME => (true, USED_VERSIONED_CAPSULE_NAME),
        Some(n) if n == LEGACY_CAPSULE_NAME => (false, USED_LEGACY_CAPSULE_NAME),
        Some(n) => {
            return Err(interchange(
                obj,
                EXPECTED,
                format!("a capsule named {:?}", n.to_string_lossy()),
            ))
        }
        None => return Err(interchange(obj, EXPECTED, "an unnamed capsule".into())),
    };
    let name = if versioned {
        VERSIONED_CAPSULE_NAME
    } else {
        LEGACY_CAPSULE_NAME
    };
    // SAFETY: a live capsule with this name (checked); a valid capsule's pointer is non-NULL.
    let pointer = unsafe { ffi::PyCapsule_GetPointer(capsule.as_ptr(), name.as_ptr()) };
    if pointer.is_null() {
        return Err(PyErr::fetch(obj.py()).into());
    }
    // SAFETY: renaming a live capsule; the new name is a `'static` string, as the capsule API
    // requires (it keeps the pointer).
    if unsafe { ffi::PyCapsule_SetName(capsule.as_ptr(), used.as_ptr()) } != 0 {
        return Err(PyErr::fetch(obj.py()).into());
    }
    // The capsule's destructor no longer calls the deleter: it is ours to call.
    Ok(if versioned {
        Managed::Versioned(pointer.cast())
    } else {
        Managed::Legacy(pointer.cast())
    })
}

/// The format the buffer protocol gives for a native scalar (numpy's spelling: explicit byte
/// order for multi-byte kinds), as `'static` C strings.
fn native_format(kind: ScalarKind) -> Option<&'static CStr> {
    use ScalarKind::*;
    let little = Endian::NATIVE == Endian::Little;
    Some(match kind {
        Bool => c"?",
        I8 => c"b",
        U8 => c"B",
        I16 if little => c"<h",
        I16 => c">h",
        U16 if little => c"<H",
        U16 => c">H",
        I32 if little => c"<i",
        I32 => c">i",
        U32 if little => c"<I",
        U32 => c">I",
        I64 if little => c"<q",
        I64 => c">q",
        U64 if little => c"<Q",
        U64 => c">Q",
        F16 if little => c"<e",
        F16 => c">e",
        F32 if little => c"<f",
        F32 => c">f",
        F64 if little => c"<d",
        F64 => c">d",
        ComplexF16 if little => c"<Ze",
        ComplexF16 => c">Ze",
        ComplexF32 if little => c"<Zf",
        ComplexF32 => c">Zf",
        ComplexF64 if little => c"<Zd",
        ComplexF64 => c">Zd",
        // no PEP 3118 code: pybuf's notation, read only for DLPack (`extension_scalar`)
        BF16 => c"E",
        _ => return None,
    })
}

/// What a DLPack handle owns, behind `Py_buffer.internal`.
struct State {
    /// Declared first: dropped (the deleter called) before the storage below, which does not
    /// point into the tensor.
    _managed: Managed,
    /// `Py_buffer.shape` points into it.
    shape: Box<[ffi::Py_ssize_t]>,
    /// `Py_buffer.strides` points into it (`None`: NULL, C order).
    strides: Option<Box<[ffi::Py_ssize_t]>>,
    /// `Py_buffer.format` for types without a `'static` format.
    format: Option<std::ffi::CString>,
}

/// Step 4: the tensor as a `Py_buffer`.
fn translate(obj: &Bound<'_, PyAny>, managed: Managed, request: Request) -> Result<Filled, Error> {
    // SAFETY: we own the tensor (until `managed` drops). The version is read first and
    // nothing past the deleter is read unless the major version is 1, as `dlpack.h`
    // requires; then the `DLTensor` header and the flags are copied out by value.
    let (tensor, flags) = unsafe {
        match managed {
            Managed::Versioned(p) => {
                let version = ptr::addr_of!((*p).version).read();
                if version.major != MAJOR_VERSION {
                    drop(managed);
                    return Err(interchange(
                        obj,
                        &format!("DLPack major version {MAJOR_VERSION}"),
                        format!("version {}.{}", version.major, version.minor),
                    ));
                }
                (
                    ptr::addr_of!((*p).dl_tensor).read(),
                    Some(ptr::addr_of!((*p).flags).read()),
                )
            }
            Managed::Legacy(p) => (ptr::addr_of!((*p).dl_tensor).read(), None),
        }
    };
    let DLTensor {
        data,
        device,
        ndim,
        dtype,
        shape,
        strides,
        byte_offset,
    } = tensor;
    if !cpu_accessible(device.device_type) {
        return Err(Error::Device {
            type_name: type_name(obj),
            device_type: device.device_type,
            device_id: device.device_id,
        });
    }

    // The element: a scalar with a PEP 3118 format, bfloat16, or a type no element reads.
    let DLDataType { code, bits, lanes } = dtype;
    let item_bits = u32::from(bits) * u32::from(lanes);
    let padded = flags.is_some_and(|f| f & FLAG_IS_SUBBYTE_TYPE_PADDED != 0);
    let scalar = match dtype.to_scalar() {
        Some(scalar) => scalar,
        None if item_bits > 0 && (item_bits % 8 == 0 || (padded && lanes == 1)) => {
            Scalar::native(ScalarKind::DLPackOther { code, bits, lanes })
        }
        None => {
            return Err(interchange(
                obj,
                "items of whole bytes",
                format!("packed {item_bits}-bit items (DLPack type code {code}, {bits} bits, {lanes} lane(s))"),
            ))
        }
    };
    let itemsize = scalar.kind.size() as ffi::Py_ssize_t;
    let (static_format, owned_format) = match native_format(scalar.kind) {
        Some(format) => (Some(format), None),
        None => (
            None,
            // pybuf's notation, read only for DLPack (`extension_scalar`)
            Some(
                std::ffi::CString::new(format!("dlpack({code},{bits},{lanes})"))
                    .expect("digits and punctuation have no NUL"),
            ),
        ),
    };

    // Shape and strides, copied into our storage (strides converted to bytes).
    let in_range = usize::try_from(ndim).is_ok_and(|n| n <= crate::MAX_NDIM);
    let axes = if in_range { ndim as usize } else { 0 };
    let invalid = |reason: String| Error::InvalidLayout {
        type_name: type_name(obj),
        reason,
    };
    // SAFETY: a non-NULL `shape`/`strides` of a DLTensor holds `ndim` values, valid while we
    // own the tensor; `axes` is `ndim`, checked to be 0..=64 (0 when out of range, for which
    // the shared checks report `ndim`).
    let read = |p: *mut i64| (!p.is_null()).then(|| unsafe { std::slice::from_raw_parts(p, axes) });
    let shape: Vec<ffi::Py_ssize_t> = match read(shape) {
        Some(raw) => raw
            .iter()
            .enumerate()
            .map(|(axis, &n)| {
                ffi::Py_ssize_t::try_from(n)
                    .map_err(|_| invalid(format!("length {n} on axis {axis} overflows")))
            })
            .collect::<Result<_, _>>()?,
        None if axes == 0 => Vec::new(),
        None => {
            return Err(interchange(
                obj,
                &format!("a shape for {ndim} dimensions"),
                "NULL".into(),
            ))
        }
    };
    let strides = match read(strides) {
        Some(raw) if axes > 0 => Some(
            raw.iter()
                .enumerate()
                .map(|(axis, &s)| {
                    ffi::Py_ssize_t::try_from(s)
                        .ok()
                        .and_then(|s| s.checked_mul(itemsize))
                        .ok_or_else(|| {
                            invalid(format!(
                                "stride {s} (elements of {itemsize} bytes) on axis {axis} \
                                 overflows a byte stride"
                            ))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        _ => None,
    };
    let buf = usize::try_from(byte_offset)
        .ok()
        .and_then(|offset| (data as usize).checked_add(offset))
        .ok_or_else(|| {
            invalid(format!(
                "data address {data:p} + byte_offset {byte_offset} overflows"
            ))
        })?;

    let readonly = match flags {
        Some(flags) => flags & FLAG_READ_ONLY != 0,
        None => !is_numpy_dlpack(obj),
    };
    if request.writable() {
        if readonly {
            return Err(Error::ReadOnly {
                type_name: type_name(obj),
            });
        }
        if flags.is_some_and(|f| f & FLAG_IS_COPIED != 0) {
            return Err(interchange(
                obj,
                "the producer's own memory (pybuf asked for copy=False)",
                "a copy (the IS_COPIED flag)".into(),
            ));
        }
    }

    let len = super::byte_len(&shape, itemsize).map_err(invalid)?;
    let mut state = Box::new(State {
        _managed: managed,
        shape: shape.into_boxed_slice(),
        strides: strides.map(Vec::into_boxed_slice),
        format: owned_format,
    });
    let mut view = zeroed_view();
    view.buf = buf as *mut c_void;
    view.len = len;
    view.itemsize = itemsize;
    view.readonly = c_int::from(readonly);
    view.ndim = ndim;
    view.format = match (&state.format, static_format) {
        (Some(owned), _) => owned.as_ptr().cast_mut(),
        (None, Some(format)) => format.as_ptr().cast_mut(),
        (None, None) => unreachable!("one of the two formats is set"),
    };
    view.shape = if state.shape.is_empty() {
        ptr::null_mut()
    } else {
        state.shape.as_mut_ptr()
    };
    view.strides = match &mut state.strides {
        Some(strides) if !strides.is_empty() => strides.as_mut_ptr(),
        _ => ptr::null_mut(),
    };
    view.obj = obj.clone().into_ptr();
    view.internal = Box::into_raw(state).cast::<c_void>();
    // SAFETY: `view` describes the tensor's memory as the buffer protocol would: `format` is
    // `'static` or owned by the boxed `State` behind `internal`, `shape` and `strides` point
    // into it (heap storage that does not move), and the memory stays valid until the
    // deleter runs, which only `release_dlpack` (dropping the state) does. `obj` is a strong
    // reference to the producer. No field changes after this point.
    Ok(unsafe { Filled::new(obj.py(), view, release_dlpack, P) })
}

/// The item of a DLPack acquisition's format in pybuf's own notation for element types
/// without a PEP 3118 code: `"E"` (bfloat16) and `"dlpack(code,bits,lanes)"` (a type no
/// element reads), as [`translate`] writes them. Only read for DLPack acquisitions.
pub(crate) fn extension_scalar(format: &str) -> Option<Scalar> {
    if format == "E" {
        return Some(Scalar::native(ScalarKind::BF16));
    }
    let mut numbers = format
        .strip_prefix("dlpack(")?
        .strip_suffix(')')?
        .split(',');
    let code = numbers.next()?.parse().ok()?;
    let bits = numbers.next()?.parse().ok()?;
    let lanes = numbers.next()?.parse().ok()?;
    if numbers.next().is_some() {
        return None;
    }
    Some(Scalar::native(ScalarKind::DLPackOther {
        code,
        bits,
        lanes,
    }))
}

/// Whether `obj` exports through numpy's own `ndarray.__dlpack__` (numpy subclasses
/// included), whose legacy capsules are writable memory (see the module documentation).
/// numpy is not imported for this: an object can only use numpy's method if numpy is loaded.
fn is_numpy_dlpack(obj: &Bound<'_, PyAny>) -> bool {
    let py = obj.py();
    let own = || -> PyResult<bool> {
        let Ok(numpy) = py.import("sys")?.getattr("modules")?.get_item("numpy") else {
            return Ok(false);
        };
        let numpy_method = numpy.getattr("ndarray")?.getattr("__dlpack__")?;
        Ok(obj.get_type().getattr("__dlpack__")?.is(&numpy_method))
    };
    own().unwrap_or(false)
}

/// [`ReleaseFn`](crate::release::ReleaseFn) of DLPack handles: calls the deleter once, frees
/// the storage, returns the reference to the producer.
///
/// # Safety
/// As for `ReleaseFn`; `view` was filled by [`translate`].
unsafe fn release_dlpack(view: &mut ffi::Py_buffer) {
    let state = std::mem::replace(&mut view.internal, ptr::null_mut()).cast::<State>();
    // SAFETY: `internal` is the `State` boxed by `translate`, taken back once (set to NULL);
    // dropping it calls the deleter (attached: the caller's promise).
    drop(unsafe { Box::from_raw(state) });
    let obj = std::mem::replace(&mut view.obj, ptr::null_mut());
    // SAFETY: `obj` is the strong reference `translate` stored; attached.
    unsafe { ffi::Py_XDECREF(obj) };
}
