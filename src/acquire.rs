//! The acquisition pipeline: acquire → validate → typed handle, the same for every source.
//!
//! [`typed`] is what `Buffer::get`, `get_mut` and `FromPyObject` run; [`untyped`] is
//! `AnyBuffer::get`, and [`retype`] is `AnyBuffer::typed`. Validation stops at the first
//! failure, in this order:
//!
//! 1. the source refuses ([`Error::NotABuffer`], [`Error::Refused`], [`Error::ReadOnly`]);
//! 2. the format does not parse ([`Error::Format`]);
//! 3. the item is not `T` ([`Error::ElementType`], [`Error::ByteOrder`]);
//! 4. the exporter's `itemsize` is not the size its format describes ([`Error::ItemSize`]);
//! 5. the number of dimensions is not `D`'s ([`Error::Dimensions`]);
//! 6. the layout is impossible ([`Error::InvalidLayout`], from [`Layout::read`]).
//!
//! An `[E; N]` element type also takes a buffer of `E` items with one more axis, the last of
//! length `N` and contiguous (byte stride the size of `E`): an H×W×3 `uint8` image is a
//! `Buffer2<[u8; 3]>`, an N×3 `float32` array a `Buffer1<[f32; 3]>`. At step 3 the item
//! matches `E` instead of `T`; step 5 wants one more dimension than `D`; at step 6 the last
//! axis is checked ([`Error::TrailingAxis`]) and folded into the item
//! ([`Layout::absorb_last_axis`]), so the typed layout simply has one axis fewer and a bigger
//! item, and every later check (alignment, strides, borrows, writes) sees it as for any other
//! element type.
//!
//! An exporter whose `ndim` or shape is impossible (ndim 65 or −1, a negative length, no
//! shape for several dimensions) gets [`Error::InvalidLayout`] saying so wherever a message
//! would otherwise describe its shape (steps 3 to 5), so no message invents a shape.
//!
//! Plain scalar element types (`f64`, `u8`, ...) take a fast path at step 2–3: a format that
//! is one code with an optional prefix (`"d"`, `"<d"`, `"=d"`, `"B"`) is matched without
//! building an item layout, and a layout with `D`'s number of dimensions is read in
//! straight-line code; the format and the exporter's name are recorded once all of that
//! passed. Anything the fast path does not accept goes through every step above, so the fast
//! path can only make acquisition cheaper, never more permissive (unit tests compare the two).

use ndarray::{Dimension, IxDyn};
use pyo3::prelude::*;

use crate::any::AnyBuffer;
use crate::buffer::Buffer;
use crate::element::Element;
use crate::error::{Error, Expected, Found};
use crate::format::{self, ItemKind, ItemLayout, Mismatch};
use crate::layout::{self, Layout};
use crate::source::{Acquired, Filled, FormatText, Request, Source};

/// Acquires `obj` and validates it as a `Buffer<T, D>`.
///
/// The fast path checks the filled view directly and records the format and type name only
/// once everything passed; anything else (a failure, or a format the fast path does not
/// know) records first and takes the general path, which runs every step in order.
#[inline(always)]
pub(crate) fn typed<T: Element, D: Dimension>(
    obj: &Bound<'_, PyAny>,
    request: Request,
) -> Result<Buffer<T, D>, Error> {
    if T::SCALAR.is_some() {
        if let Some(filled) = crate::source::numpy::acquire(obj, request) {
            if let Ok(buffer) = fast::<T, D>(obj, filled) {
                return Ok(buffer);
            }
            // not for the fast path after all (dropped, so released): the buffer protocol
            // answers as usual
        }
    }
    validate_typed(obj, Filled::new_any(obj, request)?)
}

/// Acquires `obj` through one protocol only and validates it as a `Buffer<T, D>`.
pub(crate) fn typed_from<T: Element, D: Dimension>(
    obj: &Bound<'_, PyAny>,
    source: Source,
    request: Request,
) -> Result<Buffer<T, D>, Error> {
    validate_typed(obj, Filled::new_from(obj, source, request)?)
}

/// Steps 2–6 for a `Buffer<T, D>`: the fast path, else every step in order.
#[inline(always)]
fn validate_typed<T: Element, D: Dimension>(
    obj: &Bound<'_, PyAny>,
    filled: Filled,
) -> Result<Buffer<T, D>, Error> {
    match fast::<T, D>(obj, filled) {
        Ok(buffer) => Ok(buffer),
        Err(filled) => general::<T, D>(filled.record(obj, None, true)),
    }
}

