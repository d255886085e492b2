//! Zero-copy borrows of a buffer: [`ReadGuard`] and [`WriteGuard`].
//!
//! A guard holds a registry borrow of exactly the memory its views can reach, so while it
//! lives no other Rust code can write that memory (for a read guard) or touch it at all (for a
//! write guard), whichever handle or thread it goes through. Views are ndarray views with
//! element strides; negative strides are expressed by inverting axes of a view that starts at
//! the lowest address, as ndarray requires.
//!
//! The registry sees Rust borrows only: Python code that writes the memory while a view
//! taken from a guard is in use — on another thread, or on this one during a callback,
//! `py.run` or a `__del__` — is undefined behaviour for Rust. A guard itself holds no
//! reference (each `view()` makes a new one), but the element validity checked when it was
//! made (`bool` bytes are 0 or 1) does not survive such a write; see the crate documentation,
//! "Python code that runs while a guard lives", and [`Bool`](crate::Bool).
//!
//! Guards are `Send` and `Sync` where their views are, so they can be used inside
//! `py.detach(|| ...)` with the interpreter lock released, for example with rayon over
//! `guard.view_mut().axis_iter_mut(...)`.

use std::ptr::NonNull;

use ndarray::{ArrayView, ArrayViewMut, Axis, Dimension, ShapeBuilder};

use crate::borrow::BorrowToken;
use crate::buffer::Buffer;
use crate::element::Element;
use crate::layout::{fill_c_strides, Layout};

/// A shared zero-copy borrow of a [`Buffer`]; see [`Buffer::read`].
pub struct ReadGuard<'a, T: Element, D: Dimension> {
    buffer: &'a Buffer<T, D>,
    _token: BorrowToken,
}

/// An exclusive zero-copy borrow of a [`Buffer`]; see [`Buffer::write`].
pub struct WriteGuard<'a, T: Element, D: Dimension> {
    buffer: &'a Buffer<T, D>,
    _token: BorrowToken,
}

impl<'a, T: Element, D: Dimension> ReadGuard<'a, T, D> {
    pub(crate) fn new(buffer: &'a Buffer<T, D>, token: BorrowToken) -> Self {
        ReadGuard {
            buffer,
            _token: token,
        }
    }

    /// The items as an ndarray view.
    pub fn view(&self) -> ArrayView<'_, T, D> {
        // SAFETY: `Buffer::read` checked that the layout is viewable (no suboffsets, strides
        // multiples of the item size, aligned) and that every item is a valid `T`, and the
        // shared borrow keeps every other pybuf borrow from writing the memory for the guard's
        // lifetime. Writers the registry cannot see (Python code, other libraries, a second
        // mapping of the same pages) are the trust boundary documented at the crate root.
        unsafe { make_view(self.buffer.layout()) }
    }

    /// The items as a slice, if they are C-contiguous.
    pub fn as_slice(&self) -> Option<&[T]> {
        // SAFETY: as for `view`.
        unsafe { make_slice(self.buffer.layout()) }
    }
}

impl<'a, T: Element, D: Dimension> WriteGuard<'a, T, D> {
    pub(crate) fn new(buffer: &'a Buffer<T, D>, token: BorrowToken) -> Self {
        WriteGuard {
            buffer,
            _token: token,
        }
    }

    /// The items as a read-only ndarray view.
    pub fn view(&self) -> ArrayView<'_, T, D> {
        // SAFETY: `Buffer::write` checked the layout and validity and holds the exclusive
        // borrow; `&self` forbids a simultaneous `view_mut`.
        unsafe { make_view(self.buffer.layout()) }
    }

    /// The items as a mutable ndarray view.
    pub fn view_mut(&mut self) -> ArrayViewMut<'_, T, D> {
        // SAFETY: as for `view`, plus: the memory is writable (checked), no two items overlap
        // (checked by `has_internal_overlap`), `&mut self` makes this the only view, and `T`
        // has no padding (`Buffer::write` refuses `T::HAS_PADDING`), so every value safe
        // code can store through the view is initialized bytes.
        unsafe { make_view_mut(self.buffer.layout()) }
    }

    /// The items as a slice, if they are C-contiguous.
    pub fn as_slice(&self) -> Option<&[T]> {
        // SAFETY: as for `view`.
        unsafe { make_slice(self.buffer.layout()) }
    }

    /// The items as a mutable slice, if they are C-contiguous.
    pub fn as_slice_mut(&mut self) -> Option<&mut [T]> {
        // SAFETY: as for `view_mut`.
        unsafe { make_slice_mut(self.buffer.layout()) }
    }
}

/// Pointer to the lowest-addressed item, element strides (all non-negative) and the axes to
/// invert afterwards.
struct ViewParts<T, D> {
    ptr: NonNull<T>,
    strides: D,
    inverted: Vec<usize>,
}

