//! Layout facts of an acquired buffer: where its elements are, validated once.
//!
//! [`Layout::read`] turns the exporter's `Py_buffer` fields into checked numbers without
//! trusting any of them: NULL shape means 1-D of `len / itemsize` items, NULL strides mean C
//! order, all-negative suboffsets mean none, and every `shape × stride` product and the total
//! extent are computed with overflow checks. After that, any index within the shape addresses
//! memory inside the extent the exporter described, and byte offsets never overflow `isize`.

use ndarray::{Dimension, Ix1, IxDyn};
use pyo3::ffi;

use crate::borrow::Region;

/// The most dimensions a buffer may have (`PyBUF_MAX_NDIM`).
pub const MAX_NDIM: usize = 64;

/// Where the elements of a buffer are. `D` is the number of dimensions, static or dynamic.
#[derive(Clone, Debug)]
pub(crate) struct Layout<D: Dimension> {
    /// The exporter's `buf`: the address of the element at index 0 (before suboffsets).
    pub ptr: *mut u8,
    /// Number of items along each axis.
    pub shape: D,
    /// Byte strides, stored as `usize` bit patterns of `isize` (as ndarray does).
    strides: D,
    /// Bytes per item.
    pub itemsize: usize,
    /// Suboffsets, only when at least one is non-negative (PIL-style indirection).
    pub suboffsets: Option<Box<[isize]>>,
    /// Number of items (product of the shape).
    pub len: usize,
}

// SAFETY: a `Layout` is a description — an address and numbers — that nothing mutates after
// construction. Sending or sharing it touches no element memory; every read or write through
// `ptr` is an `unsafe` operation elsewhere that states its own requirements (a held buffer and
// a registry borrow of what it touches), wherever the `Layout` is.
unsafe impl<D: Dimension> Send for Layout<D> {}
// SAFETY: as for `Send`: `&Layout` gives only the numbers and the address.
unsafe impl<D: Dimension> Sync for Layout<D> {}

/// Why a layout was refused.
pub(crate) type LayoutError = String;

impl<D: Dimension> Layout<D> {
    /// Byte strides per axis.
    pub fn strides(&self) -> &[isize] {
        let s = self.strides.slice();
        // SAFETY: usize and isize have the same size and alignment, and every bit pattern is
        // valid for both; the slice borrows `self.strides` for the returned lifetime.
        unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<isize>(), s.len()) }
    }

    /// The strides in ndarray's representation (`isize` bit patterns in `D`).
    pub fn strides_dim(&self) -> &D {
        &self.strides
    }

    /// Number of axes.
    pub fn ndim(&self) -> usize {
        self.shape.ndim()
    }

    /// The same layout with `E` as its dimension type, if the number of axes fits `E`.
    pub fn into_dimensionality<E: Dimension>(self) -> Option<Layout<E>> {
        Some(Layout {
            ptr: self.ptr,
            shape: E::from_dimension(&self.shape)?,
            strides: E::from_dimension(&self.strides)?,
            itemsize: self.itemsize,
            suboffsets: self.suboffsets,
            len: self.len,
        })
    }

    /// C-contiguous in the precise sense of PEP 3118: axes of length 1 may have any stride,
    /// and a buffer with no items is contiguous in every order.
    pub fn is_c_contiguous(&self) -> bool {
        self.suboffsets.is_none()
            && contiguous_in(
                self.shape.slice().iter().rev(),
                self.strides().iter().rev(),
                self,
            )
    }

    /// F-contiguous in the same precise sense.
    pub fn is_f_contiguous(&self) -> bool {
        self.suboffsets.is_none()
            && contiguous_in(self.shape.slice().iter(), self.strides().iter(), self)
    }

    /// The memory the elements occupy, for the borrow registry.
    pub fn region(&self) -> Region<'_> {
        Region {
            ptr: self.ptr as usize,
            shape: self.shape.slice(),
            strides: self.strides(),
            itemsize: self.itemsize,
        }
    }

    /// Whether the base address and every stride that moves between distinct items keep
    /// elements aligned to `align`.
    pub fn first_misaligned(&self, align: usize) -> Option<usize> {
        if self.len == 0 || align <= 1 {
            return None;
        }
        let base = self.ptr as usize;
        if base % align != 0 {
            return Some(base);
        }
        self.shape
            .slice()
            .iter()
            .zip(self.strides())
            .find(|(&n, &s)| n > 1 && s.unsigned_abs() % align != 0)
            .map(|(_, &s)| base.wrapping_add_signed(s))
    }

    /// The first axis whose stride is not a multiple of `itemsize` (among axes that move
    /// between distinct items). Typed handles pass `size_of::<T>()` (their item size), a
    /// constant the division folds into.
    #[inline]
    pub fn stride_not_multiple(&self, itemsize: usize) -> Option<(usize, isize)> {
        if self.len == 0 || itemsize == 0 {
            return None;
        }
        self.shape
            .slice()
            .iter()
            .zip(self.strides())
            .enumerate()
            .find(|(_, (&n, &s))| n > 1 && s.unsigned_abs() % itemsize != 0)
            .map(|(axis, (_, &s))| (axis, s))
    }

    /// The address of the item at `index` (one entry per axis, each within the shape),
    /// following suboffsets. Address arithmetic wraps instead of asserting in-bounds offsets;
    /// only the pointer reads at indirect levels touch memory.
    ///
    /// # Safety
    /// Every index must be within the shape. With suboffsets, the exporter's pointer arrays
    /// are read, which must be valid while the buffer is held (the exporter's promise).
    pub unsafe fn address(&self, index: &[usize]) -> *mut u8 {
        let strides = self.strides();
        match &self.suboffsets {
            None => {
                let offset: isize = index
                    .iter()
                    .zip(strides)
                    .map(|(&i, &s)| i as isize * s)
                    .sum();
                self.ptr.wrapping_offset(offset)
            }
            Some(sub) => {
                let mut p = self.ptr;
                for ((&i, &s), &so) in index.iter().zip(strides).zip(sub.iter()) {
                    p = p.wrapping_offset(i as isize * s);
                    if so >= 0 {
                        // SAFETY: at an indirect level the exporter stores a pointer at `p`
                        // (its promise for in-bounds indices, which the caller guarantees);
                        // it may be unaligned, so it is read bytewise.
                        let next = unsafe { p.cast::<*mut u8>().read_unaligned() };
                        p = next.wrapping_offset(so);
                    }
                }
                p
            }
        }
    }
}

