//! Matching two item layouts in time proportional to their size.
//!
//! Equivalent spellings of an item (`'(2,3)d'` and `'6d'`, `'dd'` and `'2d'`, `'T{d}'` and
//! `'d'`, `'5s'` and `5B`) are reduced to one *normal form* before they are compared. Both
//! items are normalized once, bottom-up, into one arena ([`Arena`]); then the two normal forms
//! are compared by one walk over both ([`Arena::compare`]).
//!
//! The one step of normalization that compares items is the rule "a struct of identical
//! unnamed fields packed back to back is an array": it compares every field with the first
//! one, using the normal forms of the fields, which are already built. A comparison visits
//! each node of the smaller of the two subtrees at most once, so normalizing an item of `n`
//! nodes costs `O(n log n)` in the worst case (a node is charged only while its subtree is
//! at most half of the struct being checked) and `O(n)` for every format seen in practice;
//! the final comparison is `O(min(n, m))`. (The first version normalized each level again
//! for every comparison above it: `3^depth` steps for `T{T{...T{B}...}}`.)
//!
//! The arena is two vectors (nodes, and the fields of all structs), so a match allocates
//! twice whatever the items.

use super::item::scalar_matches;
use super::{Field, ItemKind, ItemLayout, Mismatch, Scalar, ScalarKind};

/// Whether items described by `found` (a buffer's format) can be read as items described by
/// `expected` (an element type's layout); see [`ItemLayout::matches`].
pub(super) fn matches(found: &ItemLayout, expected: &ItemLayout) -> Result<(), Mismatch> {
    let mut arena = Arena {
        nodes: Vec::with_capacity(16),
        fields: Vec::with_capacity(16),
    };
    arena
        .nodes
        .push(Normal::Scalar(Scalar::native(ScalarKind::U8))); // BYTE
    let found = arena.add(found);
    let expected = arena.add(expected);
    arena.compare(found, expected)
}

/// Index of a normal form in the arena.
type NodeId = usize;

/// Index of the one `u8` scalar that byte strings are arrays of.
const BYTE: NodeId = 0;

/// A reference to an item as one occurrence of it: its own size and, if it is written as a
/// scalar, that scalar (both matter to a comparison before normal forms do), and its normal
/// form.
#[derive(Clone, Copy)]
struct Item {
    size: usize,
    /// The item's own scalar when it is one, before `'1s'` becomes `u8`: a plain scalar is
    /// compared with another item's own scalar directly (see [`Arena::compare`]).
    scalar: Option<Scalar>,
    normal: NodeId,
}

/// A field of a struct in normal form.
struct NormalField<'a> {
    name: Option<&'a str>,
    offset: usize,
    item: Item,
}

/// An item reduced to the form in which equivalent spellings are equal.
enum Normal {
    Scalar(Scalar),
    /// `count` items back to back (nested sub-arrays multiplied out, `count != 1`).
    Array(usize, Item),
    /// Fields at offsets, in format order: `Arena::fields[start..start + len]`.
    Struct {
        start: usize,
        len: usize,
    },
}

/// The normal forms of two items and all their parts.
struct Arena<'a> {
    nodes: Vec<Normal>,
    fields: Vec<NormalField<'a>>,
}

impl<'a> Arena<'a> {
    fn push(&mut self, normal: Normal) -> NodeId {
        self.nodes.push(normal);
        self.nodes.len() - 1
    }

    /// Adds the normal form of `item` (after those of its parts) and returns a reference to it.
    fn add(&mut self, item: &'a ItemLayout) -> Item {
        let (scalar, normal) = match &item.kind {
            ItemKind::Scalar(s) => (Some(*s), self.add_scalar(*s)),
            ItemKind::Array { shape, elem } => (None, self.add_array(shape, elem)),
            ItemKind::Struct(fields) => (None, self.add_struct(item.size, fields)),
        };
        Item {
            size: item.size,
            scalar,
            normal,
        }
    }