/// Steps 2–6 in straight-line code: the buffer when every check passes, else the acquisition
/// back (a check failed or does not apply).
#[inline(always)]
fn fast<T: Element, D: Dimension>(
    obj: &Bound<'_, PyAny>,
    filled: Filled,
) -> Result<Buffer<T, D>, Filled> {
    let Some(format) = fast_element_match::<T>(&filled, obj.py()) else {
        return Err(filled);
    };
    if !ndim_fits::<D>(filled.view().ndim) {
        return Err(filled);
    }
    match filled.layout::<D>() {
        Ok(layout) => Ok(Buffer::from_validated(
            filled.record(obj, Some(format), false),
            layout,
        )),
        Err(_) => Err(filled),
    }
}

/// Every step, in order, for an acquisition the fast path of [`typed`] did not accept.
#[cold]
#[inline(never)]
fn general<T: Element, D: Dimension>(acquired: Acquired) -> Result<Buffer<T, D>, Error> {
    let layout = validated_layout::<T, D>(&acquired)?;
    Ok(Buffer::from_validated(acquired, layout))
}

/// Steps 2–6 of [`general`].
fn validated_layout<T: Element, D: Dimension>(acquired: &Acquired) -> Result<Layout<D>, Error> {
    match check_element::<T, D>(acquired, None)? {
        Items::Direct => {
            check_ndim::<T, D>(acquired, None)?;
            read_layout::<D>(acquired)
        }
        Items::Absorbed { length } => {
            check_ndim_absorbed::<T, D>(acquired, None)?;
            let layout = read_layout::<IxDyn>(acquired)?;
            absorbed_layout::<T, D>(acquired, layout, length, None)
        }
    }
}

/// How the exporter's items become `T`s.
enum Items {
    /// Each item is one `T`.
    Direct,
    /// `T` is `[E; length]`, each item an `E`: the last axis becomes the array.
    Absorbed { length: usize },
}

/// The fast path of steps 2–4 for plain scalar element types: a format of at most two bytes
/// (one code and an optional prefix) that means `T`, and an `itemsize` of `T`'s size. Returns
/// the format it read; `None` sends the acquisition to the general path, which accepts or
/// refuses it with the full parser. A unit test checks every prefix and code: the fast path
/// never accepts what the general path refuses, and decides every one-code format itself but
/// byte strings (`'s'`, `'p'`).
#[inline(always)]
fn fast_element_match<T: Element>(filled: &Filled, py: Python<'_>) -> Option<FormatText> {
    T::SCALAR?;
    let format = filled.short_format(py)?;
    fast_accepts::<T>(format.as_bytes(), filled.view().itemsize).then_some(format)
}

/// The decision of [`fast_element_match`] for a format's bytes and an exporter's `itemsize`.
#[inline(always)]
fn fast_accepts<T: Element>(format: &[u8], itemsize: isize) -> bool {
    let (Some(expected), Some(found)) = (T::SCALAR, format::scalar_code(format)) else {
        return false;
    };
    found.matches(expected).is_ok() && itemsize >= 0 && itemsize as usize == expected.kind.size()
}

/// Whether an exporter's `ndim` fits `D` (`Ix1` also takes 0-d buffers, as shape `[1]`).
#[inline(always)]
fn ndim_fits<D: Dimension>(ndim: std::os::raw::c_int) -> bool {
    match D::NDIM {
        Some(1) => ndim == 1 || ndim == 0,
        Some(n) => ndim >= 0 && ndim as usize == n,
        None => true,
    }
}

/// Acquires `obj` for an [`AnyBuffer`]: the layout must be valid; the item is parsed but a
/// bad format is kept as an error for `item_layout()` and `typed()` to report.
pub(crate) fn untyped(obj: &Bound<'_, PyAny>, request: Request) -> Result<AnyBuffer, Error> {
    validate_untyped(Acquired::new_any(obj, request, true)?)
}

/// [`untyped`] through one protocol only.
pub(crate) fn untyped_from(
    obj: &Bound<'_, PyAny>,
    source: Source,
    request: Request,
) -> Result<AnyBuffer, Error> {
    validate_untyped(Filled::new_from(obj, source, request)?.record(obj, None, true))
}

fn validate_untyped(acquired: Acquired) -> Result<AnyBuffer, Error> {
    let item = parse_item(&acquired).and_then(|item| {
        check_itemsize(&acquired, &item)?;
        Ok(item)
    });
    let layout = read_layout::<IxDyn>(&acquired)?;
    Ok(AnyBuffer::from_parts(acquired, layout, item))
}

