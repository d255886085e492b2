//! The copy plan: a layout's axes reduced to what the loops need.
//!
//! Each axis carries two byte strides, one per side of the copy: `from` (where items are
//! read) and `to` (where they are written). Axes of length 1 are dropped, neighbours that step
//! over each other on both sides are merged, and the plan then names the loop that fits:
//! contiguous runs, one strided axis, or a blocked transpose of two axes.

use ndarray::Order;

/// One axis of the iteration: its length and its byte stride on each side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Axis {
    pub len: usize,
    pub from: isize,
    pub to: isize,
}

/// How the innermost loops run; the axes not named here are walked around them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Inner {
    /// No axis left: a single item.
    Item,
    /// The innermost axis is contiguous on both sides: one `memcpy` of `bytes` per run.
    Run { bytes: usize },
    /// One axis is the fastest on both sides: an item-by-item loop along it.
    Strided(Axis),
    /// The read side's fastest axis `x` differs from the write side's fastest axis `y`: the
    /// two are copied in tiles, so that both sides touch whole cache lines.
    Transpose { x: Axis, y: Axis },
}

/// The axes to walk (outermost first) around the `inner` loop.
#[derive(Clone, Debug)]
pub(super) struct Plan {
    pub outer: Vec<Axis>,
    pub inner: Inner,
}

/// Which side of the copy is the buffer's strided memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Direction {
    /// Buffer to contiguous memory (`from` = the buffer's strides).
    Gather,
    /// Contiguous memory to buffer (`to` = the buffer's strides).
    Scatter,
}

impl Plan {
    /// The plan for copying the items of a buffer with `shape` and byte `strides` to or from
    /// contiguous memory in `order`, items of `itemsize` bytes. `shape` has no zero-length
    /// axis (the caller returns early for an empty buffer).
    pub fn new(
        shape: &[usize],
        strides: &[isize],
        itemsize: usize,
        order: Order,
        direction: Direction,
    ) -> Plan {
        let axes = merged_axes(shape, strides, itemsize, order, direction);
        let size = itemsize as isize;
        match axes.last() {
            None => Plan {
                outer: axes,
                inner: Inner::Item,
            },
            Some(last) if last.from == size && last.to == size => {
                let bytes = last.len * itemsize;
                let mut outer = axes;
                outer.pop();
                Plan {
                    outer,
                    inner: Inner::Run { bytes },
                }
            }
            Some(_) => {
                // `y`: the write side's fastest axis (the innermost one when the contiguous
                // side is written). `x`: the read side's fastest axis, `y` itself on a tie,
                // otherwise the innermost of equals.
                let y = fastest(&axes, |a| a.to, axes.len() - 1);
                let x = fastest(&axes, |a| a.from, y);
                let (ax, ay) = (axes[x], axes[y]);
                let outer = axes
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i != x && i != y)
                    .map(|(_, a)| *a)
                    .collect();
                let inner = if x == y {
                    Inner::Strided(ay)
                } else {
                    Inner::Transpose { x: ax, y: ay }
                };
                Plan { outer, inner }
            }
        }
    }
}

/// The index of the axis with the smallest absolute stride on one side: `preferred` when it is
/// among the smallest, otherwise the last (innermost) of them.
fn fastest(axes: &[Axis], side: impl Fn(&Axis) -> isize, preferred: usize) -> usize {
    let magnitude = |i: usize| side(&axes[i]).unsigned_abs();
    let mut best = preferred;
    for i in (0..axes.len()).rev() {
        if magnitude(i) < magnitude(best) {
            best = i;
        }
    }
    best
}