    fn add_scalar(&mut self, scalar: Scalar) -> NodeId {
        match scalar.kind {
            // a byte string of n bytes is n bytes: '5s' reads as [u8; 5]
            ScalarKind::Bytes(1) | ScalarKind::PascalString(1) => BYTE,
            ScalarKind::Bytes(n) | ScalarKind::PascalString(n) => {
                let byte = Item {
                    size: 1,
                    scalar: Some(Scalar::native(ScalarKind::U8)),
                    normal: BYTE,
                };
                self.push(Normal::Array(n, byte))
            }
            _ => self.push(Normal::Scalar(scalar)),
        }
    }

    fn add_array(&mut self, shape: &[usize], elem: &'a ItemLayout) -> NodeId {
        // flatten nested sub-arrays: '(2)(3)d' and '(2,3)d' are both '6d'
        let mut count = product(shape);
        let mut elem = elem;
        while let ItemKind::Array { shape, elem: inner } = &elem.kind {
            // saturating: only zero-size elements can have counts this large
            count = count.saturating_mul(product(shape));
            elem = inner;
        }
        let elem = self.add(elem);
        if count == 1 {
            // a one-item array is its item
            elem.normal
        } else {
            self.push(Normal::Array(count, elem))
        }
    }

    fn add_struct(&mut self, size: usize, fields: &'a [Field]) -> NodeId {
        // the struct's fields take one block; their own parts are added after it
        let start = self.fields.len();
        let placeholder = Item {
            size: 0,
            scalar: None,
            normal: BYTE,
        };
        self.fields.extend(fields.iter().map(|f| NormalField {
            name: f.name.as_deref(),
            offset: f.offset,
            item: placeholder,
        }));
        for (i, f) in fields.iter().enumerate() {
            let item = self.add(&f.layout);
            self.fields[start + i].item = item;
        }
        let len = fields.len();
        match self.uniform_run(size, start, len) {
            // a struct of one unnamed field that fills it is that field
            Some(1) => self.fields[start].item.normal,
            Some(n) => {
                let first = self.fields[start].item;
                self.push(Normal::Array(n, first))
            }
            None => self.push(Normal::Struct { start, len }),
        }
    }

    /// If the `len` fields from `start` are unnamed, packed back to back from offset 0, fill
    /// `size` exactly and each match the first, how many there are.
    fn uniform_run(&self, size: usize, start: usize, len: usize) -> Option<usize> {
        let fields = &self.fields[start..start + len];
        let first = fields.first()?.item;
        let step = first.size;
        if step == 0 || step.checked_mul(len) != Some(size) {
            return None;
        }
        let uniform = fields.iter().enumerate().all(|(i, f)| {
            f.name.is_none() && f.offset == i * step && self.compare(f.item, first).is_ok()
        });
        uniform.then_some(len)
    }

    /// Compares item `f` (found) with item `e` (expected). Visits each pair of corresponding
    /// nodes once: arrays are compared through their one element, structs field by field.
    fn compare(&self, f: Item, e: Item) -> Result<(), Mismatch> {
        if f.size != e.size {
            return Err(Mismatch::Layout);
        }
        // Two items written as scalars compare as written, unless the found one is a byte
        // string: so 'B' does not match an expected '1s' while '1s' matches an expected 'B'
        // (the rule of the first version of `matches`, kept so that nothing matches
        // differently).
        if let (Some(fs), Some(es)) = (f.scalar, e.scalar) {
            if !matches!(fs.kind, ScalarKind::Bytes(_) | ScalarKind::PascalString(_)) {
                return scalar_matches(fs, es);
            }
        }
        match (&self.nodes[f.normal], &self.nodes[e.normal]) {
            (Normal::Scalar(fs), Normal::Scalar(es)) => scalar_matches(*fs, *es),
            (Normal::Array(fc, fe), Normal::Array(ec, ee)) if fc == ec => self.compare(*fe, *ee),
            (
                &Normal::Struct { start: fs, len },
                &Normal::Struct {
                    start: es,
                    len: elen,
                },
            ) if len == elen => {
                let pairs = self.fields[fs..fs + len]
                    .iter()
                    .zip(&self.fields[es..es + len]);
                for (index, (f, e)) in pairs.enumerate() {
                    if f.offset != e.offset {
                        return Err(Mismatch::Layout);
                    }
                    self.compare(f.item, e.item)?;
                    if let (Some(fname), Some(ename)) = (f.name, e.name) {
                        if fname != ename {
                            return Err(Mismatch::FieldName {
                                index,
                                expected: ename.to_string(),
                                found: fname.to_string(),
                            });
                        }
                    }
                }
                Ok(())
            }
            _ => Err(Mismatch::Layout),
        }
    }
}

