//! Which bytes of an item hold values and which are padding.
//!
//! A byte holds a value when some scalar of the item (a number, a `bool`, a byte of a byte
//! string) covers it; every other byte is padding: `x` codes, the alignment gaps of a
//! native-aligned struct, a struct's trailing padding. For a Rust element type the padding of
//! its layout is the padding of the type, which Rust leaves uninitialized in its values.

use std::ops::Range;

use super::{ItemKind, ItemLayout};

impl ItemLayout {
    /// The byte ranges of one item that scalars cover, sorted and merged, within
    /// `0..self.size`. Arrays of items without padding take one range; otherwise there is a
    /// range per gap, so time and memory grow with the number of gaps (at most half the
    /// item's size).
    ///
    /// ```
    /// use pybuf::format::parse;
    ///
    /// // i32 at 0, 4 padding bytes, f64 at 8; then a packed array of two of those
    /// assert_eq!(parse("T{i:a:xxxxd:b:}").unwrap().value_ranges(), [0..4, 8..16]);
    /// assert_eq!(parse("(2)T{ixxxxd}").unwrap().value_ranges(), [0..4, 8..20, 24..32]);
    /// assert_eq!(parse("3d").unwrap().value_ranges(), [0..24]);
    /// ```
    pub fn value_ranges(&self) -> Vec<Range<usize>> {
        let mut ranges = Vec::new();
        collect(self, 0, &mut ranges);
        ranges.sort_by_key(|r| r.start);
        let mut merged: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
        for r in ranges {
            let r = r.start.min(self.size)..r.end.min(self.size);
            if r.is_empty() {
                continue;
            }
            match merged.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => merged.push(r),
            }
        }
        merged
    }

    /// The byte ranges of one item that no scalar covers (padding), sorted: the complement
    /// of [`value_ranges`](ItemLayout::value_ranges) in `0..self.size`.
    ///
    /// ```
    /// use pybuf::format::parse;
    ///
    /// assert_eq!(parse("T{i:a:xxxxd:b:}").unwrap().padding_ranges(), [4..8]);
    /// assert_eq!(parse("@ci").unwrap().padding_ranges(), [1..4]);
    /// assert!(parse("<ci").unwrap().padding_ranges().is_empty());
    /// ```
    pub fn padding_ranges(&self) -> Vec<Range<usize>> {
        let mut padding = Vec::new();
        let mut at = 0;
        for r in self.value_ranges() {
            if r.start > at {
                padding.push(at..r.start);
            }
            at = r.end;
        }
        if at < self.size {
            padding.push(at..self.size);
        }
        padding
    }
}

/// Pushes the value ranges of `item` placed at byte `at` (unsorted, possibly adjacent).
fn collect(item: &ItemLayout, at: usize, out: &mut Vec<Range<usize>>) {
    match &item.kind {
        ItemKind::Scalar(_) => out.push(at..at.saturating_add(item.size)),
        ItemKind::Array { shape, elem } => {
            if elem.size == 0 {
                return; // no bytes, however many items (the count may be huge)
            }
            let count = shape.iter().fold(1usize, |n, &d| n.saturating_mul(d));
            let inner = elem.value_ranges();
            if matches!(inner.as_slice(), [only] if *only == (0..elem.size)) {
                // items without padding: one range for the whole array
                out.push(at..at.saturating_add(count.saturating_mul(elem.size)));
                return;
            }
            if inner.is_empty() {
                return;
            }
            // `count * elem.size` bytes were checked to fit when the item was built, so
            // this loop runs at most `item.size / elem.size` times
            let mut start = at;
            for _ in 0..count.min(item.size / elem.size) {
                out.extend(inner.iter().map(|r| start + r.start..start + r.end));
                start += elem.size;
            }
        }
        ItemKind::Struct(fields) => {
            for field in fields {
                collect(&field.layout, at.saturating_add(field.offset), out);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // lists of byte ranges with one range are meant
mod tests {
    use super::super::parse;

    #[test]
    fn padding_of_structs_arrays_and_byte_strings() {
        let cases: [(&str, &[std::ops::Range<usize>]); 7] = [
            ("d", &[]),
            ("5s", &[]),
            ("4x:v:", &[]), // named padding is a byte-string field
            ("B3xI", &[1..4]),
            ("T{d:a:B:b:}", &[9..16]),
            ("(3)T{B:a:xH:b:}", &[1..2, 5..6, 9..10]),
            ("T{T{B:a:xH:b:}:x:(0)d:e:}", &[1..2, 4..8]),
        ];
        for (format, padding) in cases {
            let item = parse(format).unwrap();
            assert_eq!(item.padding_ranges(), padding, "{format}");
        }
    }

    #[test]
    fn huge_counts_of_zero_size_items_cost_nothing() {
        let item = parse(&format!("T{{B({},{})0d}}", usize::MAX / 2, 2)).unwrap();
        assert_eq!(item.value_ranges(), [0..1]);
    }
}