fn contiguous_in<'a, D: Dimension>(
    shape: impl Iterator<Item = &'a usize> + Clone,
    strides: impl Iterator<Item = &'a isize>,
    layout: &Layout<D>,
) -> bool {
    if layout.len == 0 {
        return true;
    }
    let mut expected = layout.itemsize as isize;
    for (&n, &s) in shape.zip(strides) {
        if n > 1 {
            if s != expected {
                return false;
            }
            expected *= n as isize;
        }
    }
    true
}

impl Layout<IxDyn> {
    /// A 0-d layout seen as one item along one axis (`Buffer1` accepts scalars); `None` if
    /// the layout is not 0-d or `E` is not 1-D.
    pub fn scalar_as_1d<E: Dimension>(self) -> Option<Layout<E>> {
        if self.ndim() != 0 || E::NDIM != Some(1) {
            return None;
        }
        let mut shape = E::zeros(1);
        shape[0] = 1;
        let mut strides = E::zeros(1);
        strides[0] = self.itemsize;
        Some(Layout {
            ptr: self.ptr,
            shape,
            strides,
            itemsize: self.itemsize,
            suboffsets: None,
            len: 1,
        })
    }
}

impl<D: Dimension> Layout<D> {
    /// The bytes of a C-contiguous layout as one axis of `size`-byte items
    /// (`AnyBuffer::reinterpret`).
    ///
    /// The caller has checked that the layout is C-contiguous (so it has no suboffsets and its
    /// `len × itemsize` bytes lie back to back from `ptr`) and that `size` is non-zero and
    /// divides that length: the new items cover exactly those bytes, inside the extent
    /// validated by [`Layout::read`].
    pub fn contiguous_bytes_as(&self, size: usize) -> Layout<Ix1> {
        debug_assert!(self.is_c_contiguous() && size > 0);
        let bytes = self.len * self.itemsize;
        debug_assert_eq!(bytes % size, 0);
        let len = bytes / size;
        Layout {
            ptr: self.ptr,
            shape: Ix1(len),
            strides: Ix1(size),
            itemsize: size,
            suboffsets: None,
            len,
        }
    }
}

