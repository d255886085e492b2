//! [`Buffer<T, D>`]: a typed, validated handle on one acquired buffer.

use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};

use ndarray::{
    Array, ArrayView, ArrayViewMut, Dimension, Ix0, Ix1, Ix2, Ix3, IxDyn, NdIndex, Order,
};
use pyo3::prelude::*;
use pyo3::Borrowed;

use crate::acquire;
use crate::borrow::{self, BorrowToken};
use crate::copy;
use crate::element::{self, Element, ValueWriter};
use crate::error::{Access, Error};
use crate::guard::{ReadGuard, WriteGuard};
use crate::layout::Layout;
use crate::source::{Acquired, Request, Source};
use crate::view_or_copy::ViewOrCopy;

/// A buffer of exactly 0 dimensions (numpy 0-d arrays and scalars, ctypes scalars).
pub type Buffer0<T> = Buffer<T, Ix0>;
/// A 1-D buffer; a 0-d exporter is accepted as shape `[1]`.
pub type Buffer1<T> = Buffer<T, Ix1>;
/// A 2-D buffer.
pub type Buffer2<T> = Buffer<T, Ix2>;
/// A 3-D buffer.
pub type Buffer3<T> = Buffer<T, Ix3>;
/// A buffer with any number of dimensions (0 to 64).
pub type BufferD<T> = Buffer<T, IxDyn>;

/// A writable 1-D buffer argument (see [`BufferMut`]); a 0-d exporter is accepted as shape
/// `[1]`.
pub type BufferMut1<T> = BufferMut<T, Ix1>;
/// A writable 2-D buffer argument (see [`BufferMut`]).
pub type BufferMut2<T> = BufferMut<T, Ix2>;
/// A writable 3-D buffer argument (see [`BufferMut`]).
pub type BufferMut3<T> = BufferMut<T, Ix3>;
/// A writable buffer argument with any number of dimensions (see [`BufferMut`]).
pub type BufferMutD<T> = BufferMut<T, IxDyn>;

/// A typed handle on the memory of a Python object that supports the buffer protocol.
///
/// The element type `T` and the number of dimensions `D` were checked once, when the buffer
/// was acquired ([`Buffer::get`], [`Buffer::get_mut`]); from then on the handle pins the
/// exporter's memory until it is dropped, on any thread (see [`flush_releases`]).
///
/// Access comes in three kinds:
/// - **copies** ([`to_vec`](Buffer::to_vec), [`to_array`](Buffer::to_array),
///   [`copy_to_slice`](Buffer::copy_to_slice), [`copy_from_slice`](Buffer::copy_from_slice))
///   and **single items** ([`item`](Buffer::item), [`set_item`](Buffer::set_item)) work for
///   every layout: strided, negative and zero strides, suboffsets, misaligned data;
/// - **zero-copy borrows** ([`read`](Buffer::read), [`write`](Buffer::write),
///   [`with`](Buffer::with), [`with_mut`](Buffer::with_mut)) give ndarray views and slices
///   where the layout allows them, checked against every other live borrow of the same memory
///   in the process;
/// - **unsafe raw access** ([`as_ptr`](Buffer::as_ptr) and friends) for the rest.
///
/// Every access through this handle takes part in pybuf's borrow registry, so two borrows
/// made through pybuf handles never alias mutably, even through two handles of the same
/// object, as long as they see the memory at the same virtual addresses. What the registry
/// cannot see — Python or C code writing the memory while a guard lives (also Python code run
/// on this thread), memory mapped twice, borrows taken through other libraries — is listed in
/// the crate documentation, "What pybuf guarantees".
///
/// ```
/// use pybuf::{Buffer1, Buffer2};
/// use pyo3::prelude::*;
///
/// Python::attach(|py| -> PyResult<()> {
///     let data = py.eval(c"bytearray(b'\x01\x02\x03')", None, None)?;
///     let buf = Buffer1::<u8>::get_mut(&data)?;
///     assert_eq!(buf.to_vec()?, [1, 2, 3]);
///     buf.set_item(0, 42)?;
///     assert_eq!(data.extract::<Vec<u8>>()?, [42, 2, 3]);
///
///     // the number of dimensions is part of the type
///     let err = Buffer2::<u8>::get(&data).unwrap_err();
///     assert!(err.to_string().starts_with("expected a 2-D buffer of uint8 (u8"));
///     Ok(())
/// })
/// .unwrap();
/// ```
///
/// [`flush_releases`]: crate::flush_releases
pub struct Buffer<T: Element, D: Dimension = IxDyn> {
    raw: Acquired,
    layout: Layout<D>,
    /// Set once [`check_viewable`](Buffer::check_viewable) has passed: the layout never
    /// changes, so later borrows skip the check.
    viewable: AtomicBool,
    _element: PhantomData<T>,
}