/// Validates an [`AnyBuffer`]'s acquisition as a `Buffer<T, D>` (steps 3–5; the layout was
/// read already).
pub(crate) fn retype<T: Element, D: Dimension>(
    acquired: Acquired,
    layout: Layout<IxDyn>,
    item: &ItemLayout,
) -> Result<Buffer<T, D>, Error> {
    if let Items::Absorbed { length } = check_element::<T, D>(&acquired, Some(item))? {
        check_ndim_absorbed::<T, D>(&acquired, Some(item))?;
        let layout = absorbed_layout::<T, D>(&acquired, layout, length, Some(item))?;
        return Ok(Buffer::from_validated(acquired, layout));
    }
    check_ndim::<T, D>(&acquired, Some(item))?;
    let layout = if layout.ndim() == 0 && D::NDIM == Some(1) {
        layout.scalar_as_1d::<D>()
    } else {
        layout.into_dimensionality::<D>()
    }
    .ok_or_else(|| Error::Dimensions {
        expected: Box::new(expected::<T, D>()),
        found: Box::new(Found {
            type_name: acquired.exporter_name(),
            format: acquired.format().to_string(),
            item: Some(item.describe()),
            itemsize: shown_itemsize(acquired.view().itemsize, Some(item)),
            shape: Vec::new(),
        }),
    })?;
    Ok(Buffer::from_validated(acquired, layout))
}

/// Step 6 for an absorbed trailing axis: the last axis of `layout` (read with the exporter's
/// own number of dimensions) has `length` items back to back and no indirection; it becomes
/// the item.
fn absorbed_layout<T: Element, D: Dimension>(
    acquired: &Acquired,
    layout: Layout<IxDyn>,
    length: usize,
    item: Option<&ItemLayout>,
) -> Result<Layout<D>, Error> {
    let last = layout.ndim() - 1; // check_ndim_absorbed: at least one axis
    let found_length = layout.shape[last];
    let stride = layout.strides()[last];
    let indirect = layout.suboffsets.as_ref().is_some_and(|sub| sub[last] >= 0);
    let contiguous = found_length <= 1 || stride.unsigned_abs() == layout.itemsize && stride > 0;
    if found_length != length || !contiguous || indirect {
        return Err(Error::TrailingAxis {
            expected: Box::new(expected::<T, D>()),
            found: Box::new(found_parsing(acquired, item)?),
            length: found_length,
            stride,
            indirect,
            expected_length: length,
            expected_stride: layout.itemsize,
        });
    }
    let absorbed = layout
        .absorb_last_axis()
        .map_err(|reason| invalid_layout(acquired, reason))?;
    Ok(absorbed
        .into_dimensionality::<D>()
        .expect("check_ndim_absorbed: one axis more than D"))
}

/// Steps 2–4: the format parses, describes `T` (or `E` of `T = [E; N]`), and agrees with the
/// exporter's `itemsize`. `parsed` is the item when the caller parsed it already.
fn check_element<T: Element, D: Dimension>(
    acquired: &Acquired,
    parsed: Option<&ItemLayout>,
) -> Result<Items, Error> {
    let owned;
    let item = match parsed {
        Some(item) => item,
        None => {
            owned = parse_item(acquired)?;
            &owned
        }
    };
    let matched = match T::SCALAR {
        Some(scalar) => item.matches_scalar(scalar),
        None => item.matches(&T::layout()),
    };
    let mismatch = match matched {
        Ok(()) => return check_itemsize(acquired, item).map(|()| Items::Direct),
        Err(mismatch) => mismatch,
    };
    // `[E; N]` also takes items of `E`, with the array along the last axis
    let mismatch = match (&mismatch, trailing_array::<T>()) {
        (Mismatch::Layout, Some((elem, length))) => match item.matches(&elem) {
            Ok(()) => return check_itemsize(acquired, item).map(|()| Items::Absorbed { length }),
            Err(elem_mismatch @ Mismatch::ByteOrder { .. }) => elem_mismatch,
            Err(_) => mismatch,
        },
        _ => mismatch,
    };
    let expected = Box::new(expected::<T, D>());
    let found = Box::new(found(acquired, Some(item))?);
    Err(match mismatch {
        Mismatch::ByteOrder {
            found: data,
            expected: element,
        } => Error::ByteOrder {
            expected,
            found,
            data,
            element,
        },
        Mismatch::Layout | Mismatch::FieldName { .. } => Error::ElementType { expected, found },
    })
}

