//! The loops of a copy plan, generic over how one item is moved.
//!
//! Every function here takes raw addresses and computes item addresses with wrapping
//! arithmetic; only [`Mover::move_item`] and `copy_nonoverlapping` touch memory. Callers
//! promise that every address the plan produces is an item valid on its side (readable on the
//! `from` side, writable on the `to` side) and that the two sides do not overlap.

use super::plan::{Axis, Inner, Plan};

/// Edge of the small square tiles of a transpose, in items: 8 items of 8 bytes span one
/// 64-byte cache line on each side.
const TILE: usize = 8;

/// Bytes a transpose block spans along the read side's fastest axis (one 4 KiB page when that
/// axis is contiguous): within a block the reads are runs this long, which hardware
/// prefetchers follow. Tuned on one machine (a 2048² f64 transpose; see BENCHMARKS.md).
const BLOCK_READ_BYTES: usize = 4096;

/// Items a transpose block spans along its write-contiguous axis.
const BLOCK_WRITE_ITEMS: usize = 64;

/// Copies one item of a size known to the mover.
pub(super) trait Mover: Copy {
    /// Item size in bytes.
    fn size(self) -> usize;

    /// Copies one item from `from` to `to`.
    ///
    /// # Safety
    /// `from` is readable and `to` writable for `size()` bytes; the two do not overlap.
    unsafe fn move_item(self, from: *const u8, to: *mut u8);
}

/// Items of `N` bytes: one unaligned load and one unaligned store for the common sizes.
#[derive(Clone, Copy)]
pub(super) struct Fixed<const N: usize>;

impl<const N: usize> Mover for Fixed<N> {
    #[inline(always)]
    fn size(self) -> usize {
        N
    }

    #[inline(always)]
    unsafe fn move_item(self, from: *const u8, to: *mut u8) {
        // SAFETY: the caller's promise; `[u8; N]` has alignment 1, so the unaligned accesses
        // are allowed at any address.
        unsafe {
            to.cast::<[u8; N]>()
                .write_unaligned(from.cast::<[u8; N]>().read_unaligned())
        }
    }
}

/// Items of any other size: a `memcpy` each.
#[derive(Clone, Copy)]
pub(super) struct Dynamic(pub usize);

impl Mover for Dynamic {
    #[inline(always)]
    fn size(self) -> usize {
        self.0
    }

    #[inline(always)]
    unsafe fn move_item(self, from: *const u8, to: *mut u8) {
        // SAFETY: the caller's promise.
        unsafe { std::ptr::copy_nonoverlapping(from, to, self.0) }
    }
}

/// Runs `plan` from `from` to `to`.
///
/// # Safety
/// Every item address of the plan, starting at `from` and `to`, is valid on its side (see the
/// module documentation), and the two sides do not overlap.
pub(super) unsafe fn execute<M: Mover>(mover: M, plan: &Plan, from: *const u8, to: *mut u8) {
    // SAFETY (all arms): each leaf receives the first item's address of one combination of
    // outer indices, and the inner loops visit only items of the plan from there.
    match plan.inner {
        Inner::Item => unsafe { mover.move_item(from, to) },
        Inner::Run { bytes } => unsafe {
            walk(&plan.outer, from, to, |f, t| {
                std::ptr::copy_nonoverlapping(f, t, bytes)
            })
        },
        Inner::Strided(axis) => unsafe {
            walk(&plan.outer, from, to, |f, t| strided(mover, f, t, axis))
        },
        Inner::Transpose { x, y } => unsafe {
            walk(&plan.outer, from, to, |f, t| transpose(mover, f, t, x, y))
        },
    }
}

