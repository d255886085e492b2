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
//! An exporter whose `ndim` or shape is impossible (ndim 65 or −1, a negative length, no
//! shape for several dimensions) gets [`Error::InvalidLayout`] saying so wherever a message
//! would otherwise describe its shape (steps 3 to 5), so no message invents a shape.
//!
//! Plain scalar element types (`f64`, `u8`, ...) take a fast path at step 2–3: a format that
//! is one code with an optional prefix (`"d"`, `"<d"`, `"=d"`, `"B"`) is matched without
//! building an item layout. It accepts exactly what the full parser and matcher accept for
//! such strings (a unit test compares them on every prefix and code).

use ndarray::{Dimension, IxDyn};
use pyo3::prelude::*;

use crate::any::AnyBuffer;
use crate::buffer::Buffer;
use crate::element::Element;
use crate::error::{Error, Expected, Found};
use crate::format::{self, ItemLayout, Mismatch};
use crate::layout::{self, Layout};
use crate::source::{Acquired, Request};

/// Acquires `obj` and validates it as a `Buffer<T, D>`.
#[inline]
pub(crate) fn typed<T: Element, D: Dimension>(
    obj: &Bound<'_, PyAny>,
    request: Request,
) -> Result<Buffer<T, D>, Error> {
    let acquired = Acquired::new_any(obj, request, false)?;
    check_element::<T, D>(&acquired, None)?;
    check_ndim::<T, D>(&acquired, None)?;
    let layout = read_layout::<D>(&acquired)?;
    Ok(Buffer::from_validated(acquired, layout))
}

/// Acquires `obj` for an [`AnyBuffer`]: the layout must be valid; the item is parsed but a
/// bad format is kept as an error for `item_layout()` and `typed()` to report.
pub(crate) fn untyped(obj: &Bound<'_, PyAny>, request: Request) -> Result<AnyBuffer, Error> {
    let acquired = Acquired::new_any(obj, request, true)?;
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
    check_element::<T, D>(&acquired, Some(item))?;
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
            shape: Vec::new(),
        }),
    })?;
    Ok(Buffer::from_validated(acquired, layout))
}

/// Steps 2–4: the format parses, describes `T`, and agrees with the exporter's `itemsize`.
/// `parsed` is the item when the caller parsed it already.
#[inline]
fn check_element<T: Element, D: Dimension>(
    acquired: &Acquired,
    parsed: Option<&ItemLayout>,
) -> Result<(), Error> {
    if let (Some(expected), None) = (T::SCALAR, parsed) {
        // The fast path: a one-code format of the right kind and byte order, with the
        // matching itemsize.
        if let Some(found) = format::scalar_code(acquired.format_bytes()) {
            if found.matches(expected).is_ok()
                && acquired.view().itemsize as usize == expected.kind.size()
                && acquired.view().itemsize >= 0
            {
                return Ok(());
            }
        }
    }
    check_element_slow::<T, D>(acquired, parsed)
}

#[cold]
#[inline(never)]
fn check_element_slow<T: Element, D: Dimension>(
    acquired: &Acquired,
    parsed: Option<&ItemLayout>,
) -> Result<(), Error> {
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
    if let Err(mismatch) = matched {
        let expected = Box::new(expected::<T, D>());
        let found = Box::new(found(acquired, Some(item))?);
        return Err(match mismatch {
            Mismatch::ByteOrder { found: data, .. } => Error::ByteOrder {
                expected,
                found,
                data,
            },
            Mismatch::Layout | Mismatch::FieldName { .. } => Error::ElementType { expected, found },
        });
    }
    check_itemsize(acquired, item)
}

/// Parses the exporter's format into an item layout. A struct whose format leaves out its
/// trailing padding (numpy does, unless the struct ends in native-alignment mode) is padded
/// to the exporter's `itemsize`; every other size disagreement is left for
/// [`check_itemsize`] to report.
fn parse_item(acquired: &Acquired) -> Result<ItemLayout, Error> {
    let item = acquired
        .checked_format()
        .and_then(format::parse)
        .map_err(|error| Error::Format {
            type_name: acquired.exporter_name(),
            error: Box::new(error),
        })?;
    match usize::try_from(acquired.view().itemsize) {
        Ok(itemsize) if itemsize != item.size => {
            Ok(item.clone().pad_to_itemsize(itemsize).unwrap_or(item))
        }
        _ => Ok(item),
    }
}

/// Step 4: the exporter's `itemsize` is the size its format describes.
fn check_itemsize(acquired: &Acquired, item: &ItemLayout) -> Result<(), Error> {
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
#[inline]
fn check_ndim<T: Element, D: Dimension>(
    acquired: &Acquired,
    item: Option<&ItemLayout>,
) -> Result<(), Error> {
    let ndim = acquired.view().ndim;
    let fits = match D::NDIM {
        Some(1) => ndim == 1 || ndim == 0,
        Some(n) => ndim as usize == n && ndim >= 0,
        None => true,
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
    let parsed;
    let item = match item {
        Some(item) => Some(item),
        None => {
            parsed = parse_item(acquired).ok();
            parsed.as_ref()
        }
    };
    match found(acquired, item) {
        Ok(found) => Error::Dimensions {
            expected: Box::new(expected::<T, D>()),
            found: Box::new(found),
        },
        Err(err) => err,
    }
}

/// Step 6.
#[inline]
fn read_layout<D: Dimension>(acquired: &Acquired) -> Result<Layout<D>, Error> {
    // SAFETY: `acquired` holds a filled, unreleased view whose pointers stay valid while it
    // lives (the sources' guarantee, see `crate::source`).
    unsafe { Layout::read(acquired.view()) }.map_err(|reason| invalid_layout(acquired, reason))
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
    Expected {
        type_name: T::type_name(),
        format: T::layout().to_format(),
        ndim: D::NDIM,
    }
}

/// Describes an acquired buffer for the "found" half of a message — or, when the exporter's
/// `ndim` or shape is impossible, the [`Error::InvalidLayout`] that says so instead.
fn found(acquired: &Acquired, item: Option<&ItemLayout>) -> Result<Found, Error> {
    // SAFETY: as in `read_layout`.
    let shape = unsafe { layout::exporter_shape(acquired.view()) }
        .map_err(|reason| invalid_layout(acquired, reason))?;
    Ok(Found {
        type_name: acquired.exporter_name(),
        format: acquired.format().to_string(),
        item: item.map(ItemLayout::describe),
        shape,
    })
}
