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

    /// The first axis whose stride is not a multiple of the item size (among axes that move
    /// between distinct items).
    pub fn stride_not_multiple(&self) -> Option<(usize, isize)> {
        if self.len == 0 || self.itemsize == 0 {
            return None;
        }
        self.shape
            .slice()
            .iter()
            .zip(self.strides())
            .enumerate()
            .find(|(_, (&n, &s))| n > 1 && s.unsigned_abs() % self.itemsize != 0)
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
    fn check_extent(&self) -> Result<(), LayoutError> {
        if self.len == 0 {
            return Ok(());
        }
        let (mut low, mut high): (isize, isize) = (0, 0);
        for (axis, (&n, &s)) in self.shape.slice().iter().zip(self.strides()).enumerate() {
            let span = isize::try_from(n - 1)
                .ok()
                .and_then(|m| m.checked_mul(s))
                .ok_or_else(|| {
                    format!("shape {n} × stride {s} on axis {axis} overflows a byte offset")
                })?;
            let (lo, hi) = if span < 0 { (span, 0) } else { (0, span) };
            low = low
                .checked_add(lo)
                .ok_or_else(|| "the lowest byte offset overflows".to_string())?;
            high = high
                .checked_add(hi)
                .ok_or_else(|| "the highest byte offset overflows".to_string())?;
        }
        let end = high
            .checked_add(self.itemsize as isize)
            .ok_or_else(|| "the extent overflows".to_string())?;
        end.checked_sub(low)
            .ok_or_else(|| "the extent overflows".to_string())?;
        if self.suboffsets.is_none() {
            let base = self.ptr as usize;
            if base.checked_add_signed(low).is_none() || base.checked_add_signed(end).is_none() {
                return Err(format!(
                    "addresses from {base:#x}{low:+} to {base:#x}{end:+} wrap around"
                ));
            }
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
    pub unsafe fn read(view: &ffi::Py_buffer) -> Result<Layout<D>, LayoutError> {
        let ndim = exporter_ndim(view)?;
        let itemsize = usize::try_from(view.itemsize)
            .map_err(|_| format!("negative itemsize {}", view.itemsize))?;
        let byte_len =
            usize::try_from(view.len).map_err(|_| format!("negative length {}", view.len))?;
        let scalar_as_1d = ndim == 0 && D::NDIM == Some(1);
        if !scalar_as_1d && D::NDIM.is_some_and(|n| n != ndim) {
            return Err(format!(
                "{ndim} dimensions where {:?} were expected",
                D::NDIM
            ));
        }

        // SAFETY: the exporter filled `ndim` entries when the pointer is non-NULL.
        let raw_shape = unsafe { raw_slice(view.shape, ndim) };
        // SAFETY: as above.
        let raw_strides = unsafe { raw_slice(view.strides, ndim) };
        // SAFETY: as above.
        let raw_suboffsets = unsafe { raw_slice(view.suboffsets, ndim) };

        let mut shape = D::zeros(if scalar_as_1d { 1 } else { ndim });
        let mut strides = D::zeros(shape.ndim());
        let mut len: usize = 1;
        if scalar_as_1d {
            shape[0] = 1;
            strides[0] = itemsize;
        } else {
            match raw_shape {
                Some(raw) => {
                    for (axis, (dst, &n)) in shape.slice_mut().iter_mut().zip(raw).enumerate() {
                        *dst = usize::try_from(n)
                            .map_err(|_| format!("negative length {n} on axis {axis}"))?;
                        len = len.checked_mul(*dst).ok_or_else(|| {
                            format!("the number of items of shape {raw:?} overflows")
                        })?;
                    }
                }
                None if ndim == 0 => {}
                None => {
                    // Without PyBUF_ND an exporter may omit the shape: 1-D of `len` bytes.
                    if ndim != 1 || itemsize == 0 || byte_len % itemsize != 0 {
                        return Err(format!(
                            "no shape for {ndim} dimensions of {byte_len} bytes with itemsize \
                             {itemsize}"
                        ));
                    }
                    shape[0] = byte_len / itemsize;
                    len = shape[0];
                }
            }
            match raw_strides {
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
            return Err(format!(
                "shape {:?} holds {len} items, more than isize::MAX",
                shape.slice()
            ));
        }
        let expected_bytes = len
            .checked_mul(itemsize)
            .ok_or_else(|| format!("{len} items of {itemsize} bytes overflow the address space"))?;
        if expected_bytes != byte_len {
            return Err(format!(
                "len {byte_len} bytes, but shape {:?} of {itemsize}-byte items holds \
                 {expected_bytes}",
                shape.slice()
            ));
        }

        let suboffsets = match raw_suboffsets {
            Some(raw) if raw.iter().any(|&s| s >= 0) => Some(raw.to_vec().into_boxed_slice()),
            _ => None,
        };

        if len > 0 && view.buf.is_null() {
            return Err(format!("NULL data pointer for {len} items"));
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

/// The exporter's number of dimensions, if possible (0 to [`MAX_NDIM`]).
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