/// The number of items of a shape; saturating (only zero-size items can have such counts).
fn product(shape: &[usize]) -> usize {
    shape.iter().fold(1usize, |n, &d| n.saturating_mul(d))
}

#[cfg(test)]
mod tests {
    use super::super::reference;
    use super::super::{parse, Endian};
    use super::*;
    use proptest::prelude::*;

    fn both(found: &ItemLayout, expected: &ItemLayout) -> Result<(), Mismatch> {
        let new = found.matches(expected);
        assert_eq!(
            new,
            reference::matches(found, expected),
            "{found:?}\nvs\n{expected:?}"
        );
        new
    }

    #[test]
    fn spellings_that_match_as_before() {
        let cases = [
            ("(2,3)d", "6d", true),
            ("(2)3d", "6d", true),
            ("dd", "2d", true),
            ("T{d}", "d", true),
            ("T{T{T{d}}}", "d", true),
            ("T{dd}", "(2)d", true),
            ("5s", "5B", true),
            ("1s", "B", true),
            ("B", "1s", false),
            ("c", "B", true),
            ("P", "N", true),
            ("T{B:a:H:b:}", "T{B:a:H:b:}", true),
            ("T{B:a:H:b:}", "T{BH}", true),
            ("T{B:a:H:b:}", "T{B:x:H:b:}", false),
            ("T{T{B:a:H:b:}T{BH}}", "2T{BH}", true),
            ("T{(2)d(2)d}", "4d", false),
            ("T{(2)d(2)d}", "(2)2d", false),
            (">d", "d", false),
            ("0d", "0i", false),
            ("T{d:a:}", "T{d}", false),
            ("T{d:a:}", "T{d:b:}", false),
            ("T{d:a:}", "T{d:a:}", true),
        ];
        for (found, expected, ok) in cases {
            let (f, e) = (parse(found).unwrap(), parse(expected).unwrap());
            assert_eq!(both(&f, &e).is_ok(), ok, "{found} vs {expected}");
        }
        let big = parse(">d").unwrap();
        assert_eq!(
            both(&big, &parse("d").unwrap()),
            Err(Mismatch::ByteOrder {
                found: Endian::Big,
                expected: Endian::Little
            })
        );
    }

    #[test]
    fn deep_one_field_nests_match_quickly() {
        // 3^64 steps before; here 64 levels of each shape
        let depth = super::super::MAX_NESTING;
        let unnamed = format!("{}B{}", "T{".repeat(depth), "}".repeat(depth));
        let named = format!("{}B:a:{}}}", "T{".repeat(depth), "}:a:".repeat(depth - 1));
        let byte = parse("B").unwrap();
        assert_eq!(parse(&unnamed).unwrap().matches(&byte), Ok(()));
        let named = parse(&named).unwrap();
        assert_eq!(named.matches(&named), Ok(()));
        assert_eq!(named.matches(&byte), Err(Mismatch::Layout));
    }

