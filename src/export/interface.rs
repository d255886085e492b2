//! numpy's array interface (version 3) of an export, and `pybuf.ExportPin`, the object that
//! keeps the memory exported for as long as a consumer of the interface uses it.
//!
//! # What holds the memory
//!
//! A consumer of `__array_interface__` gets an address and keeps a reference to some Python
//! object for as long as it uses that address; it never tells the producer when it is done.
//! numpy keeps a reference to the object named by `data` when `data` is a buffer object, and
//! to the object whose attribute it read when `data` is an `(address, readonly)` tuple. A tuple
//! would tie the memory's lifetime to the `pybuf.ExportedBuffer` itself, and then nothing
//! would stop Rust from taking the data back (`try_into_inner`) under a numpy array that still
//! points into it. So `data` is a fresh `pybuf.ExportPin` on every access: the pin counts as
//! a view of the export (`views`) from its creation until it is garbage collected, which for
//! an array numpy builds from the dict is when that array (whose base is the pin) is gone.
//! While any pin lives, `try_into_inner` refuses and the data stays allocated.
//!
//! The pin's own buffer is one dimension of unsigned bytes covering the elements, from the
//! lowest to the end of the highest (`offset` in the dict leads from there to the first
//! element, so negative strides work). It is writable when the export is, unless the span
//! includes elements that the export does not show (a strided array) and the element type has
//! invalid bit patterns: Rust would never validate what was written there.

use std::ffi::c_int;

use pyo3::exceptions::PyBufferError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use pyo3::{ffi, IntoPyObjectExt};

use super::layout;
use super::object::{DataPtr, ExportedBuffer, ViewPin};
use crate::format::{ItemKind, ItemLayout, Scalar, ScalarKind};
use crate::Error;

/// The `__array_interface__` dict of an export, with a new pin as `data`.
pub(crate) fn array_interface<'py>(
    slf: &Bound<'py, ExportedBuffer>,
) -> Result<Bound<'py, PyDict>, Error> {
    let py = slf.py();
    let this = slf.get();
    let layout = this.layout();
    // numpy folds sub-array items into the shape: `[f32; 3]` items are 3 more float32s
    let (inner, sub_shape) = fold(&layout.item);
    let mut shape = layout.shape.to_vec();
    let mut strides = layout.strides.to_vec();
    let mut step = inner.size as isize;
    let mut sub_strides = Vec::with_capacity(sub_shape.len());
    for &len in sub_shape.iter().rev() {
        sub_strides.push(step);
        step = step.saturating_mul(len as isize);
    }
    shape.extend(sub_shape.iter().map(|&d| d as isize));
    strides.extend(sub_strides.iter().rev());
    let c_contiguous = layout::is_c_contiguous(&shape, &strides, inner.size);

    let (low, span) = layout::span(&layout.shape, &layout.strides, layout.itemsize);
    let hides_elements = span != layout.nbytes;
    let pin = ExportPin {
        _pin: this.pin_view()?,
        start: DataPtr(layout.ptr.0.wrapping_offset(low)),
        len: span,
        writable: this.is_writable() && !(hides_elements && this.has_invalid_values()),
    };
    let dict = PyDict::new(py);
    dict.set_item("data", Bound::new(py, pin)?)?;
    dict.set_item("offset", -low)?;
    dict.set_item("shape", PyTuple::new(py, &shape)?)?;
    if c_contiguous {
        dict.set_item("strides", py.None())?;
    } else {
        dict.set_item("strides", PyTuple::new(py, &strides)?)?;
    }
    dict.set_item("typestr", item_typestr(inner))?;
    dict.set_item("descr", descr(py, inner)?)?;
    dict.set_item("version", 3)?;
    Ok(dict)
}

/// The innermost item of nested sub-arrays, and their shape (empty for other items).
pub(crate) fn fold(item: &ItemLayout) -> (&ItemLayout, Vec<usize>) {
    let mut item = item;
    let mut shape = Vec::new();
    while let ItemKind::Array { shape: sub, elem } = &item.kind {
        shape.extend_from_slice(sub);
        item = elem;
    }
    (item, shape)
}

