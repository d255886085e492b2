//! Export of Rust memory to Python: `numpy.asarray(x)`, `memoryview(x)`, `bytes(x)` and every
//! other consumer of the buffer protocol read it without a copy, and so do DLPack consumers
//! (`numpy.from_dlpack(x)`, `jax.numpy.from_dlpack(x)`, ...) and those of numpy's array
//! interface.
//!
//! One safe call turns a `Vec<T>`, a `Box<[T]>`, an [`ndarray::Array`] of any dimension and
//! layout (C or Fortran order, transposed, sliced with steps, negative strides, 0-d) or a
//! `bytes::Bytes` (feature `bytes`) into a Python object of type `pybuf.ExportedBuffer` that
//! owns the data. The format comes from the element type ([`Element::layout`]), so records,
//! complex numbers, `f16`, sub-arrays and byte-order types are described exactly. numpy is not
//! needed.
//!
//! ```
//! use pyo3::prelude::*;
//!
//! Python::attach(|py| -> PyResult<()> {
//!     let x = pybuf::export::from_vec(py, vec![1.5f64, 2.5, 3.5])?;
//!     let m = py.eval(c"memoryview", None, None)?.call1((&x,))?;
//!     assert_eq!(m.call_method0("tolist")?.extract::<Vec<f64>>()?, [1.5, 2.5, 3.5]);
//!
//!     // the data comes back only when no view is left
//!     assert!(x.try_into_inner().is_err());
//!     m.call_method0("release")?;
//!     assert_eq!(x.try_into_inner()?, [1.5, 2.5, 3.5]);
//!     Ok(())
//! })
//! .unwrap();
//! ```
//!
//! # Requests
//!
//! `pybuf.ExportedBuffer` answers every request flag like CPython's own `memoryview` of an
//! equivalent numpy array: a request without `PyBUF_STRIDES` (or with a contiguity flag) is
//! refused with `BufferError` when the memory is not laid out that way, a writable request is
//! refused for read-only exports, a request without `PyBUF_ND` gets one dimension of `len`
//! bytes, and one without `PyBUF_FORMAT` gets a NULL format (meaning `'B'`) while `itemsize`
//! keeps the element's size. Shape, strides and format live in the object, so they stay valid
//! as long as any view does. Suboffsets are always NULL.
//!
//! # Ownership and aliasing
//!
//! Each view a consumer holds is counted. [`Exported::try_into_inner`] hands the data back
//! only when no view is live ([`Error::ViewsAlive`] otherwise), after which every request is
//! refused ([`Error::ExportTaken`]). [`Exported::with_inner`] lends Rust a shared view of the
//! data while it stays exported; for a writable export only while no view exists, and new
//! views are refused until it returns, so Rust never reads memory Python may be writing. All
//! bookkeeping is behind a lock, so this holds with free-threaded Python as well. The data is
//! freed when the last Python reference and the last view are gone.
//!
//! Writable exports of types with invalid bit patterns (`bool`, records holding one) are
//! validated before Rust sees the data again ([`Error::InvalidValue`] if Python wrote, say, a
//! `2` into a `bool`). Struct padding bytes are zeroed at export (those of the elements a
//! strided array hides too), so Python never reads uninitialized memory.
//!
//! A "view" above is anything a consumer holds on the memory: a buffer-protocol view (a
//! `memoryview`, a numpy array made by `numpy.asarray`), a DLPack tensor whose deleter has not
//! run, or an array-interface pin (below). [`Exported::view_count`] and the Python attribute
//! `views` count them all.
//!
//! # In Python
//!
//! Besides the buffer protocol, a `pybuf.ExportedBuffer` has what a user expects of a returned
//! array, without pybuf depending on numpy:
//!
//! | | |
//! |---|---|
//! | `shape`, `strides`, `format`, `itemsize`, `ndim`, `nbytes`, `readonly` | as `memoryview(x)` has them (tuples; strides in bytes) |
//! | `len(x)` | the first dimension; `TypeError` for 0-d, as numpy |
//! | `x.tolist()` | numpy's `np.asarray(x).tolist()`: `int`, `float`, `complex`, `bool`, `bytes`; nested lists; tuples for records (a sub-array *field* is a list, where numpy gives an array) |
//! | `repr(x)` | `pybuf.ExportedBuffer([[0.0, 1.0], [2.0, 3.0]], dtype=float64, shape=(2, 2), readonly)`, summarized beyond 1000 elements |
//! | `x.views` | the live views |
//! | `x.__array_interface__` | numpy's array interface, version 3 |
//! | `x.__dlpack__(...)`, `x.__dlpack_device__()` | DLPack |
//!
//! [`Exported::to_numpy`] returns a real `numpy.ndarray` on the memory, importing numpy when
//! it is called ([`Error::NumpyUnavailable`] without it).
//!
//! # DLPack
//!
//! `x.__dlpack__(*, stream=None, max_version=None, dl_device=None, copy=None)` follows the
//! Python array API standard. A consumer that passes `max_version=(1, n)` or later gets a
//! versioned capsule (`"dltensor_versioned"`, DLPack 1.0 or 1.1, the `READ_ONLY` flag set for
//! read-only exports); any other gets a legacy capsule (`"dltensor"`), which cannot say
//! "read-only", so read-only memory is refused there ([`Error::DLPackReadOnly`], as numpy
//! does; jax asks for legacy capsules). `stream` must be `None` (host memory has none,
//! [`Error::DLPackStream`]); `dl_device` must be `None` or `(1, 0)`, the host
//! ([`Error::DLPackDevice`]); `copy=True` hands the consumer a C-order copy it owns
//! (`IS_COPIED`, writable). Sub-array items become trailing axes (`[f32; 3]` items are an
//! `(n, 3)` float32 tensor); records, byte strings and data in the other byte order have no
//! DLPack type ([`Error::DLPackDtype`]). Strides are exact (any order, negative, 0-d, empty);
//! `byte_offset` is 0, and the data address is that of the first element, as numpy does.
//!
//! The memory stays alive and counted as a view until the consumer calls the tensor's deleter
//! (or the capsule, never consumed, is destroyed). The capsule holds no reference to the
//! Python object, only to the export's data and bookkeeping: the deleter never touches the
//! interpreter and only takes the export's own lock for a decrement, so consumers may call it
//! from any thread, with or without the interpreter, even after the Python object is gone (it
//! then frees the data). The C structures are in [`crate::dlpack`].
//!
//! ```
//! use pyo3::prelude::*;
//!
//! Python::attach(|py| -> PyResult<()> {
//!     let x = pybuf::export::from_vec_mut(py, vec![1.0f32, 2.0, 3.0])?;
//!     let a = py.import("numpy")?.call_method1("from_dlpack", (&x,))?; // no copy
//!     a.set_item(0, 10.0)?;
//!     assert_eq!(x.view_count(), 1); // until numpy calls the deleter
//!     drop(a);
//!     assert_eq!(x.try_into_inner()?, [10.0, 2.0, 3.0]);
//!     Ok(())
//! })
//! .unwrap();
//! ```
//!
//! # The array interface
//!
//! `x.__array_interface__` is what numpy's own `__array_interface__` of `np.asarray(x)` is
//! (`shape`, `strides` — `None` when C-contiguous —, `typestr`, `descr`, `version` 3), except
//! for `data`. A consumer of the interface keeps a reference to an object and never says when
//! it is done with the address: numpy keeps the `data` object as its array's base when `data`
//! is a buffer object, and the object it read the attribute from when `data` is an `(address,
//! readonly)` tuple. With a tuple, nothing would stop Rust from taking the data back under such
//! an array. So `data` is a new `pybuf.ExportPin` on each access, with `offset` to the first
//! element: the pin is counted as a view for as long as it lives — from the attribute access
//! until the dict and every array numpy built from it are gone — and its buffer is the bytes
//! from the lowest to the highest element. It is writable when the export is, except when
//! those bytes include elements the export does not show (a strided array) of a type with
//! invalid bit patterns, which Rust would never validate.

