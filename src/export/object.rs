//! The Python type `pybuf.ExportedBuffer`: Rust-owned memory behind the buffer protocol,
//! DLPack and the array interface.

use std::any::Any;
use std::ffi::{c_int, CString};
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::exceptions::{PyBufferError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict, PyTuple};
use pyo3::{ffi, PyErr};

use super::layout;
use crate::error::{Access, Error};
use crate::format::{shape_tuple, ItemLayout};

/// The Python type name, for messages.
pub(crate) const TYPE_NAME: &str = "pybuf.ExportedBuffer";

/// The owned value, type-erased (a `Vec<T>`, an `Array<T, D>`, a `bytes::Bytes`).
pub(crate) type Owner = Box<dyn Any + Send>;

/// The address of the first element (logical index 0) of the exported memory.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DataPtr(pub(crate) *mut u8);

// SAFETY: the pointer addresses heap memory owned by the `Owner` in the `Shared` state of the
// same export (moving the owner between threads does not move its heap data, and the owner is
// `Send`). Every access through it is synchronized by that state's lock: Rust reads through
// references happen only while no writable view exists and no writable view can be created,
// and the owner is handed back only when no view exists at all.
unsafe impl Send for DataPtr {}
// SAFETY: as above; the pointer itself is never written after construction.
unsafe impl Sync for DataPtr {}

/// Everything `__getbuffer__` fills in, computed once at export.
#[derive(Debug)]
pub(crate) struct Layout {
    pub(crate) ptr: DataPtr,
    pub(crate) shape: Box<[isize]>,
    /// Byte strides.
    pub(crate) strides: Box<[isize]>,
    pub(crate) itemsize: usize,
    /// `product(shape) * itemsize`.
    pub(crate) nbytes: usize,
    pub(crate) format: CString,
    /// What one item is (the format, parsed).
    pub(crate) item: ItemLayout,
    pub(crate) c_contiguous: bool,
    pub(crate) f_contiguous: bool,
}

impl Layout {
    /// Checks and completes a layout of items described by `item`. `strides` are in bytes.
    pub(crate) fn new(
        ptr: *mut u8,
        shape: &[usize],
        strides: &[isize],
        item: ItemLayout,
    ) -> Result<Layout, Error> {
        let itemsize = item.size;
        let format = item.to_format();
        let invalid = |reason: String| Error::InvalidLayout {
            type_name: TYPE_NAME.to_string(),
            reason,
        };
        if itemsize == 0 {
            return Err(invalid(
                "zero-sized elements cannot be exported (Python requires itemsize > 0)".into(),
            ));
        }
        if shape.len() > crate::MAX_NDIM {
            return Err(invalid(format!(
                "{} dimensions exceed the buffer protocol's limit of {}",
                shape.len(),
                crate::MAX_NDIM
            )));
        }
        let shape_i: Vec<isize> = shape
            .iter()
            .map(|&d| isize::try_from(d))
            .collect::<Result<_, _>>()
            .map_err(|_| invalid(format!("shape {} overflows isize", shape_tuple(shape))))?;
        let nbytes = shape
            .iter()
            .try_fold(itemsize, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= isize::MAX as usize)
            .ok_or_else(|| invalid(format!("shape {} is too large", shape_tuple(shape))))?;
        let format = CString::new(format)
            .map_err(|_| invalid("the element format contains a NUL byte".into()))?;
        let c_contiguous = layout::is_c_contiguous(&shape_i, strides, itemsize);
        let f_contiguous = layout::is_f_contiguous(&shape_i, strides, itemsize);
        Ok(Layout {
            ptr: DataPtr(ptr),
            shape: shape_i.into_boxed_slice(),
            strides: strides.into(),
            itemsize,
            nbytes,
            format,
            item,
            c_contiguous,
            f_contiguous,
        })
    }
}

/// What is checked when Rust reads exported memory of a type with invalid bit patterns.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Validity {
    pub(crate) type_name: fn() -> String,
    pub(crate) is_valid: fn(&[u8]) -> bool,
}

#[derive(Debug)]
pub(crate) struct State {
    /// `None` once Rust took the data back.
    owner: Option<Owner>,
    /// Live views of the memory: buffer-protocol views (successful `__getbuffer__` not yet
    /// released), DLPack tensors whose deleter has not run, array-interface pins.
    views: usize,
    /// Live Rust-side reads (`Exported::with_inner`, `tolist`, `repr`, DLPack copies).
    rust_readers: usize,
    /// A writable view was handed out since the contents were last validated.
    dirty: bool,
}

