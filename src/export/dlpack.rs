//! `ExportedBuffer.__dlpack__`: DLPack capsules of exported memory.
//!
//! # Lifetime of the memory
//!
//! Each capsule carries one Rust allocation, a [`Holder`]: the managed tensor (its first
//! field, so the tensor's address is the holder's), the shape and strides it points to, and
//! what keeps the data: a [`ViewPin`] of the export (counted in `views`, so `try_into_inner`
//! refuses while it lives), or for `copy=True` the copied bytes themselves. The holder is
//! freed exactly once, by the tensor's deleter: the consumer calls it when it is done (numpy
//! when its array is garbage collected), or the capsule's destructor calls it for a capsule
//! that was never consumed (still named `dltensor` / `dltensor_versioned`).
//!
//! The deleter may run on any thread, with or without the interpreter (DLPack lets consumers
//! call it from anywhere). It therefore never touches Python: dropping the pin takes the
//! export's own lock for one decrement and drops an `Arc` of its state. The Python object is
//! not referenced by the capsule at all; if it is gone by then, the last pin frees the data
//! (plain Rust memory) on whichever thread runs the deleter.

use std::ffi::{c_void, CStr};
use std::ptr::{self, NonNull};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

use super::layout;
use super::object::{ExportedBuffer, ViewPin};
use crate::dlpack::{
    DLDataType, DLDevice, DLDeviceType, DLManagedTensor, DLManagedTensorVersioned, DLPackVersion,
    DLTensor, FLAG_IS_COPIED, FLAG_READ_ONLY, LEGACY_CAPSULE_NAME, MAJOR_VERSION, MINOR_VERSION,
    VERSIONED_CAPSULE_NAME,
};
use crate::Error;

/// The keyword arguments of `__dlpack__`.
pub(crate) struct Request<'py> {
    pub(crate) stream: Option<Bound<'py, PyAny>>,
    pub(crate) max_version: Option<(i64, i64)>,
    pub(crate) dl_device: Option<(i64, i64)>,
    pub(crate) copy: Option<bool>,
}

/// A DLPack capsule of the export, as the Python array API standard describes `__dlpack__`.
pub(crate) fn export<'py>(
    slf: &Bound<'py, ExportedBuffer>,
    request: Request<'py>,
) -> Result<Bound<'py, PyCapsule>, Error> {
    let py = slf.py();
    let this = slf.get();
    let layout = this.layout();
    if let Some(stream) = request.stream.as_ref().filter(|s| !s.is_none()) {
        return Err(Error::DLPackStream {
            stream: stream.repr()?.to_cow()?.into_owned(),
        });
    }
    if let Some((device_type, device_id)) = request.dl_device {
        if (device_type, device_id) != (i64::from(DLDeviceType::CPU), 0) {
            return Err(Error::DLPackDevice {
                device_type,
                device_id,
            });
        }
    }
    let (dtype, sub_shape) =
        DLDataType::of_item(&layout.item).map_err(|reason| Error::DLPackDtype {
            format: this.format().to_string(),
            item: layout.item.describe(),
            reason: reason.to_string(),
        })?;
    // DLPack 1.x when the consumer can read it; the minor version it asked for, up to ours
    let version = match request.max_version {
        Some((major, minor)) if major == i64::from(MAJOR_VERSION) => Some(DLPackVersion {
            major: MAJOR_VERSION,
            minor: minor.clamp(0, i64::from(MINOR_VERSION)) as u32,
        }),
        Some((major, _)) if major > i64::from(MAJOR_VERSION) => Some(DLPackVersion {
            major: MAJOR_VERSION,
            minor: MINOR_VERSION,
        }),
        _ => None,
    };

    let elem_size = usize::from(dtype.bits) / 8;
    let mut shape: Vec<i64> = layout.shape.iter().map(|&d| d as i64).collect();
    shape.extend(sub_shape.iter().map(|&d| d as i64));
    let (data, strides, keep, flags) = if request.copy == Some(true) {
        // The consumer owns the copy alone: writable whatever the export is.
        let copy = copy_c_order(this)?;
        let data = copy.as_ptr().cast_mut().cast::<c_void>();
        (data, c_strides(&shape), Keep::Copy(copy), FLAG_IS_COPIED)
    } else {
        if version.is_none() && !this.is_writable() {
            return Err(Error::DLPackReadOnly {
                max_version: request.max_version,
            });
        }
        let mut strides = Vec::with_capacity(shape.len());
        for &stride in layout.strides.iter() {
            // Export strides are multiples of the item size, itself a multiple of the scalar
            // size; refuse rather than round should that ever not hold.
            if stride % elem_size as isize != 0 {
                return Err(Error::InvalidLayout {
                    type_name: super::object::TYPE_NAME.to_string(),
                    reason: format!(
                        "byte stride {stride} is not a multiple of the element size {elem_size}"
                    ),
                });
            }
            strides.push((stride / elem_size as isize) as i64);
        }
        strides.extend(c_strides(&shape)[layout.shape.len()..].iter());
        let flags = if this.is_writable() {
            0
        } else {
            FLAG_READ_ONLY
        };
        let pin = this.pin_view()?;
        (
            layout.ptr.0.cast::<c_void>(),
            strides,
            Keep::Export(pin),
            flags,
        )
    };
    let tensor = Tensor {
        data,
        dtype,
        shape: shape.into_boxed_slice(),
        strides: strides.into_boxed_slice(),
        keep,
    };
    match version {
        Some(version) => versioned_capsule(py, tensor, version, flags),
        None => legacy_capsule(py, tensor),
    }
}