impl Layout<IxDyn> {
    /// The layout with its last axis folded into the item: `shape[..n-1]`, `strides[..n-1]`,
    /// items of `itemsize × shape[n-1]` bytes. Used for `[E; N]` elements
    /// (`crate::acquire`).
    ///
    /// The caller has checked that the last axis exists, has at least one item, moves by
    /// exactly `itemsize` bytes (when it has more than one) and has no suboffset: then each new
    /// item covers exactly the bytes of the old items it replaces, so every address stays
    /// within the extent validated by [`Layout::read`].
    pub fn absorb_last_axis(self) -> Result<Layout<IxDyn>, LayoutError> {
        let ndim = self.ndim();
        let length = self.shape[ndim - 1];
        debug_assert!(length >= 1);
        let itemsize = self.itemsize.checked_mul(length).ok_or_else(|| {
            format!(
                "{length} items of {} bytes along the last axis overflow an item size",
                self.itemsize
            )
        })?;
        let shape = IxDyn(&self.shape.slice()[..ndim - 1]);
        let len = shape.slice().iter().product();
        let suboffsets = self
            .suboffsets
            .map(|sub| sub[..ndim - 1].to_vec().into_boxed_slice())
            .filter(|sub| sub.iter().any(|&s| s >= 0));
        Ok(Layout {
            ptr: self.ptr,
            shape,
            strides: IxDyn(&self.strides.slice()[..ndim - 1]),
            itemsize,
            suboffsets,
            len,
        })
    }
}

impl<D: Dimension> Layout<D> {
    /// Checks that every byte offset an in-bounds index can produce fits in `isize` and that
    /// the addresses do not wrap around the address space.
    #[inline(always)]
    fn check_extent(&self) -> Result<(), LayoutError> {
        if self.len == 0 {
            return Ok(());
        }
        // Every length is at most isize::MAX (the item count is, and it is not 0), so
        // `n - 1` is an isize; the sums are checked as they go.
        let (mut low, mut high, mut overflow) = (0isize, 0isize, false);
        for (&n, &s) in self.shape.slice().iter().zip(self.strides()) {
            let (span, o) = (n as isize - 1).overflowing_mul(s);
            overflow |= o;
            let (sum, o) = if span < 0 {
                low.overflowing_add(span)
            } else {
                high.overflowing_add(span)
            };
            overflow |= o;
            if span < 0 {
                low = sum;
            } else {
                high = sum;
            }
        }
        let (end, o) = high.overflowing_add(self.itemsize as isize);
        overflow |= o;
        let (extent, o) = end.overflowing_sub(low);
        overflow |= o || extent < 0;
        if overflow {
            return Err(reason(format_args!(
                "shape {:?} with byte strides {:?} spans more bytes than a byte offset can \
                 address",
                self.shape.slice(),
                self.strides()
            )));
        }
        let base = self.ptr as usize;
        if self.suboffsets.is_none()
            && (base.checked_add_signed(low).is_none() || base.checked_add_signed(end).is_none())
        {
            return Err(reason(format_args!(
                "addresses from {base:#x}{low:+} to {base:#x}{end:+} wrap around"
            )));
        }
        Ok(())
    }

    /// Reads and validates the layout of an acquired `Py_buffer` straight into the dimension
    /// type `D` (no detour through a dynamic shape on the acquisition path). A 0-d buffer read
    /// as 1-D becomes shape `[1]`. A number of dimensions that `D` cannot hold is refused.
    ///
    /// # Safety
    /// `view` must have been filled by a successful `PyObject_GetBuffer` and not released;
    /// its `shape`, `strides` and `suboffsets` (where non-NULL) point to `ndim` values.
    #[inline(always)]
    pub unsafe fn read(view: &ffi::Py_buffer) -> Result<Layout<D>, LayoutError> {
        // SAFETY: forwarded.
        if let Some(layout) = unsafe { Self::read_direct(view) } {
            return Ok(layout);
        }
        // SAFETY: forwarded.
        unsafe { Self::read_general(view) }
    }