// `Buffer` is `Send + Sync` because its parts are (`Acquired`: see `crate::source`; `Layout`:
// see `crate::layout`) and `T: Element` is: every `&self` method that touches the memory
// takes a registry borrow (shared for reads, exclusive for writes) or goes through a guard
// holding one, so calls on one handle from several threads are ordered like calls through
// separate handles. A compile-time check keeps it that way:
const _: () = {
    const fn send_sync<X: Send + Sync>() {}
    send_sync::<Buffer<f64, IxDyn>>();
};

impl<T: Element, D: Dimension> Buffer<T, D> {
    /// Acquires a buffer for reading (`PyBUF_FULL_RO`).
    ///
    /// Validation stops at the first failure, in this order: the exporter's refusal
    /// ([`Error::NotABuffer`], [`Error::Refused`]), the format ([`Error::Format`]), the
    /// element type ([`Error::ElementType`], [`Error::ByteOrder`]), the item size
    /// ([`Error::ItemSize`]), the number of dimensions ([`Error::Dimensions`]) and the layout
    /// ([`Error::InvalidLayout`]). Layout facts that only rule out zero-copy views
    /// (misalignment, strides that are not multiples of the item size, suboffsets,
    /// self-overlap) do not fail here: they fail [`read`](Buffer::read) and
    /// [`write`](Buffer::write) only.
    pub fn get(obj: &Bound<'_, PyAny>) -> Result<Self, Error> {
        acquire::typed(obj, Request::Read)
    }

    /// Acquires a buffer for writing (`PyBUF_FULL`); fails with [`Error::ReadOnly`] when the
    /// exporter hands out read-only memory (even if it ignored the writable request).
    pub fn get_mut(obj: &Bound<'_, PyAny>) -> Result<Self, Error> {
        acquire::typed(obj, Request::Write)
    }

    /// Acquires through DLPack only (`__dlpack__`), for reading.
    ///
    /// `obj.__dlpack_device__()` must name memory the CPU can read (`kDLCPU`,
    /// `kDLCUDAHost`, `kDLCUDAManaged`), else [`Error::Device`]; then
    /// `obj.__dlpack__(max_version=(1, 1))` is called (without arguments when the producer
    /// refuses them with `TypeError`). The producer's deleter runs exactly once, when the
    /// handle is released. [`get`](Buffer::get) tries DLPack too, after the buffer protocol;
    /// this constructor skips the buffer protocol. See the
    /// [crate documentation](crate#other-protocols-dlpack-and-the-array-interface).
    pub fn from_dlpack(obj: &Bound<'_, PyAny>) -> Result<Self, Error> {
        acquire::typed_from(obj, Source::DLPack, Request::Read)
    }

    /// Acquires through DLPack only, for writing: asks for `copy=False`, refuses tensors the
    /// producer marks read-only with [`Error::ReadOnly`] (the `READ_ONLY` flag of DLPack 1.x;
    /// a legacy capsule counts as writable only from a numpy array, whose `__dlpack__` never
    /// exports read-only arrays that way).
    pub fn from_dlpack_mut(obj: &Bound<'_, PyAny>) -> Result<Self, Error> {
        acquire::typed_from(obj, Source::DLPack, Request::Write)
    }

    /// Acquires through the buffer protocol only (`PyObject_GetBuffer`), for reading: what
    /// [`get`](Buffer::get) does for every object that supports it, minus the fast path that
    /// reads numpy arrays' own struct ([`Source::Numpy`], which answers the same).
    pub fn from_buffer_protocol(obj: &Bound<'_, PyAny>) -> Result<Self, Error> {
        acquire::typed_from(obj, Source::BufferProtocol, Request::Read)
    }

    /// Acquires through the buffer protocol only, for writing.
    pub fn from_buffer_protocol_mut(obj: &Bound<'_, PyAny>) -> Result<Self, Error> {
        acquire::typed_from(obj, Source::BufferProtocol, Request::Write)
    }

