//! The first version of [`ItemLayout::matches`], kept verbatim (test builds only) as the
//! oracle that the linear matcher in `normal` must agree with. It normalizes every level again
//! for each comparison above it, so it takes `3^depth` steps on `T{T{...T{B}...}}`: keep
//! the items given to it small.

use super::item::scalar_matches;
use super::{Field, ItemKind, ItemLayout, Mismatch, Scalar, ScalarKind};

pub(super) fn matches(this: &ItemLayout, expected: &ItemLayout) -> Result<(), Mismatch> {
    if this.size != expected.size {
        return Err(Mismatch::Layout);
    }
    // the common case, checked on every acquisition: two plain scalars
    if let (ItemKind::Scalar(f), ItemKind::Scalar(e)) = (&this.kind, &expected.kind) {
        if !matches!(f.kind, ScalarKind::Bytes(_) | ScalarKind::PascalString(_)) {
            return scalar_matches(*f, *e);
        }
    }
    match (Normal::of(this), Normal::of(expected)) {
        (Normal::Scalar(f), Normal::Scalar(e)) => scalar_matches(f, e),
        (Normal::Array(fc, fe), Normal::Array(ec, ee)) if fc == ec => matches(fe, ee),
        (Normal::Struct(ff), Normal::Struct(ef)) if ff.len() == ef.len() => {
            for (index, (f, e)) in ff.iter().zip(ef).enumerate() {
                if f.offset != e.offset {
                    return Err(Mismatch::Layout);
                }
                matches(&f.layout, &e.layout)?;
                if let (Some(fname), Some(ename)) = (&f.name, &e.name) {
                    if fname != ename {
                        return Err(Mismatch::FieldName {
                            index,
                            expected: ename.clone(),
                            found: fname.clone(),
                        });
                    }
                }
            }
            Ok(())
        }
        _ => Err(Mismatch::Layout),
    }
}

/// One `u8`, the element of byte strings.
static BYTE: ItemLayout = ItemLayout::scalar(Scalar::native(ScalarKind::U8), 1);

/// An item reduced to the form in which equivalent spellings are equal.
enum Normal<'a> {
    Scalar(Scalar),
    /// `count` items of the element, back to back.
    Array(usize, &'a ItemLayout),
    Struct(&'a [Field]),
}

impl<'a> Normal<'a> {
    fn of(item: &'a ItemLayout) -> Normal<'a> {
        match &item.kind {
            // a byte string of n bytes is n bytes: '5s' reads as [u8; 5]
            ItemKind::Scalar(Scalar {
                kind: ScalarKind::Bytes(n) | ScalarKind::PascalString(n),
                ..
            }) if *n != 1 => Normal::Array(*n, &BYTE),
            ItemKind::Scalar(Scalar {
                kind: ScalarKind::Bytes(1) | ScalarKind::PascalString(1),
                ..
            }) => Normal::Scalar(Scalar::native(ScalarKind::U8)),
            ItemKind::Scalar(s) => Normal::Scalar(*s),
            ItemKind::Array { shape, elem } => {
                let mut count: usize = shape.iter().product();
                let mut elem: &ItemLayout = elem;
                // flatten nested sub-arrays: '(2)(3)d' and '(2,3)d' are both '6d'
                while let ItemKind::Array { shape, elem: inner } = &elem.kind {
                    // saturating: only zero-size elements can have counts this large
                    count = count.saturating_mul(shape.iter().product::<usize>());
                    elem = inner;
                }
                if count == 1 {
                    Normal::of(elem)
                } else {
                    Normal::Array(count, elem)
                }
            }
            ItemKind::Struct(fields) => {
                if let Some(n) = uniform_run(item, fields) {
                    if n == 1 {
                        return Normal::of(&fields[0].layout);
                    }
                    return Normal::Array(n, &fields[0].layout);
                }
                Normal::Struct(fields)
            }
        }
    }
}

/// If `fields` are identical, unnamed and packed back to back from offset 0 and fill the
/// item exactly, how many there are.
fn uniform_run(item: &ItemLayout, fields: &[Field]) -> Option<usize> {
    let first = fields.first()?;
    let step = first.layout.size;
    if step == 0 || step.checked_mul(fields.len()) != Some(item.size) {
        return None;
    }
    let uniform = fields.iter().enumerate().all(|(i, f)| {
        f.name.is_none() && f.offset == i * step && matches(&f.layout, &first.layout).is_ok()
    });
    uniform.then_some(fields.len())
}