/// The bookkeeping of an export and the data it owns. The Python object holds it, and so
/// does every [`ViewPin`]: a DLPack tensor can outlive the Python object, and then the data
/// is freed when its deleter drops the last pin.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No code that can panic runs under this lock, but stay usable if one ever did.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One counted view of the memory held outside the buffer protocol (a DLPack tensor, an
/// array-interface pin). While it lives the data stays allocated and cannot be taken back;
/// dropping it uncounts the view. Dropping never touches the interpreter and holds the
/// export's lock only for a decrement, so it is sound and non-blocking on any thread, with
/// or without the interpreter (a DLPack deleter may run anywhere).
#[derive(Debug)]
pub(crate) struct ViewPin {
    shared: Arc<Shared>,
}

impl Drop for ViewPin {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.views = state.views.saturating_sub(1);
        // `self.shared` is dropped after this; if it was the last reference (the Python object
        // is gone), the owner and its data are freed here, which is plain Rust memory.
    }
}

/// Rust-owned memory exported to Python: through the buffer protocol, DLPack and numpy's
/// array interface.
///
/// Made by the functions of [`pybuf::export`](crate::export); Python code reads it with
/// `numpy.asarray(x)`, `memoryview(x)`, `bytes(x)`, `numpy.from_dlpack(x)`,
/// `jax.numpy.from_dlpack(x)` or any other consumer of those protocols, without a copy.
///
/// Python attributes and methods: `shape`, `strides` (bytes), `format`, `itemsize`, `ndim`,
/// `nbytes`, `readonly`, `views` (live views of the memory), `len(x)` (the first dimension;
/// `TypeError` for 0-d), `tolist()`, a numpy-like `repr`, `__array_interface__` (version 3),
/// `__dlpack__` and `__dlpack_device__` (see the [module documentation](crate::export)).
#[pyclass(module = "pybuf", name = "ExportedBuffer", frozen)]
pub struct ExportedBuffer {
    layout: Layout,
    writable: bool,
    validity: Option<Validity>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ExportedBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportedBuffer")
            .field("layout", &self.layout)
            .field("writable", &self.writable)
            .field("views", &self.view_count())
            .finish()
    }
}

/// Why a request is refused, or `None` if it is accepted. Mirrors CPython's `memoryview`
/// exporter (`memory_getbuf`), which agrees with numpy except that a request for a format
/// without a shape is refused unless the items are bytes.
fn refusal(layout: &Layout, writable: bool, flags: c_int) -> Option<&'static str> {
    let wants = |bits: c_int| flags & bits == bits;
    if wants(ffi::PyBUF_WRITABLE) && !writable {
        return Some("pybuf.ExportedBuffer: the exported memory is read-only (export it with a *_mut function to allow writes)");
    }
    if wants(ffi::PyBUF_C_CONTIGUOUS) && !layout.c_contiguous {
        return Some("pybuf.ExportedBuffer: the exported memory is not C-contiguous");
    }
    if wants(ffi::PyBUF_F_CONTIGUOUS) && !layout.f_contiguous {
        return Some("pybuf.ExportedBuffer: the exported memory is not Fortran-contiguous");
    }
    if wants(ffi::PyBUF_ANY_CONTIGUOUS) && !layout.c_contiguous && !layout.f_contiguous {
        return Some("pybuf.ExportedBuffer: the exported memory is not contiguous");
    }
    if !wants(ffi::PyBUF_STRIDES) && !layout.c_contiguous {
        return Some("pybuf.ExportedBuffer: the exported memory is not C-contiguous, so the request needs PyBUF_STRIDES");
    }
    if !wants(ffi::PyBUF_ND) && wants(ffi::PyBUF_FORMAT) && layout.format.as_bytes() != b"B" {
        return Some("pybuf.ExportedBuffer: cannot describe the items as unsigned bytes when the format flag is present (request PyBUF_ND)");
    }
    None
}

impl ExportedBuffer {
    pub(crate) fn new(
        owner: Owner,
        layout: Layout,
        writable: bool,
        validity: Option<Validity>,
    ) -> ExportedBuffer {
        ExportedBuffer {
            layout,
            writable,
            validity,
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    owner: Some(owner),
                    views: 0,
                    rust_readers: 0,
                    dirty: false,
                }),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// The number of live views of this memory held by Python consumers: buffer-protocol
    /// views (memoryviews, numpy arrays), DLPack tensors whose deleter has not run yet, and
    /// array-interface pins (see the [module documentation](crate::export)).
    pub fn view_count(&self) -> usize {
        self.lock().views
    }

