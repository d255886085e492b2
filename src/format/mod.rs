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
//!
//! # The format table
//!
//! Every code with every prefix, on this machine (little-endian, LP64): the Rust element type
//! it maps to and the size in bytes. `^` has the kinds and sizes of `@` without alignment;
//! `=` is `<` on a little-endian machine; `!` is `>`. Checked against `struct.calcsize` by
//! `tests/format_grammar.rs`, which reads this table.
//!
//! | code | none, `@`, `^` | `=`, `<` | `>`, `!` |
//! |---|---|---|---|
//! | `?` | `bool` (1) | `bool` (1) | `bool` (1) |
//! | `c` | `char` (1) | `char` (1) | `char` (1) |
//! | `b` | `i8` (1) | `i8` (1) | `i8` (1) |
//! | `B` | `u8` (1) | `u8` (1) | `u8` (1) |
//! | `h` | `i16` (2) | `i16` (2) | `be::I16` (2) |
//! | `H` | `u16` (2) | `u16` (2) | `be::U16` (2) |
//! | `i` | `i32` (4) | `i32` (4) | `be::I32` (4) |
//! | `I` | `u32` (4) | `u32` (4) | `be::U32` (4) |
//! | `l` | `i64` (8) | `i32` (4) | `be::I32` (4) |
//! | `L` | `u64` (8) | `u32` (4) | `be::U32` (4) |
//! | `q` | `i64` (8) | `i64` (8) | `be::I64` (8) |
//! | `Q` | `u64` (8) | `u64` (8) | `be::U64` (8) |
//! | `n` | `isize` (8) | error | error |
//! | `N` | `usize` (8) | error | error |
//! | `e` | `f16` (2) | `f16` (2) | big-endian `f16` (2) |
//! | `f` | `f32` (4) | `f32` (4) | `be::F32` (4) |
//! | `d` | `f64` (8) | `f64` (8) | `be::F64` (8) |
//! | `P` | `void *` as `usize` (8) | `void *` as `usize` (8) | big-endian `void *` (8) |
//! | `Ze` | `Complex<f16>` (4) | `Complex<f16>` (4) | big-endian `Complex<f16>` (4) |
//! | `Zf` | `Complex<f32>` (8) | `Complex<f32>` (8) | big-endian `Complex<f32>` (8) |
//! | `Zd` | `Complex<f64>` (16) | `Complex<f64>` (16) | big-endian `Complex<f64>` (16) |
//!
//! `char` is [`ScalarKind::Char`] (a `bytes` of length 1, read as `u8`); `f16` is
//! `half::f16`; `Complex` is `num_complex::Complex`; `be::*` are the big-endian element types
//! in [`crate::be`]. With `=` or `<`, data is little-endian but not necessarily aligned: read
//! it as the plain type where aligned, or as [`crate::le`] types anywhere. Besides these:
//! `Ns` is `N` bytes ([`ScalarKind::Bytes`], `[u8; N]`), `Np` a Pascal string of `N` bytes,
//! `Nx` `N` padding bytes.
//!
//! `P` with a standard-size prefix is not valid in `struct`, but ctypes writes it (`c_void_p`
//! is `'<P'`, pointer fields `T{<P:p:}`): it is read as a pointer of native size, unaligned.
//! `n` and `N` exist only with native size.
//!
//! # Grammar
//!
//! ```text
//! format  := ws* member (ws* member)* ws*
//! member  := prefix? ws* [ '(' dim (',' dim)* ')' ws* prefix? ws* ] count? code (ws* ':' name ':')?
//! prefix  := '@' | '^' | '=' | '<' | '>' | '!'
//! count   := digit+                      (no whitespace between the count and the code)
//! code    := 'x' | '?' | 'c' | 'b' | 'B' | 'h' | 'H' | 'i' | 'I' | 'l' | 'L' | 'q' | 'Q'
//!          | 'n' | 'N' | 'e' | 'f' | 'd' | 's' | 'p' | 'P' | 'Z' ('e' | 'f' | 'd')
//!          | 'T{' (ws* member)* ws* '}'
//! name    := any characters but ':' (at least one)
//! ws      := ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c'   (Python's whitespace, as in `struct`)
//! ```
//!
//! * **Prefixes.** `@` (the default): native sizes, native alignment, native byte order. `^`
//!   (numpy): native sizes, no alignment. `=`: standard sizes, no alignment, native byte order.
//!   `<`, `>`/`!`: standard sizes, no alignment, little/big-endian. Unlike `struct`, a prefix
//!   may stand before any item (and after a sub-array shape, as numpy writes `(2,3)=f`); it
//!   stays in force until the next prefix, **across `T{` and `}`**: a struct does not scope it.
//!   That is what numpy does on both sides: its exporter writes a prefix only when the byte
//!   order changes (`T{>h:a:T{i:x:}:s:d:c:}` is all big-endian) and its own parser keeps the
//!   prefix in one stream-wide state.
//! * **Alignment.** In native-aligned mode (`@`) each item starts at a multiple of its natural
//!   alignment (a struct's alignment is the largest of its members' placed with `@`); in the
//!   other modes items are packed. There is no trailing padding at the top level (`'@di'` is 12
//!   bytes, as in `struct`), but a zero repeat count aligns (`'c0l'` is 8 bytes). A `T{...}`
//!   that ends in `@` mode is padded to a multiple of its alignment, like a C struct and like
//!   numpy's parser: numpy exports `align=True` dtypes as `T{d:a:B:b:}` for 16-byte items.
//! * **Repeat counts.** `'1d'` is `'d'`; `'3d'` is one item, an [`ItemKind::Array`] of shape
//!   `[3]`; `'0c'` is a legal zero-size item. For `s` and `p` the count is the length in bytes
//!   (`'5s'` is `Bytes(5)`), for `x` the number of padding bytes. A shape `(2,3)` before the
//!   count makes a sub-array of the counted item (`(2)3d` is shape `[2]` of shape `[3]`).
//! * **Structs.** `T{...}` is an [`ItemKind::Struct`]; `:name:` after any item names it. A
//!   format with several items at the top level (`'l x d x'`) is a struct of unnamed fields
//!   with their offsets; a single unnamed item is just that item. Padding belongs to no field,
//!   except named padding (`4x:v:`, numpy's void fields), which is a [`ScalarKind::Bytes`]
//!   field. `T{}` is an empty struct of size 0 (numpy exports `np.dtype([])` so).
//! * **Limits.** Sizes are capped at `isize::MAX` bytes, as in `struct`; nesting at
//!   [`MAX_NESTING`] levels, where a format of several items counts as one (it is the struct
//!   around them), so that every format written by [`ItemLayout::to_format`] parses again.
//!
//! # Differences from `struct.calcsize`
//!
//! Where both accept a format the sizes are equal. `struct` accepts `''` and a lone prefix
//! (`'@'`, size 0), which describe no item: [`parse`] refuses them. `struct` refuses `'<P'`,
//! which ctypes writes: it is accepted here. The extensions (`^`,
//! prefixes after the start, `Z`, `T{}`, shapes, names) are refused by `struct` and accepted
//! here. `g` (long double), `O`, `u`, `w`, `&`, `X{}`, `z` are refused: no Rust type reads them.
//!
//! # What exporters write
//!
//! numpy omits the trailing padding of structs that do not end in `@` mode (an unaligned
//! `{'names': ['a'], 'formats': ['f8'], 'itemsize': 12}` exports `T{=d:a:}` with itemsize 12),
//! so a format may describe fewer bytes than the exporter's `itemsize`;
//! [`ItemLayout::pad_to_itemsize`] extends a struct to the exporter's item size.
//! CPython before 3.12 writes ctypes `Structure` formats without the padding between fields
//! (`T{<c:a:<i:b:(3)<d:c:}` for a 32-byte struct, 29 bytes as written) and `_pack_`
//! structures as `'B'`: these disagree with their `itemsize` and cannot be read as records.

mod item;
mod normal;
mod padding;
mod parse;
#[cfg(test)]
mod reference;

pub(crate) use item::shape_tuple;
pub use item::{Endian, Field, ItemKind, ItemLayout, Mismatch, Scalar, ScalarKind};
#[doc(hidden)]
pub use parse::parse_general;
pub(crate) use parse::scalar_code;
pub use parse::{parse, FormatError, MAX_ITEM_SIZE, MAX_NESTING};