/// C-order strides in elements.
fn c_strides(shape: &[i64]) -> Vec<i64> {
    let mut strides = vec![0i64; shape.len()];
    let mut step = 1i64;
    for (stride, &len) in strides.iter_mut().zip(shape).rev() {
        *stride = step;
        step = step.saturating_mul(len.max(1));
    }
    strides
}

/// The elements in C order, in memory aligned for every DLPack type pybuf exports (8 bytes).
fn copy_c_order(this: &ExportedBuffer) -> Result<Box<[u64]>, Error> {
    let layout = this.layout();
    let mut copy = vec![0u64; layout.nbytes.div_ceil(8)].into_boxed_slice();
    let dst = copy.as_mut_ptr().cast::<u8>();
    let itemsize = layout.itemsize;
    this.read_raw(|first| {
        layout::for_each_offset(&layout.shape, &layout.strides, |position, offset| {
            // SAFETY: `offset` is an element's byte offset from the first element, so the
            // `itemsize` bytes there lie in the owner's allocation, kept by `read_raw`, and are
            // initialized (valid elements, padding zeroed at export). `position < size`, so the
            // destination range lies within `copy` (`nbytes = size * itemsize` bytes). A raw
            // copy, never a reference to memory a consumer may be writing (see `read_raw`).
            unsafe {
                ptr::copy_nonoverlapping(
                    first.wrapping_offset(offset),
                    dst.add(position * itemsize),
                    itemsize,
                )
            }
        })
    })?;
    Ok(copy)
}

/// What a capsule's tensor describes and what keeps its memory.
struct Tensor {
    data: *mut c_void,
    dtype: DLDataType,
    shape: Box<[i64]>,
    strides: Box<[i64]>,
    keep: Keep,
}