    /// Acquires through `obj.__array_interface__` only (a version-3 dict), for reading.
    pub fn from_array_interface(obj: &Bound<'_, PyAny>) -> Result<Self, Error> {
        acquire::typed_from(obj, Source::ArrayInterface, Request::Read)
    }

    /// Acquires through `obj.__array_interface__` only, for writing ([`Error::ReadOnly`] when
    /// the dict's `data` is marked read-only or is a read-only buffer).
    pub fn from_array_interface_mut(obj: &Bound<'_, PyAny>) -> Result<Self, Error> {
        acquire::typed_from(obj, Source::ArrayInterface, Request::Write)
    }

    /// Acquires through `obj.__array_struct__` only (a `PyArrayInterface` capsule), for
    /// reading.
    pub fn from_array_struct(obj: &Bound<'_, PyAny>) -> Result<Self, Error> {
        acquire::typed_from(obj, Source::ArrayStruct, Request::Read)
    }

    /// Acquires through `obj.__array_struct__` only, for writing ([`Error::ReadOnly`] without
    /// the `WRITEABLE` flag).
    pub fn from_array_struct_mut(obj: &Bound<'_, PyAny>) -> Result<Self, Error> {
        acquire::typed_from(obj, Source::ArrayStruct, Request::Write)
    }

    /// A handle on an acquisition that passed every check of `crate::acquire` for `T` and
    /// `D`, with its validated layout.
    #[inline(always)]
    pub(crate) fn from_validated(raw: Acquired, layout: Layout<D>) -> Self {
        Buffer {
            raw,
            layout,
            viewable: AtomicBool::new(false),
            _element: PhantomData,
        }
    }

    /// The protocol the memory was acquired through.
    pub fn source(&self) -> Source {
        self.raw.source()
    }

    /// Number of items along each axis.
    pub fn shape(&self) -> &[usize] {
        self.layout.shape.slice()
    }

    /// The shape as ndarray's dimension type.
    pub fn dim(&self) -> D::Pattern {
        self.layout.shape.clone().into_pattern()
    }

    /// Byte strides per axis, as the exporter gave them (or derived for C order when it gave
    /// none).
    pub fn strides(&self) -> &[isize] {
        self.layout.strides()
    }

    /// Suboffsets, when the buffer uses PIL-style indirection (`None` otherwise, including
    /// when every suboffset is negative, which means no indirection).
    pub fn suboffsets(&self) -> Option<&[isize]> {
        self.layout.suboffsets.as_deref()
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.layout.ndim()
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.layout.len
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.layout.len == 0
    }

    /// Bytes per item (equal to `size_of::<T>()`).
    pub fn itemsize(&self) -> usize {
        self.layout.itemsize
    }

    /// The exporter's format string, verbatim (`"B"` when it gave none).
    pub fn format(&self) -> &str {
        self.raw.format()
    }

    /// Whether the memory is read-only.
    pub fn is_readonly(&self) -> bool {
        self.raw.is_readonly()
    }

    /// Whether the items are C-contiguous (precisely: axes of length 1 may have any stride).
    pub fn is_c_contiguous(&self) -> bool {
        self.layout.is_c_contiguous()
    }

    /// Whether the items are Fortran-contiguous (in the same precise sense).
    pub fn is_f_contiguous(&self) -> bool {
        self.layout.is_f_contiguous()
    }