/// The axes in iteration order (outermost first) for `order`, each with its stride in the
/// buffer and in the contiguous memory, without axes of length 1, and with neighbours merged
/// where the outer one steps exactly over the inner one on both sides.
fn merged_axes(
    shape: &[usize],
    strides: &[isize],
    itemsize: usize,
    order: Order,
    direction: Direction,
) -> Vec<Axis> {
    // (len, buffer stride) pairs, outermost first
    let mut pairs: Vec<(usize, isize)> =
        shape.iter().copied().zip(strides.iter().copied()).collect();
    if order.is_column_major() {
        pairs.reverse();
    }
    // the contiguous side's strides: items of the inner axes times the item size
    let mut contiguous = vec![0isize; pairs.len()];
    let mut step = itemsize as isize;
    for (c, &(len, _)) in contiguous.iter_mut().zip(&pairs).rev() {
        *c = step;
        // cannot overflow: the contiguous memory holds `len * itemsize` bytes
        step = step.wrapping_mul(len as isize);
    }
    let mut axes: Vec<Axis> = Vec::with_capacity(pairs.len());
    for (&(len, buffer), &contiguous) in pairs.iter().zip(&contiguous) {
        if len == 1 {
            continue;
        }
        let (from, to) = match direction {
            Direction::Gather => (buffer, contiguous),
            Direction::Scatter => (contiguous, buffer),
        };
        let steps_over =
            |outer: isize, inner: isize| inner.checked_mul(len as isize) == Some(outer);
        match axes.last_mut() {
            Some(prev) if steps_over(prev.from, from) && steps_over(prev.to, to) => {
                prev.len *= len;
                prev.from = from;
                prev.to = to;
            }
            _ => axes.push(Axis { len, from, to }),
        }
    }
    axes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gather(shape: &[usize], strides: &[isize], order: Order) -> Plan {
        Plan::new(shape, strides, 8, order, Direction::Gather)
    }

    #[test]
    fn contiguous_layouts_are_one_run() {
        // C-contiguous (2, 1, 3) of 8-byte items, the unit axis with a junk stride
        let p = gather(&[2, 1, 3], &[24, 999, 8], Order::RowMajor);
        assert!(p.outer.is_empty());
        assert_eq!(p.inner, Inner::Run { bytes: 48 });
        // an F-contiguous 2x3 in F order
        let p = gather(&[2, 3], &[8, 16], Order::ColumnMajor);
        assert!(p.outer.is_empty());
        assert_eq!(p.inner, Inner::Run { bytes: 48 });
    }

    #[test]
    fn rows_of_a_slice_are_runs() {
        // (4, 6)[:, :3] of a C array: 4 runs of 3 items
        let p = gather(&[4, 3], &[48, 8], Order::RowMajor);
        assert_eq!(
            p.outer,
            [Axis {
                len: 4,
                from: 48,
                to: 24
            }]
        );
        assert_eq!(p.inner, Inner::Run { bytes: 24 });
    }

    #[test]
    fn a_transpose_pairs_the_fastest_axes_of_each_side() {
        // an F-contiguous 2x3 read in C order
        let p = gather(&[2, 3], &[8, 16], Order::RowMajor);
        assert!(p.outer.is_empty());
        assert_eq!(
            p.inner,
            Inner::Transpose {
                x: Axis {
                    len: 2,
                    from: 8,
                    to: 24
                },
                y: Axis {
                    len: 3,
                    from: 16,
                    to: 8
                },
            }
        );
        // written back: the read side is now the contiguous one
        let p = Plan::new(&[2, 3], &[8, 16], 8, Order::RowMajor, Direction::Scatter);
        let Inner::Transpose { x, y } = p.inner else {
            panic!("{p:?}")
        };
        assert_eq!((x.len, x.from, x.to), (3, 8, 16));
        assert_eq!((y.len, y.from, y.to), (2, 24, 8));
    }

    #[test]
    fn a_step_without_transpose_is_one_strided_axis() {
        // (5,)[::-2] of 8-byte items
        let p = gather(&[3], &[-16], Order::RowMajor);
        assert!(p.outer.is_empty());
        assert_eq!(
            p.inner,
            Inner::Strided(Axis {
                len: 3,
                from: -16,
                to: 8
            })
        );
        // a broadcast row (zero stride) read many times
        let p = gather(&[4, 5], &[8, 0], Order::RowMajor);
        assert_eq!(p.outer.len(), 1);
        assert_eq!(
            p.inner,
            Inner::Strided(Axis {
                len: 5,
                from: 0,
                to: 8
            })
        );
    }

    #[test]
    fn a_permuted_3d_array_walks_the_third_axis_outside() {
        // (2, 3, 4) C array of 8-byte items with its axes reversed: (4, 3, 2)
        let p = gather(&[4, 3, 2], &[8, 32, 96], Order::RowMajor);
        assert_eq!(
            p.outer,
            [Axis {
                len: 3,
                from: 32,
                to: 16
            }]
        );
        let Inner::Transpose { x, y } = p.inner else {
            panic!("{p:?}")
        };
        assert_eq!((x.len, x.from, x.to), (4, 8, 48));
        assert_eq!((y.len, y.from, y.to), (2, 96, 8));
        // `transpose(2, 0, 1)` keeps axes 0 and 1 adjacent: they merge into one
        let p = gather(&[4, 2, 3], &[8, 96, 32], Order::RowMajor);
        assert!(p.outer.is_empty());
        let Inner::Transpose { x, y } = p.inner else {
            panic!("{p:?}")
        };
        assert_eq!((x.len, x.from, x.to), (4, 8, 48));
        assert_eq!((y.len, y.from, y.to), (6, 32, 8));
    }
}
