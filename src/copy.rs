//! Copies between a buffer's layout (any strides, suboffsets, alignment) and contiguous
//! memory, in C or Fortran order.
//!
//! The engine works on bytes and knows nothing about element types: axes of length 1 are
//! dropped, adjacent axes that are contiguous with each other are merged, and then
//! - a buffer contiguous in the requested order is one `memcpy`;
//! - a contiguous innermost axis is one `memcpy` per run;
//! - otherwise the two innermost axes are copied in square tiles, so that a transposed
//!   source is read and written one cache-friendly block at a time;
//! - suboffsets (PIL-style indirection) are followed element by element.

use ndarray::{Dimension, Order};

use crate::layout::Layout;

/// Edge of the square tiles used for strided copies, in items.
const TILE: usize = 32;

/// One axis of the iteration, outermost first.
#[derive(Clone, Copy, Debug)]
struct Axis {
    len: usize,
    stride: isize,
}

/// Copies every item of `layout`, in `order`, to the contiguous memory at `dst`.
///
/// # Safety
/// `layout` describes readable memory that nothing writes during the call; `dst` is valid
/// for writing `layout.len * layout.itemsize` bytes and does not overlap the buffer's memory.
pub(crate) unsafe fn gather<D: Dimension>(layout: &Layout<D>, dst: *mut u8, order: Order) {
    // SAFETY: forwarded from the caller.
    unsafe { run::<D, false>(layout, dst, order) }
}

/// Copies contiguous items at `src`, in `order`, into every item of `layout`.
///
/// # Safety
/// `layout` describes writable memory that nothing else reads or writes during the call;
/// `src` is valid for reading `layout.len * layout.itemsize` bytes and does not overlap it.
pub(crate) unsafe fn scatter<D: Dimension>(layout: &Layout<D>, src: *const u8, order: Order) {
    // SAFETY: forwarded from the caller.
    unsafe { run::<D, true>(layout, src.cast_mut(), order) }
}

/// # Safety
/// See [`gather`] (`SCATTER = false`) and [`scatter`] (`SCATTER = true`).
unsafe fn run<D: Dimension, const SCATTER: bool>(
    layout: &Layout<D>,
    contiguous: *mut u8,
    order: Order,
) {
    if layout.len == 0 || layout.itemsize == 0 {
        return;
    }
    if layout.suboffsets.is_some() {
        // SAFETY: forwarded from the caller.
        unsafe { run_indirect::<D, SCATTER>(layout, contiguous, order) };
        return;
    }
    let axes = iteration_axes(layout.shape.slice(), layout.strides(), order);
    let size = layout.itemsize;
    let mut cursor = contiguous;
    match axes.split_last() {
        None => {
            // a single item
            // SAFETY: one item at the base pointer and at `contiguous` (caller's promise).
            unsafe { move_bytes::<SCATTER>(layout.ptr, cursor, size) };
        }
        Some((inner, outer)) if inner.stride == size as isize => {
            let run = inner.len * size;
            // SAFETY: every run starts at an in-bounds item and spans `inner.len` contiguous
            // items; `cursor` advances through the caller's contiguous memory.
            unsafe {
                walk(outer, layout.ptr, &mut |p| {
                    move_bytes::<SCATTER>(p, cursor, run);
                    cursor = cursor.add(run);
                })
            };
        }
        Some((inner, outer)) => match outer.split_last() {
            Some((rows, rest)) => {
                // SAFETY: as above; each tile visits in-bounds items of the two inner axes.
                unsafe {
                    walk(rest, layout.ptr, &mut |p| {
                        tiles::<SCATTER>(p, *rows, *inner, cursor, size);
                        cursor = cursor.add(rows.len * inner.len * size);
                    })
                };
            }
            None => {
                // SAFETY: one strided axis of in-bounds items.
                unsafe { strided_run::<SCATTER>(layout.ptr, *inner, cursor, size) };
            }
        },
    }
}

/// The axes in iteration order (outermost first) for `order`, without axes of length 1 and
/// with neighbours merged where the outer one steps exactly over the inner one.
fn iteration_axes(shape: &[usize], strides: &[isize], order: Order) -> Vec<Axis> {
    let mut axes: Vec<Axis> = Vec::with_capacity(shape.len());
    let pairs = shape.iter().zip(strides);
    let mut push = |(&len, &stride): (&usize, &isize)| {
        if len == 1 {
            return;
        }
        match axes.last_mut() {
            Some(prev) if stride.checked_mul(len as isize) == Some(prev.stride) => {
                prev.len *= len;
                prev.stride = stride;
            }
            _ => axes.push(Axis { len, stride }),
        }
    };
    if order.is_column_major() {
        pairs.rev().for_each(&mut push);
    } else {
        pairs.for_each(&mut push);
    }
    axes
}

/// Calls `leaf` with the address of every combination of indices of `outer`.
///
/// # Safety
/// `base` and the strides of `outer` address in-bounds items (wrapping arithmetic is used,
/// `leaf` is what touches memory).
unsafe fn walk(outer: &[Axis], base: *mut u8, leaf: &mut dyn FnMut(*mut u8)) {
    match outer.split_first() {
        None => leaf(base),
        Some((axis, rest)) => {
            for i in 0..axis.len {
                // SAFETY: forwarded.
                unsafe { walk(rest, base.wrapping_offset(i as isize * axis.stride), leaf) };
            }
        }
    }
}