    /// The exporting object (`Py_buffer.obj`); Python `None` in the rare case that the
    /// exporter did not set it.
    pub fn obj<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        self.raw.obj(py).unwrap_or_else(|| py.None().into_bound(py))
    }

    /// A momentary borrow of all the memory this buffer can touch.
    fn borrow_all(&self, access: Access) -> Result<BorrowToken, Error> {
        // SAFETY: the layout is this handle's, whose buffer stays held while `self` lives.
        unsafe { borrow::acquire_layout(&self.layout, access) }
    }

    fn check_writable(&self) -> Result<(), Error> {
        if self.is_readonly() {
            return Err(Error::ReadOnly {
                type_name: self.raw.exporter_name(),
            });
        }
        Ok(())
    }

    /// Copies the items into a new `Vec`, in logical C (row-major) order.
    pub fn to_vec(&self) -> Result<Vec<T>, Error> {
        self.to_vec_in(Order::C)
    }

    /// Copies the items into a new `Vec`, in C ([`Order::C`]) or Fortran ([`Order::F`])
    /// order.
    pub fn to_vec_in(&self, order: Order) -> Result<Vec<T>, Error> {
        let _borrow = self.borrow_all(Access::Shared)?;
        self.gather_vec(order)
    }

    /// The copy behind [`to_vec_in`](Buffer::to_vec_in), for a caller that already holds a
    /// borrow covering the whole buffer (shared or exclusive).
    fn gather_vec(&self, order: Order) -> Result<Vec<T>, Error> {
        let len = self.layout.len;
        let mut out: Vec<T> = Vec::with_capacity(len);
        // SAFETY: the spare capacity holds `len` items of `T` (`itemsize == size_of::<T>()`,
        // checked at acquisition), it is fresh memory that cannot overlap the buffer, and the
        // caller's borrow means no other pybuf borrow writes the memory while we read (writers
        // outside the registry are the documented trust boundary).
        unsafe { copy::gather(&self.layout, out.as_mut_ptr().cast::<u8>(), order) };
        validate_items::<T>(&out.spare_capacity_mut()[..len])?;
        // SAFETY: all `len` items were written by `gather` and validated above.
        unsafe { out.set_len(len) };
        Ok(out)
    }

    /// Copies the items into a new owned ndarray in C order.
    pub fn to_array(&self) -> Result<Array<T, D>, Error> {
        self.to_array_in(Order::C)
    }

    /// Copies the items into a new owned ndarray with the given memory order.
    pub fn to_array_in(&self, order: Order) -> Result<Array<T, D>, Error> {
        let data = self.to_vec_in(order)?;
        let shape =
            ndarray::ShapeBuilder::set_f(self.layout.shape.clone(), order.is_column_major());
        Ok(Array::from_shape_vec(shape, data)
            .expect("the copy holds exactly shape.product() items"))
    }

    /// Copies the items into `dst` in C order; `dst.len()` must equal [`len`](Buffer::len).
    pub fn copy_to_slice(&self, dst: &mut [T]) -> Result<(), Error> {
        self.copy_to_slice_in(dst, Order::C)
    }

    /// Copies the items into `dst` in the given order.
    pub fn copy_to_slice_in(&self, dst: &mut [T], order: Order) -> Result<(), Error> {
        self.check_len(dst.len())?;
        if !T::ALWAYS_VALID {
            // validate before anything lands in `dst`: it may never hold an invalid `T`
            let copy = self.to_vec_in(order)?;
            dst.copy_from_slice(&copy);
            return Ok(());
        }
        let _borrow = self.borrow_all(Access::Shared)?;
        // SAFETY: `dst` holds `len` items of `T` and is exclusively ours (`&mut`), so it
        // cannot be memory that a live guard lends out; every byte pattern is a valid `T`.
        unsafe { copy::gather(&self.layout, dst.as_mut_ptr().cast::<u8>(), order) };
        Ok(())
    }

    /// Copies `src` (in C order) into the buffer; needs writable memory and
    /// `src.len() == self.len()`.
    pub fn copy_from_slice(&self, src: &[T]) -> Result<(), Error> {
        self.copy_from_slice_in(src, Order::C)
    }

    /// Copies `src` (in the given order) into the buffer.
    ///
    /// For an element type with padding ([`Element::HAS_PADDING`]) only the fields are
    /// stored: the padding bytes of the buffer's items keep their bytes.
    pub fn copy_from_slice_in(&self, src: &[T], order: Order) -> Result<(), Error> {
        self.check_writable()?;
        self.check_len(src.len())?;
        let writer = ValueWriter::<T>::new();
        let _borrow = self.borrow_all(Access::Exclusive)?;
        // SAFETY: the memory is writable (checked), exclusively borrowed from every other Rust
        // user for the call, and `src` is a live shared slice, which the exclusive borrow
        // guarantees is not a view of this memory; `src` holds `len` valid items.
        unsafe { writer.scatter(&self.layout, src, order) };
        Ok(())
    }

    fn check_len(&self, found: usize) -> Result<(), Error> {
        if found != self.layout.len {
            return Err(Error::LengthMismatch {
                expected: self.layout.len,
                found,
            });
        }
        Ok(())
    }

    /// The address of the item at `index`, bounds-checked.
    fn item_address<I: NdIndex<D>>(&self, index: &I) -> Result<*mut u8, Error> {
        let layout = &self.layout;
        let offset = index
            .index_checked(&layout.shape, layout.strides_dim())
            .ok_or_else(|| Error::IndexOutOfBounds {
                index: format!("{index:?}"),
                shape: layout.shape.slice().to_vec(),
            })?;
        if layout.suboffsets.is_none() {
            // in bounds, so the offset lies within the extent checked at acquisition
            return Ok(layout.ptr.wrapping_offset(offset));
        }
        let components = index_components(index, &layout.shape);
        // SAFETY: `index_checked` succeeded, so every component is within the shape.
        Ok(unsafe { layout.address(&components) })
    }

    /// Runs `f` under a momentary borrow of the one item at `address` (for suboffset layouts,
    /// of the whole buffer).
    fn with_item<R>(
        &self,
        address: *mut u8,
        access: Access,
        f: impl FnOnce() -> R,
    ) -> Result<R, Error> {
        if self.layout.suboffsets.is_some() {
            let _borrow = self.borrow_all(access)?;
            return Ok(f());
        }
        borrow::with_item(address as usize, self.layout.itemsize, access, f)
    }

    /// Reads the item at `index` (any layout; bounds-checked).
    ///
    /// ```
    /// # use pyo3::prelude::*;
    /// # Python::attach(|py| -> PyResult<()> {
    /// let a = py.eval(c"memoryview(bytes(range(6))).cast('B', (2, 3))", None, None)?;
    /// let buf = pybuf::Buffer2::<u8>::get(&a)?;
    /// assert_eq!(buf.item((1, 2))?, 5);
    /// assert!(buf.item((2, 0)).is_err());
    /// # Ok(()) }).unwrap();
    /// ```
    pub fn item<I: NdIndex<D>>(&self, index: I) -> Result<T, Error> {
        let address = self.item_address(&index)?;
        let mut value = MaybeUninit::<T>::uninit();
        self.with_item(address, Access::Shared, || {
            // SAFETY: `address` is an in-bounds item of `size_of::<T>()` bytes (checked), read
            // bytewise so alignment does not matter, under a shared borrow.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    address.cast_const(),
                    value.as_mut_ptr().cast::<u8>(),
                    std::mem::size_of::<T>(),
                )
            }
        })?;
        validate_items::<T>(std::slice::from_ref(&value))?;
        // SAFETY: initialized by the copy and validated.
        Ok(unsafe { value.assume_init() })
    }

    /// Writes `value` to the item at `index` (any layout; bounds-checked; needs writable
    /// memory). For an element type with padding ([`Element::HAS_PADDING`]) only the fields
    /// are stored: the item's padding bytes keep their bytes.
    pub fn set_item<I: NdIndex<D>>(&self, index: I, value: T) -> Result<(), Error> {
        self.check_writable()?;
        let address = self.item_address(&index)?;
        let writer = ValueWriter::<T>::new();
        self.with_item(address, Access::Exclusive, || {
            // SAFETY: an in-bounds item of writable memory, exclusively borrowed, which the
            // local `value` cannot overlap; `write` assumes no alignment.
            unsafe { writer.write(&value, address) }
        })
    }

    /// A shared zero-copy borrow: an ndarray view, and a slice when C-contiguous.
    ///
    /// Fails with [`Error::Suboffsets`], [`Error::StrideNotMultiple`] or
    /// [`Error::Misaligned`] when no view of the layout can exist, with
    /// [`Error::BorrowConflict`] while an overlapping [`write`](Buffer::write) borrow is live,
    /// and with [`Error::InvalidValue`] when an item is not a valid `T` (a `bool` byte other
    /// than 0 or 1; read such data as [`Bool`](crate::Bool)).
    ///
    /// The validity check holds for what the memory held when the guard was made: Python code
    /// that writes the memory while the guard lives (a callback, `py.run`, a `__del__`) is
    /// outside pybuf's control, and undefined behaviour while a view from the guard is in use.
    pub fn read(&self) -> Result<ReadGuard<'_, T, D>, Error> {
        self.check_viewable()?;
        let token = borrow::acquire(self.layout.region(), Access::Shared)?;
        self.validate_in_place()?;
        Ok(ReadGuard::new(self, token))
    }

    /// An exclusive zero-copy borrow: mutable ndarray view, and a mutable slice when
    /// C-contiguous. Besides the failures of [`read`](Buffer::read): [`Error::PaddedElement`]
    /// for element types that may have padding (a `&mut T` could store it into Python's
    /// memory; write them with [`set_item`](Buffer::set_item) or
    /// [`copy_from_slice`](Buffer::copy_from_slice)), [`Error::ReadOnly`], and
    /// [`Error::SelfOverlapping`] when distinct items share memory (zero strides).
    pub fn write(&self) -> Result<WriteGuard<'_, T, D>, Error> {
        element::check_mutable_view::<T>()?;
        self.check_writable()?;
        self.check_viewable()?;
        if borrow::has_internal_overlap(self.layout.region()) {
            return Err(Error::SelfOverlapping {
                shape: self.shape().to_vec(),
                strides: self.strides().to_vec(),
            });
        }
        let token = borrow::acquire(self.layout.region(), Access::Exclusive)?;
        self.validate_in_place()?;
        Ok(WriteGuard::new(self, token))
    }

    /// Calls `f` with a read-only view: [`read`](Buffer::read) for the duration of the call,
    /// with the same failures. [`with_or_copy`](Buffer::with_or_copy) also takes layouts that
    /// no view can describe.
    ///
    /// ```
    /// # use pyo3::prelude::*;
    /// # Python::attach(|py| -> PyResult<()> {
    /// let a = py.eval(c"memoryview(bytes([1, 2, 3, 4]))", None, None)?;
    /// let sum = pybuf::Buffer1::<u8>::get(&a)?.with(|v| v.iter().map(|&x| x as u32).sum::<u32>())?;
    /// assert_eq!(sum, 10);
    /// # Ok(()) }).unwrap();
    /// ```
    pub fn with<R>(&self, f: impl FnOnce(ArrayView<'_, T, D>) -> R) -> Result<R, Error> {
        let guard = self.read()?;
        Ok(f(guard.view()))
    }

    /// Calls `f` with a mutable view: [`write`](Buffer::write) for the duration of the call,
    /// with the same failures.
    pub fn with_mut<R>(&self, f: impl FnOnce(ArrayViewMut<'_, T, D>) -> R) -> Result<R, Error> {
        let mut guard = self.write()?;
        Ok(f(guard.view_mut()))
    }

    /// A zero-copy view where one can exist, else an owned copy: "give me the items, copying
    /// only if I must".
    ///
    /// The view is [`read`](Buffer::read)'s; the copy ([`to_array`](Buffer::to_array), C
    /// order) is made exactly when no view of the layout can exist: misaligned data, byte
    /// strides that are not multiples of the item size (a field of a record array, `rec['x']`),
    /// suboffsets. Everything else is still an error, also for the copy, which takes a
    /// momentary shared borrow and checks every item: [`Error::BorrowConflict`] while an
    /// overlapping [`write`](Buffer::write) guard lives, [`Error::InvalidValue`] for an item
    /// that is not a valid `T`.
    ///
    /// ```
    /// # use pyo3::prelude::*;
    /// # Python::attach(|py| -> PyResult<()> {
    /// // the 'x' field of a packed record array: stride 9, no f64 view can describe it
    /// let rec = py.eval(c"__import__('numpy').zeros(4, dtype=[('tag', 'u1'), ('x', 'f8')])", None, None)?;
    /// let x = pybuf::Buffer1::<f64>::get(&rec.get_item("x")?)?;
    /// let items = x.read_or_copy()?;
    /// assert!(!items.is_view());
    /// assert_eq!(items.view().len(), 4);
    /// # Ok(()) }).unwrap();
    /// ```
    pub fn read_or_copy(&self) -> Result<ViewOrCopy<'_, T, D>, Error> {
        match self.check_viewable() {
            Ok(()) => self.read().map(ViewOrCopy::View),
            Err(_) => self.to_array().map(ViewOrCopy::Copy),
        }
    }

    /// Calls `f` with a view of the items: a zero-copy view where one can exist, else a view
    /// of a copy, as [`read_or_copy`](Buffer::read_or_copy) decides (with its failures).
    ///
    /// ```
    /// # use pyo3::prelude::*;
    /// # Python::attach(|py| -> PyResult<()> {
    /// let a = py.eval(c"__import__('numpy').arange(6.0)[::-2]", None, None)?;
    /// let sum = pybuf::Buffer1::<f64>::get(&a)?.with_or_copy(|v| v.sum())?;
    /// assert_eq!(sum, 5.0 + 3.0 + 1.0);
    /// # Ok(()) }).unwrap();
    /// ```
    pub fn with_or_copy<R>(&self, f: impl FnOnce(ArrayView<'_, T, D>) -> R) -> Result<R, Error> {
        let items = self.read_or_copy()?;
        Ok(f(items.view()))
    }

    fn check_viewable(&self) -> Result<(), Error> {
        if self.viewable.load(Ordering::Relaxed) {
            return Ok(());
        }
        if self.layout.suboffsets.is_some() {
            return Err(Error::Suboffsets);
        }
        if let Some((axis, stride)) = self.layout.stride_not_multiple(std::mem::size_of::<T>()) {
            return Err(Error::StrideNotMultiple {
                axis,
                stride,
                itemsize: self.layout.itemsize,
            });
        }
        let align = std::mem::align_of::<T>();
        let misaligned = if std::mem::size_of::<T>() != 0 {
            // Every stride that moves between items is a multiple of the item size (checked
            // just above), which is `size_of::<T>()`, itself a multiple of `align_of::<T>()`:
            // only the first item's address can be misaligned.
            let base = self.layout.ptr as usize;
            (self.layout.len != 0 && base % align != 0).then_some(base)
        } else {
            self.layout.first_misaligned(align)
        };
        if let Some(address) = misaligned {
            return Err(Error::Misaligned {
                type_name: T::type_name(),
                item: acquire::element_name::<T>(),
                align: std::mem::align_of::<T>(),
                address,
            });
        }
        self.viewable.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// For element types with invalid bit patterns, checks every item before references to
    /// them are handed out.
    /// The caller holds a borrow of the whole buffer (the guard's own token) or, in the unsafe
    /// accessors, promises that nothing writes; so the check copies without taking another
    /// borrow, which would conflict with the guard's own exclusive token.
    fn validate_in_place(&self) -> Result<(), Error> {
        if T::ALWAYS_VALID {
            return Ok(());
        }
        // A copy is the simplest correct check for any layout; it only runs for types such as
        // `bool` and records that contain one.
        self.gather_vec(Order::C).map(drop)
    }

    /// The layout, for the guards.
    pub(crate) fn layout(&self) -> &Layout<D> {
        &self.layout
    }

    /// The address of the item at index 0 (before any suboffset). The pointer may be
    /// misaligned for `T` and may be dangling for an empty buffer.
    ///
    /// # Safety
    /// Obtaining the pointer is harmless; using it is not: the caller must keep within the
    /// layout (`shape`, `strides`, `suboffsets`), must not read while anything writes the
    /// memory nor write while anything reads it (pybuf's registry does not see raw pointers),
    /// and must respect [`is_readonly`](Buffer::is_readonly) and `T`'s validity (a `bool` byte
    /// may be 2).
    pub unsafe fn as_ptr(&self) -> *const T {
        self.layout.ptr.cast::<T>().cast_const()
    }

    /// Mutable form of [`as_ptr`](Buffer::as_ptr).
    ///
    /// # Safety
    /// As for [`as_ptr`](Buffer::as_ptr); writes additionally need writable memory, and must
    /// store only initialized bytes: for an element type with padding
    /// ([`Element::HAS_PADDING`]) write the fields, never a whole `T` (`ptr.write(value)`
    /// would copy its uninitialized padding into Python's memory).
    pub unsafe fn as_mut_ptr(&self) -> *mut T {
        self.layout.ptr.cast::<T>()
    }

    /// A read-only view without taking a borrow in the registry.
    ///
    /// # Safety
    /// Nothing may write the memory while the view lives (no [`write`](Buffer::write) guard,
    /// no `set_item`, no raw writes, no Python writes). Layout checks still apply.
    pub unsafe fn view_unchecked(&self) -> Result<ArrayView<'_, T, D>, Error> {
        self.check_viewable()?;
        self.validate_in_place()?;
        // SAFETY: viewable layout (checked), no writers (caller's promise).
        Ok(unsafe { crate::guard::make_view(&self.layout) })
    }

    /// A C-contiguous slice without taking a borrow in the registry (`None` when the buffer
    /// is not C-contiguous).
    ///
    /// # Safety
    /// As for [`view_unchecked`](Buffer::view_unchecked).
    pub unsafe fn as_slice_unchecked(&self) -> Result<Option<&[T]>, Error> {
        self.check_viewable()?;
        self.validate_in_place()?;
        // SAFETY: viewable layout (checked), no writers (caller's promise).
        Ok(unsafe { crate::guard::make_slice(&self.layout) })
    }
}

impl<T: Element, D: Dimension> std::fmt::Debug for Buffer<T, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffer")
            .field("element", &T::type_name())
            .field("format", &self.format())
            .field("shape", &self.shape())
            .field("strides", &self.strides())
            .field("readonly", &self.is_readonly())
            .finish()
    }
}