    /// The common case in straight-line code, for a static number of dimensions: the
    /// exporter's `ndim` is `D`'s, with a shape, no suboffsets, a length that agrees and an
    /// extent that fits. `None` for anything else, which [`Layout::read_general`] then accepts
    /// or explains. It accepts nothing that `read_general` refuses.
    ///
    /// # Safety
    /// As for [`Layout::read`].
    #[inline(always)]
    unsafe fn read_direct(view: &ffi::Py_buffer) -> Option<Layout<D>> {
        if D::NDIM == Some(1) && view.ndim == 1 {
            // SAFETY: forwarded; `ndim` is 1.
            return unsafe { Self::read_1d(view) };
        }
        let ndim = D::NDIM?;
        if view.ndim < 0
            || view.ndim as usize != ndim
            || view.shape.is_null()
            || !view.suboffsets.is_null()
            || view.itemsize < 0
        {
            return None;
        }
        let itemsize = view.itemsize as usize;
        // SAFETY: a non-NULL shape has `ndim` entries (the caller's promise).
        let raw_shape = unsafe { std::slice::from_raw_parts(view.shape, ndim) };
        let mut shape = D::zeros(ndim);
        let mut len: usize = 1;
        let mut bad = false;
        for (dst, &n) in shape.slice_mut().iter_mut().zip(raw_shape) {
            bad |= n < 0;
            *dst = n as usize;
            let (product, overflow) = len.overflowing_mul(n as usize);
            bad |= overflow;
            len = product;
        }
        if bad || len > isize::MAX as usize || len as u128 * itemsize as u128 != view.len as u128 {
            return None;
        }
        let mut strides = D::zeros(ndim);
        if view.strides.is_null() {
            fill_c_strides(strides.slice_mut(), shape.slice(), itemsize);
        } else {
            // SAFETY: as for the shape.
            let raw = unsafe { std::slice::from_raw_parts(view.strides, ndim) };
            for (dst, &s) in strides.slice_mut().iter_mut().zip(raw) {
                *dst = s as usize;
            }
        }
        let layout = Layout {
            ptr: view.buf.cast::<u8>(),
            shape,
            strides,
            itemsize,
            suboffsets: None,
            len,
        };
        if len > 0 && (view.buf.is_null() || layout.check_extent().is_err()) {
            return None;
        }
        Some(layout)
    }

    /// [`Layout::read_direct`] for one dimension, without loops.
    ///
    /// # Safety
    /// As for [`Layout::read`], and `view.ndim == 1`.
    #[inline(always)]
    unsafe fn read_1d(view: &ffi::Py_buffer) -> Option<Layout<D>> {
        if view.shape.is_null() || !view.suboffsets.is_null() {
            return None;
        }
        // SAFETY: a non-NULL shape of a 1-D buffer has one entry (the caller's promise).
        let n = unsafe { *view.shape };
        let itemsize = view.itemsize;
        let stride = if view.strides.is_null() {
            itemsize
        } else {
            // SAFETY: as for the shape.
            unsafe { *view.strides }
        };
        if n < 0 || itemsize < 0 || n.checked_mul(itemsize) != Some(view.len) {
            return None;
        }
        if n > 0 {
            // the extent, as `check_extent` computes it for one axis
            if view.buf.is_null() {
                return None;
            }
            let span = (n - 1).checked_mul(stride)?;
            let (low, high) = if span < 0 { (span, 0) } else { (0, span) };
            let end = high.checked_add(itemsize)?;
            end.checked_sub(low)?;
            let base = view.buf as usize;
            base.checked_add_signed(low)?;
            base.checked_add_signed(end)?;
        }
        let mut shape = D::zeros(1);
        shape[0] = n as usize;
        let mut strides = D::zeros(1);
        strides[0] = stride as usize;
        Some(Layout {
            ptr: view.buf.cast::<u8>(),
            shape,
            strides,
            itemsize: itemsize as usize,
            suboffsets: None,
            len: n as usize,
        })
    }