    /// Whether Python consumers may write to the memory.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// Whether Rust took the memory back (`try_into_inner`); then every request is refused.
    pub fn is_taken(&self) -> bool {
        self.lock().owner.is_none()
    }

    /// The shape.
    pub fn shape(&self) -> Vec<usize> {
        self.layout.shape.iter().map(|&d| d as usize).collect()
    }

    /// The byte strides.
    pub fn strides(&self) -> &[isize] {
        &self.layout.strides
    }

    /// The PEP 3118 format of one item (`T::layout().to_format()`).
    pub fn format(&self) -> &str {
        // The format came from a `String`, so it is UTF-8.
        self.layout.format.to_str().unwrap_or("B")
    }

    /// The size of one item in bytes.
    pub fn itemsize(&self) -> usize {
        self.layout.itemsize
    }

    /// The number of dimensions.
    pub fn ndim(&self) -> usize {
        self.layout.shape.len()
    }

    /// What one item is: the parsed form of [`format`](ExportedBuffer::format).
    pub fn item_layout(&self) -> &ItemLayout {
        &self.layout.item
    }

    /// Returns a `numpy.ndarray` that shares this memory (`numpy.asarray(self)`, through the
    /// buffer protocol: the array holds a buffer view, so the memory stays exported until the
    /// array is gone). numpy is imported when this is called; pybuf does not depend on it.
    ///
    /// # Errors
    ///
    /// [`Error::NumpyUnavailable`] when numpy cannot be imported; [`Error::Python`] if numpy
    /// refuses the buffer (complex32 items, which numpy has no dtype for) or the export was
    /// taken back ([`Error::ExportTaken`] as the cause).
    pub fn to_numpy<'py>(slf: &Bound<'py, Self>) -> Result<Bound<'py, PyAny>, Error> {
        super::numpy::asarray(slf.as_any())
    }

    /// Whether the element type has invalid bit patterns (`bool`, records holding one).
    pub(crate) fn has_invalid_values(&self) -> bool {
        self.validity.is_some()
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    pub(crate) fn data_ptr(&self) -> *mut u8 {
        self.layout.ptr.0
    }

    /// Counts a view handed out outside the buffer protocol; the view lasts as long as the
    /// returned pin. Refused like `__getbuffer__`: after `take`, and for a writable export
    /// while Rust reads it.
    pub(crate) fn pin_view(&self) -> Result<ViewPin, Error> {
        self.register_view()?;
        Ok(ViewPin {
            shared: Arc::clone(&self.shared),
        })
    }

    /// Runs `f` with the address of the first element while the data cannot be taken back
    /// (and no writable view can be created), for raw copies (`tolist`, `repr`, DLPack
    /// `copy=True`). Python consumers may hold writable views meanwhile: `f` must read through
    /// raw pointers only, never through references (the same trust boundary as
    /// `memoryview.tolist()`: a consumer that writes from another thread without the
    /// interpreter lock while this runs races it).
    pub(crate) fn read_raw<R>(&self, f: impl FnOnce(*const u8) -> R) -> Result<R, Error> {
        {
            let mut state = self.lock();
            if state.owner.is_none() {
                return Err(taken());
            }
            state.rust_readers += 1;
        }
        struct Reader<'a>(&'a ExportedBuffer);
        impl Drop for Reader<'_> {
            fn drop(&mut self) {
                self.0.lock().rust_readers -= 1;
            }
        }
        let _reader = Reader(self);
        Ok(f(self.layout.ptr.0.cast_const()))
    }

    /// Checks the contents when Python may have written invalid bit patterns.
    fn validate(&self, state: &mut State) -> Result<(), Error> {
        let Some(validity) = self.validity else {
            return Ok(());
        };
        if !state.dirty {
            return Ok(());
        }
        let itemsize = self.layout.itemsize;
        let mut first_bad = None;
        layout::for_each_offset(&self.layout.shape, &self.layout.strides, |pos, off| {
            if first_bad.is_some() {
                return;
            }
            // SAFETY: `off` is the byte offset of an element of the exported layout, which
            // lies inside the owner's allocation; no view exists (the callers checked under the
            // lock) so nothing writes concurrently; the bytes are initialized (they held a
            // valid `T` whose padding was zeroed at export, and Python writes only bytes).
            let bytes = unsafe {
                std::slice::from_raw_parts(self.layout.ptr.0.offset(off).cast_const(), itemsize)
            };
            if !(validity.is_valid)(bytes) {
                first_bad = Some((pos, bytes.to_vec()));
            }
        });
        match first_bad {
            Some((position, bytes)) => Err(Error::InvalidValue {
                type_name: (validity.type_name)(),
                position,
                bytes,
            }),
            None => {
                state.dirty = false;
                Ok(())
            }
        }
    }

    /// Takes the owner back if no view is live.
    pub(crate) fn take(&self) -> Result<Owner, Error> {
        let mut state = self.lock();
        if state.owner.is_none() {
            return Err(taken());
        }
        if state.views > 0 || state.rust_readers > 0 {
            return Err(Error::ViewsAlive {
                count: state.views + state.rust_readers,
            });
        }
        self.validate(&mut state)?;
        state.owner.take().ok_or_else(taken)
    }

    /// Runs `f` on the owner while no writable view can exist.
    pub(crate) fn with_owner<R>(&self, f: impl FnOnce(&(dyn Any + Send)) -> R) -> Result<R, Error> {
        let owner: *const (dyn Any + Send) = {
            let mut state = self.lock();
            let Some(owner) = state.owner.as_deref() else {
                return Err(taken());
            };
            let owner: *const (dyn Any + Send) = owner;
            if self.writable && state.views > 0 {
                return Err(Error::BorrowConflict {
                    requested: Access::Shared,
                    held: Access::Exclusive,
                });
            }
            self.validate(&mut state)?;
            state.rust_readers += 1;
            owner
        };
        struct Reader<'a>(&'a ExportedBuffer);
        impl Drop for Reader<'_> {
            fn drop(&mut self) {
                self.0.lock().rust_readers -= 1;
            }
        }
        let _reader = Reader(self);
        // SAFETY: the owner lives in the state's `Option` and is only removed by `take`, which
        // refuses while `rust_readers > 0` (we hold one until `_reader` drops, after `f`);
        // the box is never replaced, so the pointee stays valid and unmoved. Shared access
        // only: Python can't write meanwhile, since no writable view was live above (checked
        // under the lock) and every way of handing one out (`__getbuffer__`, `__dlpack__`,
        // `__array_interface__`, all through `register_view`) refuses for a writable export
        // while `rust_readers > 0`.
        Ok(f(unsafe { &*owner }))
    }
}

