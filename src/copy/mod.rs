//! Copies between a buffer's layout (any strides, suboffsets, alignment) and contiguous
//! memory, in C or Fortran order.
//!
//! The engine works on bytes and knows nothing about element types. [`plan::Plan`] drops axes
//! of length 1 and merges neighbouring axes that are contiguous with each other on both sides,
//! and then ([`kernels`])
//! - a buffer contiguous in the requested order is one `memcpy`;
//! - a contiguous innermost axis is one `memcpy` per run;
//! - when the axis that is fastest in the buffer is also the contiguous side's innermost one
//!   (steps, negative strides, broadcasting), items are copied along it one by one;
//! - otherwise (transposed and permuted layouts) those two axes are copied in blocks of small
//!   square tiles, so that reads advance through the read side in long runs and each tile
//!   writes short runs of consecutive items;
//! - suboffsets (PIL-style indirection) are followed element by element.
//!
//! Items of 1, 2, 4, 8 and 16 bytes are moved with one load and one store each; other sizes
//! with a `memcpy` each.
//!
//! Items that share memory (zero or overlapping strides) are all read by a gather; a scatter
//! writes each of them, and which value such shared memory ends up with is not specified.

mod kernels;
mod plan;

use ndarray::{Dimension, Order};

use crate::layout::Layout;

use kernels::{Dynamic, Fixed};
use plan::{Direction, Plan};

/// Copies every item of `layout`, in `order`, to the contiguous memory at `dst`.
///
/// # Safety
/// `layout` describes readable memory that nothing writes during the call; `dst` is valid
/// for writing `layout.len * layout.itemsize` bytes and does not overlap the buffer's memory.
pub(crate) unsafe fn gather<D: Dimension>(layout: &Layout<D>, dst: *mut u8, order: Order) {
    if layout.len == 0 || layout.itemsize == 0 {
        return;
    }
    if layout.suboffsets.is_some() {
        // SAFETY: forwarded from the caller.
        unsafe { run_indirect::<D, false>(layout, dst, order) };
        return;
    }
    let plan = Plan::new(
        layout.shape.slice(),
        layout.strides(),
        layout.itemsize,
        order,
        Direction::Gather,
    );
    // SAFETY: the plan's `from` addresses are the layout's items, in bounds of the memory the
    // exporter described (`Layout::read` checked every index's offset) and readable (caller's
    // promise); its `to` addresses are `layout.len` consecutive items from `dst`, which the
    // caller promises writable and disjoint from the buffer.
    unsafe { execute(layout.itemsize, &plan, layout.ptr, dst) };
}

/// Copies contiguous items at `src`, in `order`, into every item of `layout`.
///
/// # Safety
/// `layout` describes writable memory that nothing else reads or writes during the call;
/// `src` is valid for reading `layout.len * layout.itemsize` bytes and does not overlap it.
pub(crate) unsafe fn scatter<D: Dimension>(layout: &Layout<D>, src: *const u8, order: Order) {
    if layout.len == 0 || layout.itemsize == 0 {
        return;
    }
    if layout.suboffsets.is_some() {
        // SAFETY: forwarded from the caller.
        unsafe { run_indirect::<D, true>(layout, src.cast_mut(), order) };
        return;
    }
    let plan = Plan::new(
        layout.shape.slice(),
        layout.strides(),
        layout.itemsize,
        order,
        Direction::Scatter,
    );
    // SAFETY: as in `gather`, with the sides swapped: `from` is `layout.len` consecutive items
    // at `src` (readable, caller's promise), `to` the layout's items (writable, in bounds).
    unsafe { execute(layout.itemsize, &plan, src, layout.ptr) };
}

/// Runs `plan` with the mover for items of `size` bytes.
///
/// # Safety
/// As for [`kernels::execute`].
unsafe fn execute(size: usize, plan: &Plan, from: *const u8, to: *mut u8) {
    // SAFETY (every arm): forwarded; each mover moves exactly `size` bytes.
    unsafe {
        match size {
            1 => kernels::execute(Fixed::<1>, plan, from, to),
            2 => kernels::execute(Fixed::<2>, plan, from, to),
            4 => kernels::execute(Fixed::<4>, plan, from, to),
            8 => kernels::execute(Fixed::<8>, plan, from, to),
            16 => kernels::execute(Fixed::<16>, plan, from, to),
            _ => kernels::execute(Dynamic(size), plan, from, to),
        }
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
        // promises the indirect pointers are valid while the buffer is held; `cursor` walks
        // the caller's `layout.len` contiguous items, disjoint from the buffer.
        unsafe {
            let item = layout.address(&index);
            let (from, to) = if SCATTER {
                (cursor.cast_const(), item)
            } else {
                (item.cast_const(), cursor)
            };
            std::ptr::copy_nonoverlapping(from, to, layout.itemsize);
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