/// `Some((E's layout, N))` when `T` is an array `[E; N]` of one dimension with `N ≥ 1`, which
/// may absorb a trailing axis of length `N`.
fn trailing_array<T: Element>() -> Option<(ItemLayout, usize)> {
    match T::layout().kind {
        ItemKind::Array { shape, elem } if shape.len() == 1 && shape[0] >= 1 => {
            Some((*elem, shape[0]))
        }
        _ => None,
    }
}

/// Parses the exporter's format into an item layout. A struct whose size disagrees with the
/// exporter's `itemsize` only in its trailing padding is fitted to the `itemsize`
/// ([`ItemLayout::fit_to_itemsize`]): numpy leaves the padding out of formats that do not end
/// in native-alignment mode, and describes packed (`align=False`) dtypes with native-mode
/// formats that imply padding the items do not have (17-byte items as
/// `T{I:frame:=d:score:@H:x:H:y:B:label:}`, 20 bytes by the native rules). Every other size
/// disagreement is left for [`check_itemsize`] to report.
fn parse_item(acquired: &Acquired) -> Result<ItemLayout, Error> {
    let item = acquired.parse_item().map_err(|error| Error::Format {
        type_name: acquired.exporter_name(),
        error: Box::new(error),
    })?;
    match usize::try_from(acquired.view().itemsize) {
        Ok(itemsize) if itemsize != item.size => {
            Ok(item.clone().fit_to_itemsize(itemsize).unwrap_or(item))
        }
        _ => Ok(item),
    }
}

/// Step 4: the exporter's `itemsize` is the size its format describes.
fn check_itemsize(acquired: &Acquired, item: &ItemLayout) -> Result<(), Error> {
    // a matched item has the element's size, so this also says `itemsize == size_of::<E>()`
    let itemsize = acquired.view().itemsize;
    if usize::try_from(itemsize) != Ok(item.size) {
        return Err(Error::ItemSize {
            format: acquired.format().to_string(),
            format_size: item.size,
            itemsize,
        });
    }
    Ok(())
}

/// Step 5: the number of dimensions fits `D` (`Ix1` also takes 0-d buffers as shape `[1]`).
fn check_ndim<T: Element, D: Dimension>(
    acquired: &Acquired,
    item: Option<&ItemLayout>,
) -> Result<(), Error> {
    if ndim_fits::<D>(acquired.view().ndim) {
        return Ok(());
    }
    Err(dimensions_error::<T, D>(acquired, item))
}

/// Step 5 for an absorbed trailing axis: one dimension more than `D` (at least one for
/// [`IxDyn`]).
fn check_ndim_absorbed<T: Element, D: Dimension>(
    acquired: &Acquired,
    item: Option<&ItemLayout>,
) -> Result<(), Error> {
    let ndim = acquired.view().ndim;
    let fits = match D::NDIM {
        Some(n) => ndim >= 0 && ndim as usize == n + 1,
        None => ndim >= 1,
    };
    if fits {
        return Ok(());
    }
    Err(dimensions_error::<T, D>(acquired, item))
}

#[cold]
#[inline(never)]
fn dimensions_error<T: Element, D: Dimension>(
    acquired: &Acquired,
    item: Option<&ItemLayout>,
) -> Error {
    match found_parsing(acquired, item) {
        Ok(found) => Error::Dimensions {
            expected: Box::new(expected::<T, D>()),
            found: Box::new(found),
        },
        Err(err) => err,
    }
}

/// Step 6.
fn read_layout<D: Dimension>(acquired: &Acquired) -> Result<Layout<D>, Error> {
    acquired
        .layout()
        .map_err(|reason| invalid_layout(acquired, reason))
}

#[cold]
fn invalid_layout(acquired: &Acquired, reason: layout::LayoutError) -> Error {
    Error::InvalidLayout {
        type_name: acquired.exporter_name(),
        reason,
    }
}

/// What a handle of `T` and `D` accepts, for messages.
pub(crate) fn expected<T: Element, D: Dimension>() -> Expected {
    let layout = T::layout();
    let scalar = matches!(layout.kind, ItemKind::Scalar(_));
    Expected {
        type_name: T::type_name(),
        item: numpy_name(&layout),
        format: layout.to_format(),
        itemsize: (!scalar).then_some(layout.size),
        ndim: D::NDIM,
        trailing_axis: trailing_array::<T>().map(|(elem, n)| (elem.describe(), n)),
    }
}