/// numpy's type string of a scalar: byte order (`|` where it does not matter), kind, size.
/// Kinds numpy has no type for are void of their size (`'<V2'` for bfloat16, as numpy writes
/// it for `ml_dtypes.bfloat16` arrays).
pub(crate) fn typestr(s: Scalar) -> String {
    use ScalarKind::*;
    let order = if s.kind.has_byte_order() {
        s.endian.prefix()
    } else {
        '|'
    };
    let size = s.kind.size();
    let code = match s.kind {
        Bool => "b",
        I8 | I16 | I32 | I64 => "i",
        U8 | U16 | U32 | U64 | Pointer => "u",
        F16 | F32 | F64 => "f",
        ComplexF16 | ComplexF32 | ComplexF64 => "c",
        Char | Bytes(_) => "S",
        // numpy has no bfloat16 of its own; ml_dtypes' bfloat16 arrays say '<V2' too
        PascalString(_) | BF16 | DLPackOther { .. } => "V",
    };
    format!("{order}{code}{size}")
}

/// The type string of a folded item: a scalar's, or `|V<size>` for a record.
fn item_typestr(item: &ItemLayout) -> String {
    match &item.kind {
        ItemKind::Scalar(s) => typestr(*s),
        _ => format!("|V{}", item.size),
    }
}

/// numpy's `descr` of a folded item: `[('', typestr)]` for a scalar; for a record, its fields
/// in offset order with padding as `('', '|V<n>')` entries, sub-array fields as
/// `(name, typestr, shape)` and nested records as nested lists (what numpy's own
/// `__array_interface__['descr']` gives for the same dtype).
pub(crate) fn descr<'py>(py: Python<'py>, item: &ItemLayout) -> PyResult<Bound<'py, PyList>> {
    match &item.kind {
        ItemKind::Struct(fields) => {
            let list = PyList::empty(py);
            let mut fields: Vec<_> = fields.iter().enumerate().collect();
            fields.sort_by_key(|(_, f)| f.offset);
            let mut at = 0;
            for (index, field) in fields {
                if field.offset > at {
                    list.append(("", format!("|V{}", field.offset - at)))?;
                }
                let name = field.name.clone().unwrap_or_else(|| format!("f{index}"));
                let (inner, sub_shape) = fold(&field.layout);
                let ty = match &inner.kind {
                    ItemKind::Struct(_) => descr(py, inner)?.into_any(),
                    _ => item_typestr(inner).into_bound_py_any(py)?,
                };
                if sub_shape.is_empty() {
                    list.append((name, ty))?;
                } else {
                    list.append((name, ty, PyTuple::new(py, sub_shape)?))?;
                }
                at = at.max(field.offset + field.layout.size);
            }
            if item.size > at {
                list.append(("", format!("|V{}", item.size - at)))?;
            }
            Ok(list)
        }
        _ => PyList::new(py, [("", item_typestr(item))]),
    }
}

/// Keeps an export's memory exported while it lives: the `data` of
/// `ExportedBuffer.__array_interface__` (see the module documentation). Its buffer is the
/// bytes of the elements' span, one dimension of unsigned bytes.
#[pyclass(module = "pybuf", name = "ExportPin", frozen)]
pub(crate) struct ExportPin {
    /// Counted as a view of the export until this object is gone.
    _pin: ViewPin,
    /// The lowest byte of the elements.
    start: DataPtr,
    /// Bytes from `start` to the end of the highest element.
    len: usize,
    writable: bool,
}

#[pymethods]
impl ExportPin {
    /// # Safety
    ///
    /// Called by CPython with a valid `view` to fill (see `PyObject_GetBuffer`).
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let this = slf.get();
        // SAFETY: `view` is the Py_buffer CPython asks us to fill. `start..start + len` is the
        // span of the export's elements inside the owner's allocation, all of it initialized
        // (valid elements, padding zeroed at export); `_pin` keeps it allocated while this
        // object lives, and `PyBuffer_FillInfo` stores a new reference to this object in
        // `view.obj`, so the memory outlives the view. It refuses writable requests for a
        // read-only pin and leaves `view.obj` NULL on failure.
        let rc = unsafe {
            ffi::PyBuffer_FillInfo(
                view,
                slf.as_ptr(),
                this.start.0.cast(),
                this.len as ffi::Py_ssize_t,
                c_int::from(!this.writable),
                flags,
            )
        };
        if rc != 0 {
            return Err(PyErr::take(slf.py()).unwrap_or_else(|| {
                PyBufferError::new_err("pybuf.ExportPin: the buffer request was refused")
            }));
        }
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!(
            "<pybuf.ExportPin of {} bytes, {}>",
            self.len,
            if self.writable {
                "writable"
            } else {
                "readonly"
            }
        )
    }
}