fn taken() -> Error {
    Error::ExportTaken
}

#[pymethods]
impl ExportedBuffer {
    /// # Safety
    ///
    /// Called by CPython with a valid `view` to fill (see `PyObject_GetBuffer`).
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        if view.is_null() {
            return Err(PyBufferError::new_err("pybuf.ExportedBuffer: NULL view"));
        }
        let this = slf.get();
        let accepted = match refusal(&this.layout, this.writable, flags) {
            Some(message) => Err(PyBufferError::new_err(message)),
            None => this.register_view().map_err(PyErr::from),
        };
        if let Err(err) = accepted {
            // SAFETY: `view` is non-null and CPython passes a writable Py_buffer; a failed
            // request must leave `obj` NULL.
            unsafe { (*view).obj = std::ptr::null_mut() };
            return Err(err);
        }
        let layout = &this.layout;
        let wants = |bits: c_int| flags & bits == bits;
        let (ndim, shape) = if wants(ffi::PyBUF_ND) {
            let ndim = layout.shape.len();
            let shape = if ndim == 0 {
                std::ptr::null_mut()
            } else {
                layout.shape.as_ptr().cast_mut()
            };
            (ndim as c_int, shape)
        } else {
            // like PyBuffer_FillInfo and memoryview: one dimension of `len` bytes
            (1, std::ptr::null_mut())
        };
        let strides = if wants(ffi::PyBUF_STRIDES) && !layout.shape.is_empty() {
            layout.strides.as_ptr().cast_mut()
        } else {
            std::ptr::null_mut()
        };
        let format = if wants(ffi::PyBUF_FORMAT) {
            layout.format.as_ptr().cast_mut()
        } else {
            std::ptr::null_mut()
        };
        // SAFETY: `view` is a valid, writable Py_buffer (CPython's contract). The shape,
        // strides and format pointers address fields of `this`, which never change after
        // construction and live as long as the object; `obj` holds a strong reference to it
        // until `PyBuffer_Release`, so they outlive the view. Consumers must not write through
        // `shape`/`strides`/`format` (buffer protocol rules). `buf` addresses the owner's
        // memory, which `take` cannot remove while this view is registered.
        unsafe {
            let v = &mut *view;
            v.buf = layout.ptr.0.cast();
            v.len = layout.nbytes as isize;
            v.itemsize = layout.itemsize as isize;
            v.readonly = c_int::from(!this.writable);
            v.ndim = ndim;
            v.format = format;
            v.shape = shape;
            v.strides = strides;
            v.suboffsets = std::ptr::null_mut();
            v.internal = std::ptr::null_mut();
            v.obj = slf.into_any().into_ptr();
        }
        Ok(())
    }

    /// # Safety
    ///
    /// Called by CPython once per successful `__getbuffer__`.
    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        let mut state = self.lock();
        state.views = state.views.saturating_sub(1);
    }

    /// The shape, as a tuple.
    #[getter(shape)]
    fn py_shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.shape())
    }

    /// The byte strides, as a tuple.
    #[getter(strides)]
    fn py_strides<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.layout.strides.iter())
    }

    /// The PEP 3118 format of one item.
    #[getter(format)]
    fn py_format(&self) -> &str {
        self.format()
    }

    /// The size of one item in bytes.
    #[getter(itemsize)]
    fn py_itemsize(&self) -> usize {
        self.layout.itemsize
    }

    /// The number of dimensions.
    #[getter(ndim)]
    fn py_ndim(&self) -> usize {
        self.ndim()
    }

    /// The number of bytes of the elements.
    #[getter]
    fn nbytes(&self) -> usize {
        self.layout.nbytes
    }

    /// Whether consumers get read-only views.
    #[getter]
    fn readonly(&self) -> bool {
        !self.writable
    }

    /// The number of live views: buffer views, DLPack tensors, array-interface pins.
    #[getter]
    fn views(&self) -> usize {
        self.view_count()
    }

    /// The length of the first dimension, like `len()` of a numpy array.
    fn __len__(&self) -> PyResult<usize> {
        match self.layout.shape.first() {
            Some(&len) => Ok(len as usize),
            // numpy's message; memoryview answers 1 for 0-d, numpy refuses
            None => Err(PyTypeError::new_err("len() of unsized object")),
        }
    }

    /// Truth value as for a memoryview: false only when the first dimension is empty.
    fn __bool__(&self) -> bool {
        self.layout.shape.first().is_none_or(|&len| len != 0)
    }

    /// The elements as (nested) Python lists of Python values, as numpy's `tolist()` gives
    /// them: int, float, complex, bool, bytes, and tuples for records (with lists for
    /// sub-array fields, where numpy gives arrays).
    fn tolist<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        Ok(super::values::to_list(slf)?)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        super::values::repr(slf)
    }

    /// numpy's array interface, version 3. `data` is a `pybuf.ExportPin`: a buffer object that
    /// keeps the memory exported (counted in `views`) for as long as it lives, which for an
    /// array numpy builds from this dict is as long as that array (numpy keeps a reference to
    /// the `data` object as the array's base).
    #[getter]
    fn __array_interface__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyDict>> {
        Ok(super::interface::array_interface(slf)?)
    }

    /// A DLPack capsule of the memory (the Python array API's `__dlpack__`): versioned
    /// (`dltensor_versioned`, DLPack 1.x) when `max_version` is `(1, x)` or later, legacy
    /// (`dltensor`) otherwise. The memory stays exported until the consumer's deleter runs.
    #[pyo3(signature = (*, stream = None, max_version = None, dl_device = None, copy = None))]
    fn __dlpack__<'py>(
        slf: &Bound<'py, Self>,
        stream: Option<Bound<'py, PyAny>>,
        max_version: Option<(i64, i64)>,
        dl_device: Option<(i64, i64)>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let request = super::dlpack::Request {
            stream,
            max_version,
            dl_device,
            copy,
        };
        Ok(super::dlpack::export(slf, request)?)
    }

    /// `(1, 0)`: the memory is host memory (kDLCPU, device 0).
    fn __dlpack_device__(&self) -> (i32, i32) {
        (crate::dlpack::DLDeviceType::CPU, 0)
    }
}

impl ExportedBuffer {
    /// Counts one more view, or says why none may be handed out now.
    fn register_view(&self) -> Result<(), Error> {
        let mut state = self.lock();
        if state.owner.is_none() {
            return Err(taken());
        }
        if self.writable && state.rust_readers > 0 {
            // Rust is reading the memory (`with_inner`, `tolist`): a writable view now could
            // write under it.
            return Err(Error::BorrowConflict {
                requested: Access::Exclusive,
                held: Access::Shared,
            });
        }
        state.views += 1;
        if self.writable {
            state.dirty = true;
        }
        Ok(())
    }
}
