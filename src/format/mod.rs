//! The PEP 3118 / `struct` format grammar and the item descriptors it produces.
//!
//! A buffer's `format` string describes one item. [`parse`] turns it into an [`ItemLayout`]:
//! the item's size, its alignment and a tree of scalars, arrays and struct fields with their
//! byte offsets. Every Rust [`Element`](crate::Element) describes itself with the same type,
//! so matching a buffer against an element type is a comparison of two trees
//! ([`ItemLayout::matches`]), never a comparison of strings: `'d'`, `'=d'`, `'<d'` and `'1d'`
//! all describe the same little-endian `f64` on this machine.
//!
//! Sizes and byte order are resolved at parse time: `'l'` is 8 bytes with native size on LP64
//! and 4 bytes with a standard-size prefix (`= < > !`), and "native" byte order is replaced by
//! the machine's. Padding (`x`) takes space but no field.
//!
//! ```
//! use pybuf::format::{parse, ItemKind, Scalar, ScalarKind, Endian};
//!
//! let item = parse("<d").unwrap();
//! assert_eq!(item.size, 8);
//! assert_eq!(item.kind, ItemKind::Scalar(Scalar::new(ScalarKind::F64, Endian::Little)));
//!
//! // native alignment with '@' (or no prefix), none with '<'
//! assert_eq!(parse("@ixxd").unwrap().size, 16);
//! assert_eq!(parse("<ixxd").unwrap().size, 14);
//! ```

mod item;
mod parse;

pub(crate) use item::shape_tuple;
pub use item::{Endian, Field, ItemKind, ItemLayout, Mismatch, Scalar, ScalarKind};
pub use parse::{parse, FormatError};