/// Copies `rows × cols` items (strided at `base`, row-major contiguous at `contiguous`) in
/// `TILE × TILE` blocks.
///
/// # Safety
/// Every item of the block is in bounds on both sides.
unsafe fn tiles<const SCATTER: bool>(
    base: *mut u8,
    rows: Axis,
    cols: Axis,
    contiguous: *mut u8,
    size: usize,
) {
    for r0 in (0..rows.len).step_by(TILE) {
        let r1 = (r0 + TILE).min(rows.len);
        for c0 in (0..cols.len).step_by(TILE) {
            let c1 = (c0 + TILE).min(cols.len);
            for r in r0..r1 {
                let row = base.wrapping_offset(r as isize * rows.stride);
                for c in c0..c1 {
                    let strided = row.wrapping_offset(c as isize * cols.stride);
                    // SAFETY: `(r, c)` is within the block on both sides (caller's promise).
                    unsafe {
                        let contig = contiguous.add((r * cols.len + c) * size);
                        move_item::<SCATTER>(strided, contig, size);
                    }
                }
            }
        }
    }
}

/// Copies one strided axis of items.
///
/// # Safety
/// Every item of the axis is in bounds on both sides.
unsafe fn strided_run<const SCATTER: bool>(
    base: *mut u8,
    axis: Axis,
    contiguous: *mut u8,
    size: usize,
) {
    for i in 0..axis.len {
        let strided = base.wrapping_offset(i as isize * axis.stride);
        // SAFETY: item `i` is in bounds on both sides (caller's promise).
        unsafe { move_item::<SCATTER>(strided, contiguous.add(i * size), size) };
    }
}

/// Element-by-element copy that follows suboffsets.
///
/// # Safety
/// See [`gather`] / [`scatter`].
unsafe fn run_indirect<D: Dimension, const SCATTER: bool>(
    layout: &Layout<D>,
    contiguous: *mut u8,
    order: Order,
) {
    let shape = layout.shape.slice();
    let ndim = shape.len();
    let mut index = vec![0usize; ndim];
    // the odometer's axes, fastest first: the last axis in C order, the first in F order
    let fastest_first: Vec<usize> = if order.is_column_major() {
        (0..ndim).collect()
    } else {
        (0..ndim).rev().collect()
    };
    let mut cursor = contiguous;
    for _ in 0..layout.len {
        // SAFETY: `index` is within the shape (odometer below); the layout's exporter
        // promises the indirect pointers are valid while the buffer is held.
        unsafe {
            let item = layout.address(&index);
            move_item::<SCATTER>(item, cursor, layout.itemsize);
            cursor = cursor.add(layout.itemsize);
        }
        for &axis in &fastest_first {
            index[axis] += 1;
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
}

/// Copies `n` bytes between the buffer side and the contiguous side.
///
/// # Safety
/// Both ranges valid for `n` bytes and not overlapping.
#[inline(always)]
unsafe fn move_bytes<const SCATTER: bool>(strided: *mut u8, contiguous: *mut u8, n: usize) {
    // SAFETY: caller's promise.
    unsafe {
        if SCATTER {
            std::ptr::copy_nonoverlapping(contiguous, strided, n)
        } else {
            std::ptr::copy_nonoverlapping(strided, contiguous, n)
        }
    }
}

/// Copies one item of `size` bytes; common sizes become single unaligned loads and stores.
///
/// # Safety
/// Both items valid for `size` bytes and not overlapping.
#[inline(always)]
unsafe fn move_item<const SCATTER: bool>(strided: *mut u8, contiguous: *mut u8, size: usize) {
    let (from, to) = if SCATTER {
        (contiguous as *const u8, strided)
    } else {
        (strided as *const u8, contiguous)
    };
    // SAFETY: caller's promise; unaligned accesses of `[u8; N]` are always allowed.
    unsafe {
        match size {
            1 => *to = *from,
            2 => to
                .cast::<[u8; 2]>()
                .write_unaligned(from.cast::<[u8; 2]>().read_unaligned()),
            4 => to
                .cast::<[u8; 4]>()
                .write_unaligned(from.cast::<[u8; 4]>().read_unaligned()),
            8 => to
                .cast::<[u8; 8]>()
                .write_unaligned(from.cast::<[u8; 8]>().read_unaligned()),
            16 => to
                .cast::<[u8; 16]>()
                .write_unaligned(from.cast::<[u8; 16]>().read_unaligned()),
            n => std::ptr::copy_nonoverlapping(from, to, n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_merge_and_drop_unit_axes() {
        // C-contiguous (2, 1, 3) of 8-byte items: one run of 6 items
        let a = iteration_axes(&[2, 1, 3], &[24, 999, 8], Order::RowMajor);
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].len, a[0].stride), (6, 8));
        // transposed 2x3 (F layout) iterated in C order: two axes, inner stride 16
        let a = iteration_axes(&[2, 3], &[8, 16], Order::RowMajor);
        assert_eq!(a.len(), 2);
        assert_eq!((a[1].len, a[1].stride), (3, 16));
        // the same in F order merges into one contiguous run
        let a = iteration_axes(&[2, 3], &[8, 16], Order::ColumnMajor);
        assert_eq!(a.len(), 1);
    }
}