/// # Safety
/// The layout must be viewable as `T` (no suboffsets, strides multiples of the item size
/// `size_of::<T>()`, aligned for `T`).
unsafe fn view_parts<T: Element, D: Dimension>(layout: &Layout<D>) -> ViewParts<T, D> {
    let ndim = layout.ndim();
    let mut strides = D::zeros(ndim);
    let mut inverted = Vec::new();
    let size = std::mem::size_of::<T>();
    if layout.len == 0 || size == 0 {
        // No item is ever read: a dangling, aligned pointer is valid. The strides are C-order
        // element strides with empty axes counted as 1, never zero: ndarray's debug checks
        // call zero strides on an axis of length > 1 overlapping, even when another axis is
        // empty (shape (2, 3, 0) with zero strides panics there).
        fill_c_strides(strides.slice_mut(), layout.shape.slice(), 1);
        return ViewParts {
            ptr: NonNull::dangling(),
            strides,
            inverted,
        };
    }
    let mut low = layout.ptr;
    for (axis, (&n, &s)) in layout
        .shape
        .slice()
        .iter()
        .zip(layout.strides())
        .enumerate()
    {
        if n <= 1 {
            continue; // the stride of a length-1 axis is never used
        }
        if s < 0 {
            // start from the lowest address and invert the axis afterwards
            low = low.wrapping_offset((n as isize - 1) * s);
            inverted.push(axis);
        }
        strides[axis] = s.unsigned_abs() / size;
    }
    ViewParts {
        ptr: NonNull::new(low.cast::<T>()).expect("non-empty buffers have a non-NULL pointer"),
        strides,
        inverted,
    }
}

/// # Safety
/// Viewable layout (see [`view_parts`]), every item a valid `T`, and no writes to the memory
/// for `'v`.
pub(crate) unsafe fn make_view<'v, T: Element, D: Dimension>(
    layout: &Layout<D>,
) -> ArrayView<'v, T, D> {
    if layout.len == 0 {
        return empty_view(layout.shape.clone());
    }
    // SAFETY: forwarded.
    let parts = unsafe { view_parts::<T, D>(layout) };
    let shape = layout.shape.clone().strides(parts.strides);
    // SAFETY: the pointer is the lowest item address (or dangling for an empty view), all
    // items lie within the extent validated at acquisition (whose byte offsets fit isize),
    // strides are non-negative element counts, and the caller rules out writers.
    let mut view = unsafe { ArrayView::from_shape_ptr(shape, parts.ptr.as_ptr().cast_const()) };
    for axis in parts.inverted {
        view.invert_axis(Axis(axis));
    }
    view
}

/// A view of no items, with ndarray's own strides for its shape (all zero): what
/// `Array::zeros` of the shape has, so ndarray's constructors that copy a view's strides
/// (`map`, `to_owned`) accept them. Custom strides cannot serve every check at once: zero
/// strides trip the overlap check of `from_shape_ptr` on shape (2, 3, 0), and non-zero ones
/// the bounds check of `map` on shape (0, 5).
fn empty_view<'v, T, D: Dimension>(shape: D) -> ArrayView<'v, T, D> {
    ArrayView::from_shape(shape, &[]).expect("an empty shape fits an empty slice")
}

/// # Safety
/// As for [`make_view`], plus: writable memory, no two items overlap, and no other access
/// to the memory for `'v`.
pub(crate) unsafe fn make_view_mut<'v, T: Element, D: Dimension>(
    layout: &Layout<D>,
) -> ArrayViewMut<'v, T, D> {
    if layout.len == 0 {
        return ArrayViewMut::from_shape(layout.shape.clone(), &mut [])
            .expect("an empty shape fits an empty slice");
    }
    // SAFETY: forwarded.
    let parts = unsafe { view_parts::<T, D>(layout) };
    let shape = layout.shape.clone().strides(parts.strides);
    // SAFETY: as in `make_view`; exclusivity and non-overlap are the caller's promise.
    let mut view = unsafe { ArrayViewMut::from_shape_ptr(shape, parts.ptr.as_ptr()) };
    for axis in parts.inverted {
        view.invert_axis(Axis(axis));
    }
    view
}

/// # Safety
/// As for [`make_view`].
pub(crate) unsafe fn make_slice<'v, T: Element, D: Dimension>(
    layout: &Layout<D>,
) -> Option<&'v [T]> {
    if !layout.is_c_contiguous() {
        return None;
    }
    if layout.len == 0 {
        return Some(&[]);
    }
    // SAFETY: C-contiguous means `len` items back to back from `ptr` (aligned, checked by
    // the caller's viewability), valid and free of writers by the caller's promise.
    Some(unsafe { std::slice::from_raw_parts(layout.ptr.cast::<T>(), layout.len) })
}

/// # Safety
/// As for [`make_view_mut`].
pub(crate) unsafe fn make_slice_mut<'v, T: Element, D: Dimension>(
    layout: &Layout<D>,
) -> Option<&'v mut [T]> {
    if !layout.is_c_contiguous() {
        return None;
    }
    if layout.len == 0 {
        return Some(&mut []);
    }
    // SAFETY: as in `make_slice`, with exclusive access by the caller's promise.
    Some(unsafe { std::slice::from_raw_parts_mut(layout.ptr.cast::<T>(), layout.len) })
}

impl<T: Element, D: Dimension> std::fmt::Debug for ReadGuard<'_, T, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadGuard")
            .field("element", &T::type_name())
            .field("shape", &self.buffer.shape())
            .finish()
    }
}

impl<T: Element, D: Dimension> std::fmt::Debug for WriteGuard<'_, T, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteGuard")
            .field("element", &T::type_name())
            .field("shape", &self.buffer.shape())
            .finish()
    }
}