/// An item in numpy's words (`float64`, `'>f8'`, `(3,) uint8`); `None` for records, which
/// only have their Rust name.
fn numpy_name(layout: &ItemLayout) -> Option<String> {
    match &layout.kind {
        ItemKind::Struct(_) => None,
        _ => Some(layout.describe()),
    }
}

/// `T` in numpy's words, for messages about its items (`float64`), or its Rust name for
/// records.
pub(crate) fn element_name<T: Element>() -> String {
    numpy_name(&T::layout()).unwrap_or_else(T::type_name)
}

/// The exporter's `itemsize` when a message should show it: for items that are not a scalar
/// (records, sub-arrays), and when it disagrees with the item's size.
fn shown_itemsize(itemsize: isize, item: Option<&ItemLayout>) -> Option<isize> {
    match item {
        Some(item)
            if matches!(item.kind, ItemKind::Scalar(_))
                && usize::try_from(itemsize) == Ok(item.size) =>
        {
            None
        }
        _ => Some(itemsize),
    }
}

/// [`found`], parsing the exporter's item first when the caller has not (the message shows it
/// when it parses).
#[cold]
fn found_parsing(acquired: &Acquired, item: Option<&ItemLayout>) -> Result<Found, Error> {
    match item {
        Some(item) => found(acquired, Some(item)),
        None => found(acquired, parse_item(acquired).ok().as_ref()),
    }
}

/// Describes an acquired buffer for the "found" half of a message — or, when the exporter's
/// `ndim` or shape is impossible, the [`Error::InvalidLayout`] that says so instead.
pub(crate) fn found(acquired: &Acquired, item: Option<&ItemLayout>) -> Result<Found, Error> {
    let shape = acquired
        .exporter_shape()
        .map_err(|reason| invalid_layout(acquired, reason))?;
    Ok(Found {
        type_name: acquired.exporter_name(),
        format: acquired.format().to_string(),
        item: item.map(ItemLayout::describe),
        itemsize: shown_itemsize(acquired.view().itemsize, item),
        shape,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the general path decides for a format and itemsize (steps 2–4, without an
    /// exporter).
    fn general_accepts<T: Element>(format: &str, itemsize: isize) -> bool {
        let Ok(item) = format::parse(format) else {
            return false;
        };
        let item = match usize::try_from(itemsize) {
            Ok(size) if size != item.size => item.clone().fit_to_itemsize(size).unwrap_or(item),
            _ => item,
        };
        let matched = match T::SCALAR {
            Some(scalar) => item.matches_scalar(scalar),
            None => item.matches(&T::layout()),
        };
        matched.is_ok() && usize::try_from(itemsize) == Ok(item.size)
    }

    fn agree<T: Element>() {
        let codes = "?cbBhHiIlLqQnNefdPspxgOuwZ";
        for prefix in ["", "@", "^", "=", "<", ">", "!"] {
            for code in codes.chars() {
                let format = format!("{prefix}{code}");
                for itemsize in [-1, 0, 1, 2, 4, 8, 16] {
                    let fast = fast_accepts::<T>(format.as_bytes(), itemsize);
                    let general = general_accepts::<T>(&format, itemsize);
                    // the fast path may leave a format to the general path, never accept more
                    assert!(
                        !fast || general,
                        "{format:?} itemsize {itemsize} as {}",
                        T::type_name()
                    );
                    // and it decides every one-code format like the general path, but byte
                    // strings ('s', 'p'), which it leaves to the general path
                    if format.len() <= 2 && general && !"sp".contains(code) {
                        assert!(fast, "{format:?} itemsize {itemsize} as {}", T::type_name());
                    }
                }
            }
        }
    }

    #[test]
    fn scalar_fast_path_agrees_with_the_parser() {
        agree::<bool>();
        agree::<i8>();
        agree::<u8>();
        agree::<i16>();
        agree::<u16>();
        agree::<i32>();
        agree::<u32>();
        agree::<i64>();
        agree::<u64>();
        agree::<isize>();
        agree::<usize>();
        agree::<f32>();
        agree::<f64>();
        agree::<crate::be::F64>();
        agree::<crate::le::I32>();
        #[cfg(feature = "half")]
        agree::<half::f16>();
        #[cfg(feature = "complex")]
        agree::<num_complex::Complex<f64>>();
    }
}