mod dlpack;
mod interface;
mod layout;
mod numpy;
mod object;
mod values;

use std::any::Any;
use std::marker::PhantomData;

use ndarray::{Array, ArrayView, Dimension};
use pyo3::prelude::*;

use crate::{Element, Error};
pub use object::ExportedBuffer;
use object::{Layout, Validity};

mod sealed {
    pub trait Sealed {}
}

/// A Rust value that can be exported: `Vec<T>`, `Box<[T]>`, `Array<T, D>`, `bytes::Bytes`.
///
/// Sealed: pybuf knows how to keep each of these in place while Python reads them.
pub trait ExportSource: sealed::Sealed + Send + Sized + 'static {
    /// The element type.
    type Elem: Element;
    /// What [`Exported::with_inner`] lends: a slice, or an [`ArrayView`] of the same shape.
    type View<'a>;

    #[doc(hidden)]
    fn into_export(self, writable: bool) -> Result<ExportedBuffer, Error>;
    #[doc(hidden)]
    fn from_owner(owner: Box<dyn Any + Send>) -> Self;
    #[doc(hidden)]
    fn view(owner: &(dyn Any + Send)) -> Self::View<'_>;
}

/// An [`ExportSource`] whose memory Python may also write to (not `bytes::Bytes`).
pub trait WritableSource: ExportSource {}

