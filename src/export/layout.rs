//! Layout facts of an exported buffer: byte strides, contiguity, element walks and padding.

use crate::format::{ItemKind, ItemLayout};

/// Whether `shape`/`strides` (bytes) describe a C-contiguous buffer, with CPython's rules
/// (`PyBuffer_IsContiguous`): dimensions of length 1 may have any stride, and a buffer with no
/// elements is contiguous.
pub(crate) fn is_c_contiguous(shape: &[isize], strides: &[isize], itemsize: usize) -> bool {
    contiguous(shape.iter().zip(strides).rev(), shape, itemsize)
}

/// Whether `shape`/`strides` (bytes) describe a Fortran-contiguous buffer (CPython's rules).
pub(crate) fn is_f_contiguous(shape: &[isize], strides: &[isize], itemsize: usize) -> bool {
    contiguous(shape.iter().zip(strides), shape, itemsize)
}

fn contiguous<'a>(
    dims: impl Iterator<Item = (&'a isize, &'a isize)>,
    shape: &[isize],
    itemsize: usize,
) -> bool {
    if shape.contains(&0) {
        return true;
    }
    let mut expected = itemsize as isize;
    for (&len, &stride) in dims {
        if len > 1 && stride != expected {
            return false;
        }
        expected = expected.saturating_mul(len);
    }
    true
}

/// The bytes the elements occupy, from the lowest to the end of the highest: `(low, len)`,
/// where `low` (≤ 0) is the offset of the lowest byte from the first element. `(0, 0)` when
/// there are no elements.
///
/// The layouts given here come from a Rust allocation (an export's checked layout), so
/// `(len - 1) * stride` summed over the axes stays within `isize`; the arithmetic saturates
/// rather than wraps should it ever not.
pub(crate) fn span(shape: &[isize], strides: &[isize], itemsize: usize) -> (isize, usize) {
    if shape.contains(&0) {
        return (0, 0);
    }
    let (mut low, mut high) = (0isize, 0isize);
    for (&len, &stride) in shape.iter().zip(strides) {
        let extent = (len - 1).saturating_mul(stride);
        if extent < 0 {
            low = low.saturating_add(extent);
        } else {
            high = high.saturating_add(extent);
        }
    }
    let len = high.saturating_sub(low).saturating_add(itemsize as isize);
    (low, len as usize)
}

/// Calls `f(position, byte_offset)` for every element, in logical C order. `byte_offset` is
/// relative to the first element.
pub(crate) fn for_each_offset(shape: &[isize], strides: &[isize], mut f: impl FnMut(usize, isize)) {
    if shape.contains(&0) {
        return;
    }
    let ndim = shape.len();
    let mut index = vec![0isize; ndim];
    let mut offset = 0isize;
    let mut position = 0usize;
    loop {
        f(position, offset);
        position += 1;
        // odometer step, last axis fastest
        let mut axis = ndim;
        loop {
            if axis == 0 {
                return;
            }
            axis -= 1;
            index[axis] += 1;
            offset += strides[axis];
            if index[axis] < shape[axis] {
                break;
            }
            offset -= strides[axis] * shape[axis];
            index[axis] = 0;
        }
    }
}

/// The byte ranges of one item that belong to no scalar (struct padding), merged and sorted.
pub(crate) fn padding_ranges(item: &ItemLayout) -> Vec<(usize, usize)> {
    let mut covered = vec![false; item.size];
    mark(item, 0, &mut covered);
    let mut ranges = Vec::new();
    let mut start = None;
    for (i, &c) in covered.iter().chain(std::iter::once(&true)).enumerate() {
        match (c, start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                ranges.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    ranges
}

fn mark(item: &ItemLayout, at: usize, covered: &mut [bool]) {
    match &item.kind {
        ItemKind::Scalar(_) => {
            let end = (at + item.size).min(covered.len());
            covered[at.min(end)..end].iter_mut().for_each(|c| *c = true);
        }
        ItemKind::Array { elem, .. } => {
            if elem.size == 0 {
                return;
            }
            let count = item.size / elem.size;
            for k in 0..count {
                mark(elem, at + k * elem.size, covered);
            }
        }
        ItemKind::Struct(fields) => {
            for field in fields {
                mark(&field.layout, at + field.offset, covered);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{Field, Scalar, ScalarKind};

    #[test]
    fn contiguity_follows_cpython_rules() {
        assert!(is_c_contiguous(&[2, 3], &[24, 8], 8));
        assert!(!is_f_contiguous(&[2, 3], &[24, 8], 8));
        assert!(is_f_contiguous(&[2, 3], &[8, 16], 8));
        // length-1 axes may have any stride; empty buffers are both
        assert!(is_c_contiguous(&[1, 12, 1], &[999, 8, -5], 8));
        assert!(is_f_contiguous(&[1, 12, 1], &[999, 8, -5], 8));
        assert!(is_c_contiguous(&[7, 0, 7], &[3, 5, 1], 8));
        assert!(is_c_contiguous(&[], &[], 8));
        assert!(!is_c_contiguous(&[4], &[-8], 8));
    }

    #[test]
    fn walk_visits_every_element_in_c_order() {
        let mut seen = Vec::new();
        for_each_offset(&[2, 3], &[8, -24], |p, o| seen.push((p, o)));
        assert_eq!(
            seen,
            vec![(0, 0), (1, -24), (2, -48), (3, 8), (4, -16), (5, -40)]
        );
        let mut scalar = Vec::new();
        for_each_offset(&[], &[], |p, o| scalar.push((p, o)));
        assert_eq!(scalar, vec![(0, 0)]);
        let mut none = 0;
        for_each_offset(&[3, 0], &[8, 8], |_, _| none += 1);
        assert_eq!(none, 0);
    }

    #[test]
    fn span_covers_every_element() {
        assert_eq!(span(&[3], &[8], 8), (0, 24));
        assert_eq!(span(&[3], &[-8], 8), (-16, 24));
        assert_eq!(span(&[2, 3], &[48, 16], 8), (0, 48 + 32 + 8));
        assert_eq!(span(&[2, 3], &[-48, 16], 8), (-48, 48 + 32 + 8));
        assert_eq!(span(&[], &[], 4), (0, 4));
        assert_eq!(span(&[4, 0], &[8, 8], 8), (0, 0));
        // the span from the lowest element reaches exactly the end of the highest
        let (shape, strides) = ([3isize, 2], [-16isize, 56]);
        let (low, len) = span(&shape, &strides, 8);
        let mut offsets = Vec::new();
        for_each_offset(&shape, &strides, |_, o| offsets.push(o));
        assert_eq!(*offsets.iter().min().unwrap(), low);
        assert_eq!(*offsets.iter().max().unwrap() + 8, low + len as isize);
    }

    #[test]
    fn padding_of_a_struct() {
        let i32_ = ItemLayout::scalar(Scalar::native(ScalarKind::I32), 4);
        let f64_ = ItemLayout::scalar(Scalar::native(ScalarKind::F64), 8);
        let item = ItemLayout {
            size: 24,
            align: 8,
            kind: ItemKind::Struct(vec![
                Field {
                    name: None,
                    offset: 0,
                    layout: i32_,
                },
                Field {
                    name: None,
                    offset: 8,
                    layout: f64_,
                },
            ]),
        };
        assert_eq!(padding_ranges(&item), vec![(4, 8), (16, 24)]);
        assert!(padding_ranges(&ItemLayout::array(vec![3], f64_item())).is_empty());
    }

    fn f64_item() -> ItemLayout {
        ItemLayout::scalar(Scalar::native(ScalarKind::F64), 8)
    }
}