/// What keeps a tensor's memory valid until its deleter runs.
enum Keep {
    /// A counted view of the export's memory.
    Export(#[allow(dead_code)] ViewPin),
    /// A copy the tensor owns.
    Copy(#[allow(dead_code)] Box<[u64]>),
}

/// The one allocation behind a capsule. `managed` comes first (`repr(C)`), so a pointer to the
/// managed tensor is a pointer to the holder.
#[repr(C)]
struct Holder<M> {
    managed: M,
    shape: Box<[i64]>,
    strides: Box<[i64]>,
    _keep: Keep,
}

impl Tensor {
    /// The `DLTensor` of this tensor; its shape and strides point into the boxed slices, whose
    /// heap memory does not move when they move into the holder.
    fn dl_tensor(&mut self) -> DLTensor {
        let ndim = self.shape.len();
        let (shape, strides) = if ndim == 0 {
            (ptr::null_mut(), ptr::null_mut())
        } else {
            (self.shape.as_mut_ptr(), self.strides.as_mut_ptr())
        };
        DLTensor {
            data: self.data,
            device: DLDevice::CPU,
            ndim: ndim as i32,
            dtype: self.dtype,
            shape,
            strides,
            byte_offset: 0,
        }
    }

    fn into_holder<M>(self, managed: M) -> *mut Holder<M> {
        Box::into_raw(Box::new(Holder {
            managed,
            shape: self.shape,
            strides: self.strides,
            _keep: self.keep,
        }))
    }
}

/// The two managed-tensor structs a capsule can carry: what the one capsule path below needs
/// to know of each.
trait Managed: Sized {
    /// The name of a capsule whose tensor nobody has consumed yet.
    const CAPSULE_NAME: &'static CStr;
    /// The tensor's `manager_ctx`.
    fn manager_ctx(&mut self) -> &mut *mut c_void;
    /// The tensor's deleter.
    fn deleter(&self) -> Option<unsafe extern "C" fn(*mut Self)>;
}

impl Managed for DLManagedTensorVersioned {
    const CAPSULE_NAME: &'static CStr = VERSIONED_CAPSULE_NAME;
    fn manager_ctx(&mut self) -> &mut *mut c_void {
        &mut self.manager_ctx
    }
    fn deleter(&self) -> Option<unsafe extern "C" fn(*mut Self)> {
        self.deleter
    }
}

impl Managed for DLManagedTensor {
    const CAPSULE_NAME: &'static CStr = LEGACY_CAPSULE_NAME;
    fn manager_ctx(&mut self) -> &mut *mut c_void {
        &mut self.manager_ctx
    }
    fn deleter(&self) -> Option<unsafe extern "C" fn(*mut Self)> {
        self.deleter
    }
}

fn versioned_capsule(
    py: Python<'_>,
    mut tensor: Tensor,
    version: DLPackVersion,
    flags: u64,
) -> Result<Bound<'_, PyCapsule>, Error> {
    let managed = DLManagedTensorVersioned {
        version,
        manager_ctx: ptr::null_mut(),
        deleter: Some(delete::<DLManagedTensorVersioned>),
        flags,
        dl_tensor: tensor.dl_tensor(),
    };
    capsule(py, tensor, managed)
}

fn legacy_capsule(py: Python<'_>, mut tensor: Tensor) -> Result<Bound<'_, PyCapsule>, Error> {
    let managed = DLManagedTensor {
        dl_tensor: tensor.dl_tensor(),
        manager_ctx: ptr::null_mut(),
        deleter: Some(delete::<DLManagedTensor>),
    };
    capsule(py, tensor, managed)
}

/// Moves `managed` (whose deleter is [`delete::<M>`]) and what `tensor` keeps into one
/// [`Holder`] and wraps it in a capsule named `M::CAPSULE_NAME`.
fn capsule<M: Managed>(
    py: Python<'_>,
    tensor: Tensor,
    managed: M,
) -> Result<Bound<'_, PyCapsule>, Error> {
    let holder = tensor.into_holder(managed);
    // SAFETY: `holder` is a live allocation we own; `managed` is its first field.
    unsafe { *(*holder).managed.manager_ctx() = holder.cast() };
    let pointer = NonNull::new(holder.cast::<c_void>()).expect("Box::into_raw is never null");
    // SAFETY: the pointer is the managed tensor, valid until its deleter runs, which happens
    // exactly once: through `destroy_capsule` while the capsule is unconsumed (still named
    // `M::CAPSULE_NAME`), or by the consumer that renamed it. The destructor is safe on any
    // thread CPython runs it.
    let capsule = unsafe {
        PyCapsule::new_with_pointer_and_destructor(
            py,
            pointer,
            M::CAPSULE_NAME,
            Some(destroy_capsule::<M>),
        )
    };
    capsule.map_err(|err| {
        // SAFETY: no capsule owns the tensor, so this is its one deleter call.
        unsafe { delete::<M>(holder.cast()) };
        Error::Python(err)
    })
}

/// The deleter of the tensors `capsule` makes: frees the holder (and with it the pin or the
/// copy). Never touches Python, never blocks beyond the export's own lock: callable from any
/// thread.
///
/// # Safety
/// `managed` is NULL or a tensor made by [`capsule`] whose deleter has not run.
unsafe extern "C" fn delete<M: Managed>(managed: *mut M) {
    if managed.is_null() {
        return;
    }
    // SAFETY: the tensor is the first field of a `Holder<M>` allocated by `Box::into_raw`,
    // and the DLPack contract (the consumer or our capsule destructor calls the deleter once)
    // makes this the only release of it.
    drop(unsafe { Box::from_raw(managed.cast::<Holder<M>>()) });
}

/// Capsule destructor: a capsule still named `M::CAPSULE_NAME` was never consumed, so its
/// tensor is still ours to delete; a renamed (`used_...`) one belongs to its consumer.
///
/// # Safety
/// Called by CPython with the capsule being destroyed.
unsafe extern "C" fn destroy_capsule<M: Managed>(capsule: *mut ffi::PyObject) {
    let name = M::CAPSULE_NAME.as_ptr();
    // SAFETY: `capsule` is a live capsule object (CPython is destroying it);
    // `PyCapsule_IsValid` only compares its name and never sets an exception.
    if unsafe { ffi::PyCapsule_IsValid(capsule, name) } == 0 {
        return;
    }
    // SAFETY: the capsule is valid under this name, so this returns its pointer without
    // setting an exception.
    let managed = unsafe { ffi::PyCapsule_GetPointer(capsule, name) }.cast::<M>();
    if managed.is_null() {
        return;
    }
    // SAFETY: an unconsumed capsule still owns its tensor (an `M`, by its name); its deleter
    // has not run.
    if let Some(deleter) = unsafe { (*managed).deleter() } {
        // SAFETY: the DLPack contract: one call, with the tensor itself.
        unsafe { deleter(managed) };
    }
}