    /// Any number of dimensions, every check, with a reason for each failure.
    ///
    /// # Safety
    /// As for [`Layout::read`].
    unsafe fn read_general(view: &ffi::Py_buffer) -> Result<Layout<D>, LayoutError> {
        let ndim = exporter_ndim(view)?;
        if view.itemsize < 0 {
            return Err(reason(format_args!("negative itemsize {}", view.itemsize)));
        }
        if view.len < 0 {
            return Err(reason(format_args!("negative length {}", view.len)));
        }
        let (itemsize, byte_len) = (view.itemsize as usize, view.len as usize);
        let scalar_as_1d = ndim == 0 && D::NDIM == Some(1);
        if !scalar_as_1d && D::NDIM.is_some_and(|n| n != ndim) {
            return Err(reason(format_args!(
                "{ndim} dimensions where {:?} were expected",
                D::NDIM
            )));
        }

        let mut shape = D::zeros(if scalar_as_1d { 1 } else { ndim });
        let mut strides = D::zeros(shape.ndim());
        let mut len: usize = 1;
        if scalar_as_1d {
            shape[0] = 1;
            strides[0] = itemsize;
        } else {
            // SAFETY: the exporter filled `ndim` entries when the pointer is non-NULL.
            match unsafe { raw_slice(view.shape, ndim) } {
                Some(raw) => {
                    for (axis, (dst, &n)) in shape.slice_mut().iter_mut().zip(raw).enumerate() {
                        if n < 0 {
                            return Err(reason(format_args!("negative length {n} on axis {axis}")));
                        }
                        *dst = n as usize;
                        len = match len.checked_mul(n as usize) {
                            Some(len) => len,
                            None => {
                                return Err(reason(format_args!(
                                    "the number of items of shape {raw:?} overflows"
                                )))
                            }
                        };
                    }
                }
                None if ndim == 0 => {}
                // Without PyBUF_ND an exporter may omit the shape: 1-D of `len` bytes.
                None if ndim == 1 && itemsize != 0 && byte_len % itemsize == 0 => {
                    shape[0] = byte_len / itemsize;
                    len = shape[0];
                }
                None => {
                    return Err(reason(format_args!(
                        "no shape for {ndim} dimensions of {byte_len} bytes with itemsize \
                         {itemsize}"
                    )))
                }
            }
            // SAFETY: as above.
            match unsafe { raw_slice(view.strides, ndim) } {
                Some(raw) => {
                    for (dst, &s) in strides.slice_mut().iter_mut().zip(raw) {
                        *dst = s as usize;
                    }
                }
                // NULL strides: C-contiguous (ctypes does this even when asked for them).
                None => fill_c_strides(strides.slice_mut(), shape.slice(), itemsize),
            }
        }

        if len > isize::MAX as usize {
            // Also for zero-size items: views and copies count items in `isize`.
            return Err(reason(format_args!(
                "shape {:?} holds {len} items, more than isize::MAX",
                shape.slice()
            )));
        }
        // Both factors are at most isize::MAX, so the product fits in u128.
        let expected_bytes = len as u128 * itemsize as u128;
        if expected_bytes != byte_len as u128 {
            return Err(reason(format_args!(
                "len {byte_len} bytes, but shape {:?} of {itemsize}-byte items holds \
                 {expected_bytes}",
                shape.slice()
            )));
        }

        // SAFETY: as above.
        let suboffsets = match unsafe { raw_slice(view.suboffsets, ndim) } {
            Some(raw) if raw.iter().any(|&s| s >= 0) => Some(raw.to_vec().into_boxed_slice()),
            _ => None,
        };

        if len > 0 && view.buf.is_null() {
            return Err(reason(format_args!("NULL data pointer for {len} items")));
        }

        let layout = Layout {
            ptr: view.buf.cast::<u8>(),
            shape,
            strides,
            itemsize,
            suboffsets,
            len,
        };
        layout.check_extent()?;
        Ok(layout)
    }
}

/// A layout error's text, built out of line (only failures pay for formatting).
#[cold]
#[inline(never)]
fn reason(args: std::fmt::Arguments<'_>) -> LayoutError {
    args.to_string()
}

/// The exporter's number of dimensions, if possible (0 to [`MAX_NDIM`]).
#[inline(always)]
fn exporter_ndim(view: &ffi::Py_buffer) -> Result<usize, LayoutError> {
    match usize::try_from(view.ndim) {
        Ok(ndim) if ndim <= MAX_NDIM => Ok(ndim),
        Ok(ndim) => Err(format!(
            "{ndim} dimensions, more than the {MAX_NDIM} the buffer protocol allows"
        )),
        Err(_) => Err(format!("negative number of dimensions {}", view.ndim)),
    }
}

/// The shape the exporter sent, for messages, or why no shape can be read from it: `ndim`
/// out of range, a negative length (reported as sent), or no shape for several dimensions.
/// A NULL shape with one dimension means `len / itemsize` items, as in [`Layout::read`].
///
/// # Safety
/// As for [`Layout::read`].
pub(crate) unsafe fn exporter_shape(view: &ffi::Py_buffer) -> Result<Vec<usize>, LayoutError> {
    let ndim = exporter_ndim(view)?;
    // SAFETY: the caller guarantees `ndim` readable entries behind a non-NULL pointer.
    match unsafe { raw_slice(view.shape, ndim) } {
        Some(raw) => raw
            .iter()
            .enumerate()
            .map(|(axis, &n)| {
                usize::try_from(n).map_err(|_| format!("negative length {n} on axis {axis}"))
            })
            .collect(),
        None if ndim == 0 => Ok(Vec::new()),
        None if ndim == 1 && view.itemsize > 0 && view.len >= 0 => {
            Ok(vec![(view.len / view.itemsize) as usize])
        }
        None => Err(format!(
            "no shape for {ndim} dimensions of {} bytes with itemsize {}",
            view.len, view.itemsize
        )),
    }
}