impl<'a, 'py, T: Element, D: Dimension> FromPyObject<'a, 'py> for Buffer<T, D> {
    type Error = Error;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> Result<Self, Self::Error> {
        Buffer::get(&obj)
    }
}

/// A [`Buffer`] acquired with a writable request ([`Buffer::get_mut`]): the argument type for
/// outputs of a `#[pyfunction]`, so read-only objects (`bytes`, `writeable=False` arrays) are
/// refused with [`Error::ReadOnly`] before the function body runs. It dereferences to the
/// `Buffer`.
///
/// Like `Buffer`, its second parameter is the number of dimensions and defaults to any
/// ([`IxDyn`](type@IxDyn)): prefer the aliases [`BufferMut1`], [`BufferMut2`], [`BufferMut3`] and
/// [`BufferMutD`], which say it.
///
/// ```
/// use pybuf::{Buffer1, BufferMut1};
/// use pyo3::prelude::*;
///
/// #[pyfunction]
/// fn scale(x: Buffer1<f64>, factor: f64, out: BufferMut1<f64>) -> PyResult<()> {
///     let src = x.read()?; // registered before any memory is touched: an `out` that
///     let mut dst = out.write()?; // overlaps `x` is refused with a borrow conflict
///     dst.view_mut().zip_mut_with(&src.view(), |d, &s| *d = s * factor);
///     Ok(())
/// }
/// # fn main() {}
/// ```
pub struct BufferMut<T: Element, D: Dimension = IxDyn>(Buffer<T, D>);