/// A typed Rust handle of an exported object: convert it into a Python object (it implements
/// [`IntoPyObject`]) to hand it to Python, take the data back with
/// [`try_into_inner`](Exported::try_into_inner).
pub struct Exported<S: ExportSource> {
    obj: Py<ExportedBuffer>,
    _source: PhantomData<fn() -> S>,
}

impl<S: ExportSource> std::fmt::Debug for Exported<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Exported").field(self.obj.get()).finish()
    }
}

impl<S: ExportSource> Exported<S> {
    /// The Python object, bound to the interpreter.
    pub fn bind<'py>(&self, py: Python<'py>) -> &Bound<'py, ExportedBuffer> {
        self.obj.bind(py)
    }

    /// The Python object.
    pub fn as_unbound(&self) -> &Py<ExportedBuffer> {
        &self.obj
    }

    /// The Python object, giving up the typed handle (the data can then no longer be taken
    /// back).
    pub fn unbind(self) -> Py<ExportedBuffer> {
        self.obj
    }

    /// The exported object itself (shape, strides, format, view count).
    pub fn get(&self) -> &ExportedBuffer {
        self.obj.get()
    }

    /// The number of live Python views of the memory.
    pub fn view_count(&self) -> usize {
        self.get().view_count()
    }

    /// Whether Python consumers may write to the memory.
    pub fn is_writable(&self) -> bool {
        self.get().is_writable()
    }

    /// The address of the first element (logical index 0), what every view's `buf` is.
    pub fn as_ptr(&self) -> *const S::Elem {
        self.get().data_ptr().cast_const().cast()
    }

    /// Takes the data back, leaving the Python object empty (every later buffer request is
    /// refused with `BufferError`).
    ///
    /// # Errors
    ///
    /// [`Error::ViewsAlive`] while any view is live (release them first: `memoryview.release()`,
    /// `del` of numpy arrays), [`Error::ExportTaken`] if it was taken already,
    /// [`Error::InvalidValue`] if Python wrote an invalid value of the element type into a
    /// writable export (the data then stays exported).
    pub fn try_into_inner(&self) -> Result<S, Error> {
        self.get().take().map(S::from_owner)
    }

    /// Runs `f` on a shared view of the data while it stays exported.
    ///
    /// # Errors
    ///
    /// [`Error::BorrowConflict`] for a writable export that has live views;
    /// [`Error::ExportTaken`]; [`Error::InvalidValue`] as for
    /// [`try_into_inner`](Exported::try_into_inner). While `f` runs, a writable export refuses
    /// new views.
    pub fn with_inner<R>(&self, f: impl FnOnce(S::View<'_>) -> R) -> Result<R, Error> {
        self.get().with_owner(|owner| f(S::view(owner)))
    }

    /// Returns a `numpy.ndarray` that shares the memory, for a `#[pyfunction]` that wants to
    /// return a real numpy array. numpy is imported at run time (pybuf does not depend on
    /// it); the array reads the memory through the buffer protocol and holds a view until it
    /// is garbage collected, so [`try_into_inner`](Exported::try_into_inner) waits for it.
    ///
    /// ```
    /// use pyo3::prelude::*;
    ///
    /// Python::attach(|py| -> Result<(), pybuf::Error> {
    ///     let x = pybuf::export::from_vec_mut(py, vec![1.0f64, 2.0, 3.0])?;
    ///     let a = x.to_numpy(py)?; // numpy.ndarray, no copy
    ///     assert_eq!(a.getattr("dtype")?.str()?.to_cow()?, "float64");
    ///     a.set_item(0, 10.0)?;
    ///     assert!(x.try_into_inner().is_err()); // the array still uses the memory
    ///     drop(a);
    ///     assert_eq!(x.try_into_inner()?, [10.0, 2.0, 3.0]);
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::NumpyUnavailable`] when numpy is not installed (`ImportError` in Python);
    /// [`Error::Python`] when numpy refuses the buffer (complex32 items, which numpy has no
    /// dtype for) or the data was taken back.
    pub fn to_numpy<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyAny>, Error> {
        ExportedBuffer::to_numpy(self.bind(py))
    }
}

impl<'py, S: ExportSource> IntoPyObject<'py> for Exported<S> {
    type Target = ExportedBuffer;
    type Output = Bound<'py, ExportedBuffer>;
    type Error = std::convert::Infallible;

    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        Ok(self.obj.into_bound(py))
    }
}

impl<'py, S: ExportSource> IntoPyObject<'py> for &Exported<S> {
    type Target = ExportedBuffer;
    type Output = Bound<'py, ExportedBuffer>;
    type Error = std::convert::Infallible;

    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        Ok(self.obj.bind(py).clone())
    }
}

/// Exports `source` read-only.
pub fn new<S: ExportSource>(py: Python<'_>, source: S) -> Result<Exported<S>, Error> {
    wrap(py, source.into_export(false)?)
}

/// Exports `source` writable: consumers get writable views (`memoryview(x).readonly` is
/// `False`, `numpy.asarray(x)` is writeable) and their writes are seen by Rust after
/// [`Exported::try_into_inner`].
pub fn new_mut<S: WritableSource>(py: Python<'_>, source: S) -> Result<Exported<S>, Error> {
    wrap(py, source.into_export(true)?)
}

/// Exports a vector read-only as a 1-D buffer.
pub fn from_vec<T: Element>(py: Python<'_>, data: Vec<T>) -> Result<Exported<Vec<T>>, Error> {
    new(py, data)
}

/// Exports a vector writable as a 1-D buffer.
pub fn from_vec_mut<T: Element>(py: Python<'_>, data: Vec<T>) -> Result<Exported<Vec<T>>, Error> {
    new_mut(py, data)
}

/// Exports a boxed slice read-only as a 1-D buffer.
pub fn from_boxed_slice<T: Element>(
    py: Python<'_>,
    data: Box<[T]>,
) -> Result<Exported<Box<[T]>>, Error> {
    new(py, data)
}

/// Exports a boxed slice writable as a 1-D buffer.
pub fn from_boxed_slice_mut<T: Element>(
    py: Python<'_>,
    data: Box<[T]>,
) -> Result<Exported<Box<[T]>>, Error> {
    new_mut(py, data)
}

/// Exports an array read-only with its shape and strides as they are (any order, negative
/// strides, 0-d).
pub fn from_array<T: Element, D: Dimension + 'static>(
    py: Python<'_>,
    data: Array<T, D>,
) -> Result<Exported<Array<T, D>>, Error> {
    new(py, data)
}

/// Exports an array writable with its shape and strides as they are.
pub fn from_array_mut<T: Element, D: Dimension + 'static>(
    py: Python<'_>,
    data: Array<T, D>,
) -> Result<Exported<Array<T, D>>, Error> {
    new_mut(py, data)
}

/// Exports `bytes::Bytes` read-only as a 1-D buffer of unsigned bytes (format `'B'`).
#[cfg(feature = "bytes")]
pub fn from_bytes(py: Python<'_>, data: bytes::Bytes) -> Result<Exported<bytes::Bytes>, Error> {
    new(py, data)
}

fn wrap<S: ExportSource>(py: Python<'_>, object: ExportedBuffer) -> Result<Exported<S>, Error> {
    Ok(Exported {
        obj: Py::new(py, object)?,
        _source: PhantomData,
    })
}

fn validity<T: Element>() -> Option<Validity> {
    (!T::ALWAYS_VALID).then_some(Validity {
        type_name: T::type_name,
        is_valid: T::is_valid,
    })
}

/// Builds the exported object of elements of `T` at `ptr` with `shape` and element strides.
fn export_elements<T: Element>(
    owner: Box<dyn Any + Send>,
    ptr: *mut T,
    shape: &[usize],
    elem_strides: &[isize],
    writable: bool,
) -> Result<ExportedBuffer, Error> {
    let item = T::layout();
    let itemsize = std::mem::size_of::<T>();
    let strides = elem_strides
        .iter()
        .map(|&s| s.checked_mul(itemsize as isize))
        .collect::<Option<Vec<isize>>>()
        .ok_or_else(|| Error::InvalidLayout {
            type_name: object::TYPE_NAME.to_string(),
            reason: format!("strides {elem_strides:?} overflow in bytes"),
        })?;
    // An empty buffer's strides are arbitrary; give consumers the C-order ones, on which they
    // all agree (memoryview judges a 1-D buffer by its stride alone, even when it is empty).
    let strides = if shape.contains(&0) {
        c_strides(shape, itemsize)
    } else {
        strides
    };
    let layout = Layout::new(ptr.cast(), shape, &strides, item.clone())?;
    let padding = layout::padding_ranges(&item);
    if !padding.is_empty() {
        // Every item slot between the lowest and the highest element, not only the visible
        // ones: the array-interface pin exports that whole span as bytes, so the padding of
        // elements a sliced array hides must be initialized too.
        let (low, span) = layout::span(&layout.shape, &layout.strides, itemsize);
        for slot in 0..span / itemsize {
            let offset = low + (slot * itemsize) as isize;
            for &(start, end) in &padding {
                // SAFETY: every slot of the span is an element of the owner's storage: a
                // `Vec` is contiguous, and an ndarray's storage is one contiguous `Vec<T>`
                // holding every visible element, so all item slots between the lowest and the
                // highest of them (strides are multiples of the item size) are its elements.
                // Nothing else references the storage yet (the owner was just moved in, no
                // view exists). `start..end` lies inside the item; writing bytes to padding
                // keeps every value valid.
                unsafe {
                    std::ptr::write_bytes(
                        ptr.cast::<u8>().offset(offset).add(start),
                        0,
                        end - start,
                    )
                };
            }
        }
    }
    Ok(ExportedBuffer::new(
        owner,
        layout,
        writable,
        validity::<T>(),
    ))
}

/// C-order byte strides (saturating: only used for empty buffers, whose size is checked).
fn c_strides(shape: &[usize], itemsize: usize) -> Vec<isize> {
    let mut strides = vec![0isize; shape.len()];
    let mut step = itemsize as isize;
    for (stride, &len) in strides.iter_mut().zip(shape).rev() {
        *stride = step;
        step = step.saturating_mul(len.max(1) as isize);
    }
    strides
}

impl<T: Element> sealed::Sealed for Vec<T> {}
impl<T: Element> ExportSource for Vec<T> {
    type Elem = T;
    type View<'a> = &'a [T];

    fn into_export(mut self, writable: bool) -> Result<ExportedBuffer, Error> {
        // The heap buffer does not move when the vector moves into the box.
        let ptr = self.as_mut_ptr();
        let len = self.len();
        export_elements::<T>(Box::new(self), ptr, &[len], &[1], writable)
    }

    fn from_owner(owner: Box<dyn Any + Send>) -> Self {
        *owner
            .downcast::<Vec<T>>()
            .expect("an Exported<Vec<T>> owns a Vec<T>")
    }

    fn view(owner: &(dyn Any + Send)) -> &[T] {
        owner
            .downcast_ref::<Vec<T>>()
            .expect("an Exported<Vec<T>> owns a Vec<T>")
    }
}
impl<T: Element> WritableSource for Vec<T> {}

impl<T: Element> sealed::Sealed for Box<[T]> {}
impl<T: Element> ExportSource for Box<[T]> {
    type Elem = T;
    type View<'a> = &'a [T];

    fn into_export(self, writable: bool) -> Result<ExportedBuffer, Error> {
        // Kept as a Vec (whose capacity equals its length, so converting back does not
        // reallocate): moving a Box would assert uniqueness over memory Python may hold.
        self.into_vec().into_export(writable)
    }

    fn from_owner(owner: Box<dyn Any + Send>) -> Self {
        Vec::<T>::from_owner(owner).into_boxed_slice()
    }

    fn view(owner: &(dyn Any + Send)) -> &[T] {
        Vec::<T>::view(owner)
    }
}
impl<T: Element> WritableSource for Box<[T]> {}

impl<T: Element, D: Dimension + 'static> sealed::Sealed for Array<T, D> {}
impl<T: Element, D: Dimension + 'static> ExportSource for Array<T, D> {
    type Elem = T;
    type View<'a> = ArrayView<'a, T, D>;

    fn into_export(mut self, writable: bool) -> Result<ExportedBuffer, Error> {
        // The first logical element; the allocation does not move with the array.
        let ptr = self.as_mut_ptr();
        let shape = self.shape().to_vec();
        let strides = self.strides().to_vec();
        export_elements::<T>(Box::new(self), ptr, &shape, &strides, writable)
    }

    fn from_owner(owner: Box<dyn Any + Send>) -> Self {
        *owner
            .downcast::<Array<T, D>>()
            .expect("an Exported<Array<T, D>> owns an Array<T, D>")
    }

    fn view(owner: &(dyn Any + Send)) -> ArrayView<'_, T, D> {
        owner
            .downcast_ref::<Array<T, D>>()
            .expect("an Exported<Array<T, D>> owns an Array<T, D>")
            .view()
    }
}
impl<T: Element, D: Dimension + 'static> WritableSource for Array<T, D> {}

#[cfg(feature = "bytes")]
impl sealed::Sealed for bytes::Bytes {}
#[cfg(feature = "bytes")]
impl ExportSource for bytes::Bytes {
    type Elem = u8;
    type View<'a> = &'a [u8];

    fn into_export(self, _writable: bool) -> Result<ExportedBuffer, Error> {
        // `Bytes` is shared and immutable: never writable (it is not a `WritableSource`).
        let ptr = self.as_ptr().cast_mut();
        let len = self.len();
        let layout = Layout::new(ptr, &[len], &[1], u8::layout())?;
        Ok(ExportedBuffer::new(Box::new(self), layout, false, None))
    }

    fn from_owner(owner: Box<dyn Any + Send>) -> Self {
        *owner
            .downcast::<bytes::Bytes>()
            .expect("an Exported<Bytes> owns a Bytes")
    }

    fn view(owner: &(dyn Any + Send)) -> &[u8] {
        owner
            .downcast_ref::<bytes::Bytes>()
            .expect("an Exported<Bytes> owns a Bytes")
    }
}