/// Fills `strides` with the C-order strides of `shape` for items of `unit` (bytes or
/// elements). Empty axes count as length 1, so no stride is zero; products saturate (they
/// only matter for items that exist, whose extent is checked separately).
pub(crate) fn fill_c_strides(strides: &mut [usize], shape: &[usize], unit: usize) {
    let mut step = unit;
    for (dst, &n) in strides.iter_mut().zip(shape).rev() {
        *dst = step;
        step = step.saturating_mul(n.max(1));
    }
}

/// `n` values behind an exporter's pointer, or `None` for NULL.
///
/// # Safety
/// A non-NULL `ptr` points to at least `n` initialized values that outlive `'a`.
unsafe fn raw_slice<'a>(ptr: *const ffi::Py_ssize_t, n: usize) -> Option<&'a [ffi::Py_ssize_t]> {
    if ptr.is_null() {
        None
    } else if n == 0 {
        Some(&[])
    } else {
        // SAFETY: the caller guarantees `n` readable values.
        Some(unsafe { std::slice::from_raw_parts(ptr, n) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Ix1, Ix2, Ix3};
    use proptest::prelude::*;

    fn extreme() -> impl Strategy<Value = isize> {
        prop_oneof![
            -20isize..20,
            Just(isize::MAX),
            Just(isize::MIN),
            Just(isize::MAX / 2 + 1),
            Just(-(isize::MAX / 2) - 1),
            (0u32..62).prop_map(|b| 1isize << b),
        ]
    }

    /// A synthetic `Py_buffer` (the memory is never touched: only the layout is read).
    fn view(
        buf: usize,
        itemsize: isize,
        len: isize,
        shape: &mut [isize],
        strides: Option<&mut [isize]>,
    ) -> ffi::Py_buffer {
        // SAFETY: all-zero is a valid `Py_buffer`.
        let mut v: ffi::Py_buffer = unsafe { std::mem::zeroed() };
        v.buf = buf as *mut std::ffi::c_void;
        v.itemsize = itemsize;
        v.len = len;
        v.ndim = shape.len() as std::os::raw::c_int;
        v.shape = shape.as_mut_ptr();
        v.strides = strides.map_or(std::ptr::null_mut(), |s| s.as_mut_ptr());
        v
    }

    fn agree<D: Dimension>(v: &ffi::Py_buffer) {
        // SAFETY: `v`'s pointers point to `ndim` values that outlive the call.
        let (direct, general) =
            unsafe { (Layout::<D>::read_direct(v), Layout::<D>::read_general(v)) };
        if let Some(direct) = direct {
            let general = general.expect("the fast path accepted what the general path refuses");
            assert_eq!(direct.shape, general.shape);
            assert_eq!(direct.strides(), general.strides());
            assert_eq!(direct.len, general.len);
            assert_eq!(direct.itemsize, general.itemsize);
            assert!(direct.suboffsets.is_none() && general.suboffsets.is_none());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn direct_read_never_accepts_more_than_the_general_read(
            buf in prop_oneof![Just(0usize), Just(8usize), Just(usize::MAX - 64), 1usize..1 << 40],
            itemsize in prop_oneof![-1isize..17, extreme()],
            mut shape in proptest::collection::vec(prop_oneof![-2isize..6, extreme()], 1..=3),
            mut strides in proptest::collection::vec(extreme(), 3),
            null_strides: bool,
            len_from_shape: bool,
            len in extreme(),
        ) {
            let n = shape.len();
            let len = if len_from_shape {
                shape.iter().try_fold(itemsize, |acc, &d| acc.checked_mul(d)).unwrap_or(len)
            } else {
                len
            };
            let strides = (!null_strides).then_some(&mut strides[..n]);
            let v = view(buf, itemsize, len, &mut shape, strides);
            match n {
                1 => agree::<Ix1>(&v),
                2 => agree::<Ix2>(&v),
                _ => agree::<Ix3>(&v),
            }
            agree::<IxDyn>(&v);
        }
    }
}