/// Calls `leaf` with the addresses of the first item on both sides for every combination of
/// indices of `outer` (outermost first, the last axis fastest).
///
/// # Safety
/// `leaf` must be safe to call with every such pair of addresses.
#[inline(always)]
unsafe fn walk(
    outer: &[Axis],
    from: *const u8,
    to: *mut u8,
    mut leaf: impl FnMut(*const u8, *mut u8),
) {
    let Some(last) = outer.len().checked_sub(1) else {
        leaf(from, to);
        return;
    };
    let mut index = vec![0usize; outer.len()];
    let (mut f, mut t) = (from, to);
    loop {
        leaf(f, t);
        // odometer: advance the fastest axis, carrying into slower ones
        let mut k = last;
        loop {
            let axis = outer[k];
            index[k] += 1;
            if index[k] < axis.len {
                f = f.wrapping_offset(axis.from);
                t = t.wrapping_offset(axis.to);
                break;
            }
            // back to index 0 on this axis: undo its `len - 1` steps
            let back = (axis.len - 1) as isize;
            f = f.wrapping_offset(axis.from.wrapping_mul(back).wrapping_neg());
            t = t.wrapping_offset(axis.to.wrapping_mul(back).wrapping_neg());
            index[k] = 0;
            if k == 0 {
                return;
            }
            k -= 1;
        }
    }
}

/// Copies the items of one axis.
///
/// # Safety
/// Every item of `axis` is valid on both sides.
#[inline(always)]
unsafe fn strided<M: Mover>(mover: M, from: *const u8, to: *mut u8, axis: Axis) {
    for i in 0..axis.len as isize {
        // SAFETY: item `i` of the axis (caller's promise).
        unsafe {
            mover.move_item(
                from.wrapping_offset(i * axis.from),
                to.wrapping_offset(i * axis.to),
            )
        };
    }
}

/// Copies the `x.len × y.len` items of two axes, where `x` is the read side's fastest axis and
/// `y` the write side's. Blocks of [`BLOCK_READ_BYTES`] along `x` by [`BLOCK_WRITE_ITEMS`]
/// along `y` are copied one after the other; within a block, [`TILE`]² tiles are visited
/// along `x`, so the reads advance as [`TILE`] parallel streams, and each tile writes runs of
/// [`TILE`] consecutive items along `y`.
///
/// # Safety
/// Every item `(i, j)`, `i < x.len`, `j < y.len`, is valid on both sides.
#[inline(never)]
unsafe fn transpose<M: Mover>(mover: M, from: *const u8, to: *mut u8, x: Axis, y: Axis) {
    let block_x = (BLOCK_READ_BYTES / mover.size()).max(TILE) / TILE * TILE;
    let at = |i: usize, j: usize| {
        let (i, j) = (i as isize, j as isize);
        (
            from.wrapping_offset(i * x.from + j * y.from),
            to.wrapping_offset(i * x.to + j * y.to),
        )
    };
    for x1 in (0..x.len).step_by(block_x) {
        let x_end = x.len.min(x1 + block_x);
        for y1 in (0..y.len).step_by(BLOCK_WRITE_ITEMS) {
            let y_end = y.len.min(y1 + BLOCK_WRITE_ITEMS);
            for y0 in (y1..y_end).step_by(TILE) {
                let ny = TILE.min(y_end - y0);
                for x0 in (x1..x_end).step_by(TILE) {
                    let nx = TILE.min(x_end - x0);
                    let (f, t) = at(x0, y0);
                    // SAFETY: the tile's items are within `x.len × y.len` (caller's promise).
                    unsafe {
                        if nx == TILE && ny == TILE {
                            tile(mover, f, t, x, y, TILE, TILE)
                        } else {
                            tile(mover, f, t, x, y, nx, ny)
                        }
                    }
                }
            }
        }
    }
}

/// Copies `nx × ny` items, `y` innermost (so each row of the tile is written in order).
/// Inlined twice: with the constant full-tile edge, and with the edges of a partial tile.
///
/// # Safety
/// Every item `(i, j)`, `i < nx`, `j < ny`, is valid on both sides.
#[inline(always)]
unsafe fn tile<M: Mover>(
    mover: M,
    from: *const u8,
    to: *mut u8,
    x: Axis,
    y: Axis,
    nx: usize,
    ny: usize,
) {
    for i in 0..nx as isize {
        let (f, t) = (
            from.wrapping_offset(i * x.from),
            to.wrapping_offset(i * x.to),
        );
        for j in 0..ny as isize {
            // SAFETY: item `(i, j)` of the tile (caller's promise).
            unsafe { mover.move_item(f.wrapping_offset(j * y.from), t.wrapping_offset(j * y.to)) };
        }
    }
}