    /// A small random item: few kinds, sizes and names, so that two random items are often
    /// the same size and often equivalent.
    fn item() -> impl Strategy<Value = ItemLayout> {
        let scalar = prop_oneof![
            Just(ScalarKind::U8),
            Just(ScalarKind::Char),
            Just(ScalarKind::I8),
            Just(ScalarKind::U16),
            Just(ScalarKind::Bytes(1)),
            Just(ScalarKind::Bytes(2)),
            Just(ScalarKind::PascalString(2)),
        ];
        let endian = prop_oneof![Just(Endian::Little), Just(Endian::Big)];
        let leaf = (scalar, endian).prop_map(|(k, e)| ItemLayout::scalar(Scalar::new(k, e), 1));
        leaf.prop_recursive(4, 24, 3, |inner| {
            prop_oneof![
                (proptest::collection::vec(0usize..3, 1..3), inner.clone())
                    .prop_map(|(shape, elem)| ItemLayout::array(shape, elem)),
                (
                    proptest::collection::vec(
                        (
                            inner,
                            prop_oneof![Just(None), Just(Some("a")), Just(Some("b"))]
                        ),
                        1..4
                    ),
                    0usize..2
                )
                    .prop_map(|(fields, tail)| {
                        let mut offset = 0;
                        let fields: Vec<Field> = fields
                            .into_iter()
                            .map(|(layout, name)| {
                                let f = Field {
                                    name: name.map(String::from),
                                    offset,
                                    layout,
                                };
                                offset += f.layout.size;
                                f
                            })
                            .collect();
                        ItemLayout {
                            size: offset + tail,
                            align: 1,
                            kind: ItemKind::Struct(fields),
                        }
                    }),
            ]
        })
    }

    /// Rewrites `item` into an equivalent spelling: one-field structs, one-item arrays,
    /// arrays as structs of unnamed fields, byte strings as byte arrays.
    fn respell(item: &ItemLayout, choice: &mut impl Iterator<Item = u8>) -> ItemLayout {
        let inner = match &item.kind {
            ItemKind::Scalar(s) => match s.kind {
                ScalarKind::Bytes(n) if n != 1 && choice.next().unwrap_or(0) % 2 == 0 => {
                    ItemLayout::array(
                        vec![n],
                        ItemLayout::scalar(Scalar::native(ScalarKind::U8), 1),
                    )
                }
                _ => item.clone(),
            },
            ItemKind::Array { shape, elem } => {
                let elem = respell(elem, choice);
                match (shape.as_slice(), choice.next().unwrap_or(0) % 3) {
                    ([n], 0) if *n > 1 && elem.size > 0 => ItemLayout {
                        size: item.size,
                        align: item.align,
                        kind: ItemKind::Struct(
                            (0..*n)
                                .map(|i| Field {
                                    name: None,
                                    offset: i * elem.size,
                                    layout: elem.clone(),
                                })
                                .collect(),
                        ),
                    },
                    _ => ItemLayout::array(shape.clone(), elem),
                }
            }
            ItemKind::Struct(fields) => ItemLayout {
                size: item.size,
                align: item.align,
                kind: ItemKind::Struct(
                    fields
                        .iter()
                        .map(|f| Field {
                            name: f.name.clone(),
                            offset: f.offset,
                            layout: respell(&f.layout, choice),
                        })
                        .collect(),
                ),
            },
        };
        match choice.next().unwrap_or(0) % 4 {
            0 => ItemLayout {
                size: inner.size,
                align: inner.align,
                kind: ItemKind::Struct(vec![Field {
                    name: None,
                    offset: 0,
                    layout: inner,
                }]),
            },
            1 => ItemLayout::array(vec![1], inner),
            _ => inner,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// The linear matcher gives exactly the answers (and mismatch reasons) of the
        /// previous, exponential one.
        #[test]
        fn agrees_with_the_previous_matcher(a in item(), b in item()) {
            let _ = both(&a, &b);
            let _ = both(&b, &a);
            let _ = both(&a, &a);
        }

        #[test]
        fn agrees_on_respelled_items(
            a in item(),
            choices in proptest::collection::vec(any::<u8>(), 64),
        ) {
            let b = respell(&a, &mut choices.iter().copied());
            let _ = both(&a, &b);
            let _ = both(&b, &a);
        }
    }
}
