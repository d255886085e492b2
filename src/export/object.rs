//! The Python type `pybuf.ExportedBuffer`: Rust-owned memory behind the buffer protocol.

use std::any::Any;
use std::ffi::{c_int, CString};
use std::sync::{Mutex, MutexGuard};

use pyo3::exceptions::PyBufferError;
use pyo3::prelude::*;
use pyo3::{ffi, PyErr};

use super::layout;
use crate::error::{Access, Error};
use crate::format::shape_tuple;

/// The Python type name, for messages.
pub(crate) const TYPE_NAME: &str = "pybuf.ExportedBuffer";

/// The owned value, type-erased (a `Vec<T>`, an `Array<T, D>`, a `bytes::Bytes`).
pub(crate) type Owner = Box<dyn Any + Send>;

/// The address of the first element (logical index 0) of the exported memory.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DataPtr(pub(crate) *mut u8);

// SAFETY: the pointer addresses heap memory owned by the `Owner` stored next to it in the same
// `ExportedBuffer` (moving the owner between threads does not move its heap data, and the
// owner is `Send`). Every access through it is synchronized by `ExportedBuffer::state`: Rust
// reads happen only while no writable view exists and no writable view can be created, and
// the owner is handed back only when no view exists at all.
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
    pub(crate) c_contiguous: bool,
    pub(crate) f_contiguous: bool,
}

impl Layout {
    /// Checks and completes a layout. `strides` are in bytes.
    pub(crate) fn new(
        ptr: *mut u8,
        shape: &[usize],
        strides: &[isize],
        itemsize: usize,
        format: String,
    ) -> Result<Layout, Error> {
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
struct State {
    /// `None` once Rust took the data back.
    owner: Option<Owner>,
    /// Live Python views (successful `__getbuffer__` not yet released).
    views: usize,
    /// Live Rust-side reads (`Exported::with_inner`).
    rust_readers: usize,
    /// A writable view was handed out since the contents were last validated.
    dirty: bool,
}

/// Rust-owned memory exported to Python through the buffer protocol.
///
/// Made by the functions of [`pybuf::export`](crate::export); Python code reads it with
/// `numpy.asarray(x)`, `memoryview(x)`, `bytes(x)` or any other buffer consumer, without a
/// copy. Python attributes: `shape`, `strides`, `format`, `itemsize`, `nbytes`, `readonly`,
/// `views` (the number of live buffer views).
#[pyclass(module = "pybuf", name = "ExportedBuffer", frozen)]
pub struct ExportedBuffer {
    layout: Layout,
    writable: bool,
    validity: Option<Validity>,
    state: Mutex<State>,
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
            state: Mutex::new(State {
                owner: Some(owner),
                views: 0,
                rust_readers: 0,
                dirty: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No code that can panic runs under this lock, but stay usable if one ever did.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The number of live Python buffer views of this memory.
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

    pub(crate) fn data_ptr(&self) -> *mut u8 {
        self.layout.ptr.0
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
        // only: Python can't write meanwhile, since `__getbuffer__` of a writable export
        // refuses while `rust_readers > 0` and no writable view was live above.
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
            None => this.register_view(),
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
    fn py_shape(&self) -> Vec<usize> {
        self.shape()
    }

    /// The byte strides, as a tuple.
    #[getter(strides)]
    fn py_strides(&self) -> Vec<isize> {
        self.layout.strides.to_vec()
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

    /// The number of bytes of the elements.
    #[getter]
    fn nbytes(&self) -> usize {
        self.layout.nbytes
    }

    /// Whether buffer consumers get read-only views.
    #[getter]
    fn readonly(&self) -> bool {
        !self.writable
    }

    /// The number of live buffer views.
    #[getter]
    fn views(&self) -> usize {
        self.view_count()
    }

    fn __repr__(&self) -> String {
        let shape: Vec<usize> = self.shape();
        format!(
            "<pybuf.ExportedBuffer shape={} format='{}' {}{}>",
            if shape.is_empty() {
                "()".to_string()
            } else {
                shape_tuple(&shape)
            },
            self.format(),
            if self.writable {
                "writable"
            } else {
                "readonly"
            },
            if self.is_taken() { " (taken)" } else { "" }
        )
    }
}

impl ExportedBuffer {
    fn register_view(&self) -> PyResult<()> {
        let mut state = self.lock();
        if state.owner.is_none() {
            return Err(PyErr::from(taken()));
        }
        if self.writable && state.rust_readers > 0 {
            return Err(PyBufferError::new_err(
                "pybuf.ExportedBuffer: the memory is being read by Rust; a writable view \
                 cannot be handed out now",
            ));
        }
        state.views += 1;
        if self.writable {
            state.dirty = true;
        }
        Ok(())
    }
}