impl<T: Element, D: Dimension> BufferMut<T, D> {
    /// Acquires a writable buffer (the same as [`Buffer::get_mut`]).
    pub fn get(obj: &Bound<'_, PyAny>) -> Result<Self, Error> {
        Buffer::get_mut(obj).map(BufferMut)
    }

    /// The writable buffer.
    pub fn into_inner(self) -> Buffer<T, D> {
        self.0
    }
}

impl<T: Element, D: Dimension> std::ops::Deref for BufferMut<T, D> {
    type Target = Buffer<T, D>;

    fn deref(&self) -> &Buffer<T, D> {
        &self.0
    }
}

impl<T: Element, D: Dimension> std::fmt::Debug for BufferMut<T, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BufferMut").field(&self.0).finish()
    }
}

impl<'a, 'py, T: Element, D: Dimension> FromPyObject<'a, 'py> for BufferMut<T, D> {
    type Error = Error;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> Result<Self, Self::Error> {
        BufferMut::get(&obj)
    }
}

/// Checks that every item holds a valid `T`; for always-valid types this is free.
fn validate_items<T: Element>(items: &[MaybeUninit<T>]) -> Result<(), Error> {
    if T::ALWAYS_VALID {
        return Ok(());
    }
    let size = std::mem::size_of::<T>();
    for (position, item) in items.iter().enumerate() {
        // SAFETY: the items were initialized bytewise by the caller's copy; viewing
        // initialized memory as bytes is always valid.
        let bytes = unsafe { std::slice::from_raw_parts(item.as_ptr().cast::<u8>(), size) };
        if !T::is_valid(bytes) {
            return Err(Error::InvalidValue {
                type_name: T::type_name(),
                position,
                bytes: bytes.to_vec(),
            });
        }
    }
    Ok(())
}

/// The per-axis components of an in-bounds index (only needed to follow suboffsets).
fn index_components<D: Dimension, I: NdIndex<D>>(index: &I, shape: &D) -> Vec<usize> {
    let ndim = shape.ndim();
    let mut unit = D::zeros(ndim);
    (0..ndim)
        .map(|axis| {
            unit.slice_mut().fill(0);
            unit[axis] = 1;
            index
                .index_checked(shape, &unit)
                .expect("the index was checked against this shape") as usize
        })
        .collect()
}
