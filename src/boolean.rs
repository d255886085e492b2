//! [`Bool`]: a one-byte boolean element whose every byte is a valid value.

use std::fmt;

use crate::element::Element;
use crate::format::{ItemLayout, Scalar, ScalarKind};

/// A boolean element (format `'?'`, numpy `bool`) that accepts every byte: `0` is false,
/// anything else is true, as numpy reads it (`bool(a[0])`).
///
/// Rust's `bool` must be exactly 0 or 1, so pybuf checks every `bool` item before it hands
/// out a view, a copy or an item ([`Error::InvalidValue`](crate::Error::InvalidValue) for a
/// byte such as 2, which numpy produces with `a.view(np.uint8)[i] = 2` or `np.frombuffer`).
/// `Bool` has no invalid values, so it needs no check (views of it are as cheap as views of
/// `u8`) and no byte can ever be an invalid value:
///
/// - read masks that may hold bytes other than 0 and 1 without an error;
/// - keep a [`ReadGuard`](crate::ReadGuard) or [`WriteGuard`](crate::WriteGuard) across calls
///   into Python that may write the memory (a callback, `py.run`, a `__del__` during garbage
///   collection). For `bool`, such a write can put a 2 where the check at
///   [`read`](crate::Buffer::read) saw a 1, and the next view would then hold an invalid
///   `bool`: undefined behaviour. With `Bool`, views taken after the call read what Python
///   wrote. A view that is *in use* while Python writes is still undefined behaviour for every
///   element type (see the crate documentation, "Python code that runs while a guard
///   lives"): take views again after each call into Python.
///
/// Written values are 0 or 1 ([`From<bool>`](Bool#impl-From<bool>-for-Bool), [`Bool::TRUE`]);
/// a `Bool` read from memory keeps its byte ([`Bool::to_byte`]), so copying it writes the same
/// byte back. Equality and hashing follow the truth value, as numpy compares `bool` arrays.
///
/// ```
/// use pybuf::{Bool, Buffer1};
/// use pyo3::prelude::*;
///
/// Python::attach(|py| -> PyResult<()> {
///     let mask = py.eval(c"__import__('numpy').frombuffer(bytes([0, 1, 2]), dtype=bool)", None, None)?;
///     assert!(Buffer1::<bool>::get(&mask)?.to_vec().is_err()); // 2 is not a Rust bool
///     let mask = Buffer1::<Bool>::get(&mask)?;
///     let count = mask.with(|v| v.iter().filter(|b| b.get()).count())?;
///     assert_eq!(count, 2); // numpy: np.count_nonzero(mask) == 2
///     assert_eq!(mask.item(2)?, Bool::TRUE);
///     assert_eq!(mask.item(2)?.to_byte(), 2);
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone, Copy, Default)]
#[repr(transparent)]
pub struct Bool(u8);

impl Bool {
    /// False (byte 0).
    pub const FALSE: Bool = Bool(0);
    /// True (byte 1).
    pub const TRUE: Bool = Bool(1);

    /// `value` as a byte 0 or 1.
    pub const fn new(value: bool) -> Bool {
        Bool(value as u8)
    }

    /// Whether the byte is non-zero (numpy's truth value of a `bool` item).
    pub const fn get(self) -> bool {
        self.0 != 0
    }

    /// The byte as stored (0 and 1 for values made in Rust; any byte for values read from
    /// memory).
    pub const fn to_byte(self) -> u8 {
        self.0
    }
}

impl From<bool> for Bool {
    fn from(value: bool) -> Bool {
        Bool::new(value)
    }
}

impl From<Bool> for bool {
    fn from(value: Bool) -> bool {
        value.get()
    }
}

impl PartialEq for Bool {
    fn eq(&self, other: &Bool) -> bool {
        self.get() == other.get()
    }
}

impl Eq for Bool {}

impl PartialEq<bool> for Bool {
    fn eq(&self, other: &bool) -> bool {
        self.get() == *other
    }
}

impl PartialEq<Bool> for bool {
    fn eq(&self, other: &Bool) -> bool {
        *self == other.get()
    }
}

impl std::hash::Hash for Bool {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.get().hash(state);
    }
}

impl fmt::Debug for Bool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.get(), f)
    }
}

impl fmt::Display for Bool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.get(), f)
    }
}

impl std::ops::Not for Bool {
    type Output = Bool;

    fn not(self) -> Bool {
        Bool::new(!self.get())
    }
}

// SAFETY: `Bool` is `#[repr(transparent)]` over one `u8` (size 1, alignment 1), described as
// one native `'?'` scalar of alignment 1; every byte is a valid `u8`, hence a valid `Bool`,
// and it has no padding (its one byte is always initialized), drop glue or interior
// mutability.
unsafe impl Element for Bool {
    const HAS_PADDING: bool = false;
    const SCALAR: Option<Scalar> = Some(Scalar::native(ScalarKind::Bool));

    fn layout() -> ItemLayout {
        ItemLayout::scalar(Scalar::native(ScalarKind::Bool), 1)
    }

    fn type_name() -> String {
        "Bool".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_is_valid_and_truthy_when_non_zero() {
        const { assert!(Bool::ALWAYS_VALID && !Bool::HAS_PADDING) };
        for byte in 0..=255u8 {
            assert!(Bool::is_valid(&[byte]));
            assert_eq!(Bool(byte).get(), byte != 0);
        }
        assert_eq!(Bool::layout(), bool::layout());
        assert_eq!(Bool::SCALAR, Bool::layout().as_scalar());
        assert_eq!(std::mem::size_of::<Bool>(), 1);
        assert_eq!(std::mem::align_of::<Bool>(), 1);
    }

    #[test]
    fn conversions_and_equality() {
        assert_eq!(Bool::from(true).to_byte(), 1);
        assert_eq!(Bool::from(false).to_byte(), 0);
        assert!(bool::from(Bool(7)));
        assert_eq!(Bool(7), Bool::TRUE);
        assert_eq!(Bool(7), true);
        assert_ne!(Bool(0), true);
        assert_eq!(!Bool(7), Bool::FALSE);
        assert_eq!(format!("{:?} {}", Bool(2), Bool(0)), "true false");
    }
}
