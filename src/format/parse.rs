//! The parser: format string → [`ItemLayout`].
//!
//! One pass over the bytes of the format, no backtracking. Sizes are computed with checked
//! arithmetic and capped at `isize::MAX` bytes (as in `struct`), `T{...}` nesting is capped at
//! [`MAX_NESTING`] levels, so no input can panic, overflow or exhaust the stack.

use std::fmt;

use super::{Endian, Field, ItemKind, ItemLayout, Scalar, ScalarKind};

/// A format string that is not valid PEP 3118 / `struct` syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatError {
    /// The whole format string.
    pub format: String,
    /// Byte position of the problem.
    pub position: usize,
    /// What the grammar expected there.
    pub expected: String,
    /// What was found (`None` at the end of the string).
    pub found: Option<char>,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid format '{}' at position {}: expected {}, found ",
            self.format, self.position, self.expected
        )?;
        match self.found {
            Some(c) => write!(f, "'{c}'"),
            None => f.write_str("the end of the format"),
        }
    }
}

impl std::error::Error for FormatError {}

/// The largest item size accepted, in bytes (`isize::MAX`, the limit of `struct` and of any
/// allocation).
pub const MAX_ITEM_SIZE: usize = isize::MAX as usize;

/// How deeply `T{...}` structs may nest.
pub const MAX_NESTING: usize = 64;

/// Parses a PEP 3118 format string into the item it describes.
///
/// See the [module documentation](super) for the grammar, the table of codes and the rules for
/// prefixes, alignment and padding. Formats that are one scalar (`'d'`, `'<q'`, `'Zd'`) take
/// a fast path that does not allocate.
///
/// ```
/// use pybuf::format::{parse, ItemKind};
///
/// let item = parse("T{i:a:xxxxd:b:}").unwrap(); // numpy, align=True
/// assert_eq!(item.size, 16);
/// let ItemKind::Struct(fields) = &item.kind else { unreachable!() };
/// assert_eq!(fields[1].name.as_deref(), Some("b"));
/// assert_eq!(fields[1].offset, 8);
///
/// let err = parse("T{d").unwrap_err();
/// assert_eq!(err.position, 3);
/// assert!(err.to_string().contains("expected '}'"));
/// ```
#[inline]
pub fn parse(format: &str) -> Result<ItemLayout, FormatError> {
    if let Some(item) = parse_scalar(format.as_bytes()) {
        return Ok(item);
    }
    parse_general(format)
}

/// The general parser, without the one-scalar fast path (tests compare the two).
#[doc(hidden)]
pub fn parse_general(format: &str) -> Result<ItemLayout, FormatError> {
    Parser {
        text: format,
        bytes: format.as_bytes(),
        pos: 0,
        mode: Mode::Native,
        depth: 0,
        deepest_struct: None,
    }
    .parse_top()
}

/// Size, alignment and byte-order mode selected by a prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// `@` (and no prefix): native sizes, native alignment, native byte order.
    Native,
    /// `^` (numpy): native sizes, no alignment, native byte order.
    NativeUnaligned,
    /// `= < > !`: standard sizes, no alignment, the given byte order.
    Standard(Endian),
}

impl Mode {
    #[inline]
    fn from_prefix(b: u8) -> Option<Mode> {
        match b {
            b'@' => Some(Mode::Native),
            b'^' => Some(Mode::NativeUnaligned),
            b'=' => Some(Mode::Standard(Endian::NATIVE)),
            b'<' => Some(Mode::Standard(Endian::Little)),
            b'>' | b'!' => Some(Mode::Standard(Endian::Big)),
            _ => None,
        }
    }

    #[inline]
    fn native_size(self) -> bool {
        !matches!(self, Mode::Standard(_))
    }

    #[inline]
    fn aligned(self) -> bool {
        self == Mode::Native
    }

    #[inline]
    fn endian(self) -> Endian {
        match self {
            Mode::Standard(e) => e,
            _ => Endian::NATIVE,
        }
    }
}

/// The integer kind of `bytes` bytes.
#[inline]
const fn int_kind(bytes: usize, signed: bool) -> ScalarKind {
    match (bytes, signed) {
        (2, true) => ScalarKind::I16,
        (2, false) => ScalarKind::U16,
        (4, true) => ScalarKind::I32,
        (4, false) => ScalarKind::U32,
        (_, true) => ScalarKind::I64,
        (_, false) => ScalarKind::U64,
    }
}

const C_LONG: usize = std::mem::size_of::<std::ffi::c_long>();
const C_INT: usize = std::mem::size_of::<std::ffi::c_int>();
const C_SHORT: usize = std::mem::size_of::<std::ffi::c_short>();
const SSIZE: usize = std::mem::size_of::<isize>();

/// What a one-byte code that is not a struct, complex or padding means in `mode`.
enum Code {
    /// A scalar (the repeat count makes an array).
    Scalar(ScalarKind),
    /// `s`: the repeat count is the length.
    Bytes,
    /// `p`: the repeat count is the length.
    Pascal,
    /// `x`
    Padding,
    /// `n` or `N` with a standard-size prefix.
    NativeOnly,
    /// A PEP 3118 code with no Rust element type (`g`, `O`, `u`, `w`, `&`, ...).
    Unsupported(&'static str),
    /// Not a format code.
    Unknown,
}

#[inline]
const fn code(c: u8, native: bool) -> Code {
    let kind = match c {
        b'?' => ScalarKind::Bool,
        b'c' => ScalarKind::Char,
        b'b' => ScalarKind::I8,
        b'B' => ScalarKind::U8,
        b'h' => int_kind(if native { C_SHORT } else { 2 }, true),
        b'H' => int_kind(if native { C_SHORT } else { 2 }, false),
        b'i' => int_kind(if native { C_INT } else { 4 }, true),
        b'I' => int_kind(if native { C_INT } else { 4 }, false),
        b'l' => int_kind(if native { C_LONG } else { 4 }, true),
        b'L' => int_kind(if native { C_LONG } else { 4 }, false),
        b'q' => ScalarKind::I64,
        b'Q' => ScalarKind::U64,
        b'e' => ScalarKind::F16,
        b'f' => ScalarKind::F32,
        b'd' => ScalarKind::F64,
        // ctypes writes pointers as '<P' (c_void_p, pointer fields of structures): a
        // pointer of native size in the stated byte order; 'n' and 'N' stay native-only
        b'n' | b'N' if !native => return Code::NativeOnly,
        b'n' => int_kind(SSIZE, true),
        b'N' => int_kind(SSIZE, false),
        b'P' => ScalarKind::Pointer,
        b's' => return Code::Bytes,
        b'p' => return Code::Pascal,
        b'x' => return Code::Padding,
        b'g' => return Code::Unsupported("'g' is a long double, which has no Rust type"),
        b'O' => return Code::Unsupported("'O' is a Python object pointer"),
        b'u' => return Code::Unsupported("'u' is a UCS-2 character"),
        b'w' => return Code::Unsupported("'w' is a UCS-4 character"),
        b'&' => return Code::Unsupported("'&' is a typed pointer"),
        b'X' => return Code::Unsupported("'X{}' is a function pointer"),
        b'z' => return Code::Unsupported("'z' is a C string pointer"),
        _ => return Code::Unknown,
    };
    Code::Scalar(kind)
}

#[inline]
fn complex_kind(c: u8) -> Option<ScalarKind> {
    match c {
        b'e' => Some(ScalarKind::ComplexF16),
        b'f' => Some(ScalarKind::ComplexF32),
        b'd' => Some(ScalarKind::ComplexF64),
        _ => None,
    }
}

/// The native (C) alignment of a scalar kind on this machine.
#[inline]
fn natural_align(kind: ScalarKind) -> usize {
    use ScalarKind::*;
    match kind {
        // (the parser never produces the DLPack-only kinds; they are listed for completeness)
        Bool | Char | I8 | U8 | Bytes(_) | PascalString(_) | DLPackOther { .. } => 1,
        I16 | U16 | F16 | BF16 | ComplexF16 => 2,
        I32 | U32 | F32 | ComplexF32 => 4,
        I64 => std::mem::align_of::<i64>(),
        U64 => std::mem::align_of::<u64>(),
        F64 | ComplexF64 => std::mem::align_of::<f64>(),
        Pointer => std::mem::align_of::<usize>(),
    }
}

#[inline]
fn leaf(kind: ScalarKind, mode: Mode) -> ItemLayout {
    let align = if matches!(mode, Mode::Native) {
        natural_align(kind)
    } else {
        1
    };
    ItemLayout::scalar(Scalar::new(kind, mode.endian()), align)
}

/// The scalar of a format that is an optional prefix and one scalar code, if it is one (the
/// acquisition fast path; anything else is left to [`parse`]).
#[inline]
pub(crate) fn scalar_code(b: &[u8]) -> Option<Scalar> {
    let (mode, c) = match *b {
        [c] => return NATIVE_CODES.get(usize::from(c)).copied().flatten(),
        [b'Z', c] => return complex_kind(c).map(Scalar::native),
        [p, c] => (Mode::from_prefix(p)?, c),
        _ => return None,
    };
    match code(c, mode.native_size()) {
        Code::Scalar(kind) => Some(Scalar::new(kind, mode.endian())),
        _ => None,
    }
}

/// What each ASCII character means as a whole format of one character (native mode), for
/// [`scalar_code`]: a table lookup instead of a match on every acquisition.
const NATIVE_CODES: [Option<Scalar>; 128] = {
    let mut table = [None; 128];
    let mut c = 0;
    while c < 128 {
        if let Code::Scalar(kind) = code(c as u8, true) {
            table[c] = Some(Scalar::native(kind));
        }
        c += 1;
    }
    table
};

/// The fast path: an optional prefix and one scalar code (`'d'`, `'<q'`, `'Zd'`, `'=Zf'`).
#[inline]
fn parse_scalar(b: &[u8]) -> Option<ItemLayout> {
    let (mode, rest) = match b {
        [p, rest @ ..] => match Mode::from_prefix(*p) {
            Some(m) => (m, rest),
            None => (Mode::Native, b),
        },
        [] => return None,
    };
    let kind = match *rest {
        [c] => match code(c, mode.native_size()) {
            Code::Scalar(k) => k,
            Code::Bytes => ScalarKind::Bytes(1),
            Code::Pascal => ScalarKind::PascalString(1),
            _ => return None,
        },
        [b'Z', c] => complex_kind(c)?,
        _ => return None,
    };
    Some(leaf(kind, mode))
}

#[inline]
fn is_space(b: u8) -> bool {
    // Python's Py_ISSPACE, which `struct` uses: includes \v (0x0b) and \f (0x0c).
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Fields collected so far in a struct or at the top level.
struct Members {
    fields: Vec<Field>,
    /// Next free byte offset.
    offset: usize,
    /// Largest alignment of a member placed with native alignment.
    align: usize,
    /// Number of items (padding included) seen.
    items: usize,
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    mode: Mode,
    depth: usize,
    /// Where the first `T{` at the deepest allowed level ([`MAX_NESTING`]) opened, if any: a
    /// format of several items is itself a struct around them, one level more.
    deepest_struct: Option<usize>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_space) {
            self.pos += 1;
        }
    }

    fn error(&self, position: usize, expected: impl Into<String>) -> FormatError {
        FormatError {
            format: self.text.to_string(),
            position,
            expected: expected.into(),
            found: self.text.get(position..).and_then(|s| s.chars().next()),
        }
    }

    fn too_big(&self, position: usize) -> FormatError {
        self.error(
            position,
            format!("an item of at most {MAX_ITEM_SIZE} bytes (isize::MAX)"),
        )
    }

    fn parse_top(mut self) -> Result<ItemLayout, FormatError> {
        let mut m = self.parse_members(None)?;
        if m.items == 0 {
            return Err(self.error(self.pos, "a format code"));
        }
        // a single unnamed item at offset 0 that fills the format is just that item
        if m.fields.len() == 1
            && m.fields[0].name.is_none()
            && m.fields[0].offset == 0
            && m.fields[0].layout.size == m.offset
        {
            if let Some(field) = m.fields.pop() {
                return Ok(field.layout);
            }
        }
        // Anything else is a struct of the top-level items, which counts as a level of
        // nesting: its format (`T{...}`, what `to_format` writes) must parse too.
        if let Some(position) = self.deepest_struct {
            return Err(self.error(
                position,
                format!(
                    "at most {} nested 'T{{' structs in a format of several items (the \
                     format is the outermost struct)",
                    MAX_NESTING - 1
                ),
            ));
        }
        Ok(ItemLayout {
            size: m.offset,
            align: m.align,
            kind: ItemKind::Struct(m.fields),
        })
    }

    /// Items up to the end of the format (`open == None`) or up to the `}` that closes the
    /// `T{` at `open`.
    fn parse_members(&mut self, open: Option<usize>) -> Result<Members, FormatError> {
        let mut m = Members {
            fields: Vec::new(),
            offset: 0,
            align: 1,
            items: 0,
        };
        loop {
            self.skip_ws();
            match (self.peek(), open) {
                (None, None) => return Ok(m),
                (None, Some(open)) => {
                    return Err(self.error(
                        self.pos,
                        format!("'}}' to close the 'T{{' at position {open}"),
                    ))
                }
                (Some(b'}'), Some(_)) => {
                    self.pos += 1;
                    return Ok(m);
                }
                _ => self.parse_member(&mut m)?,
            }
        }
    }

    fn parse_prefix(&mut self) -> bool {
        match self.peek().and_then(Mode::from_prefix) {
            Some(mode) => {
                self.mode = mode;
                self.pos += 1;
                self.skip_ws();
                true
            }
            None => false,
        }
    }

    /// Digits; `None` if there are none.
    fn parse_number(&mut self, what: &str) -> Result<Option<usize>, FormatError> {
        let start = self.pos;
        let mut n: usize = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(usize::from(d - b'0')))
                .ok_or_else(|| self.error(start, format!("{what} of at most {}", usize::MAX)))?;
            self.pos += 1;
        }
        Ok((self.pos > start).then_some(n))
    }

    /// `(d0,d1,...)`, the `(` not yet consumed.
    fn parse_shape(&mut self) -> Result<Vec<usize>, FormatError> {
        self.pos += 1;
        let mut shape = Vec::new();
        loop {
            self.skip_ws();
            match self.parse_number("a sub-array dimension")? {
                Some(d) => shape.push(d),
                None => return Err(self.error(self.pos, "a sub-array dimension (digits)")),
            }
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b')') => {
                    self.pos += 1;
                    return Ok(shape);
                }
                _ => return Err(self.error(self.pos, "',' or ')' in the sub-array shape")),
            }
        }
    }

    /// One item with its prefix, shape, count and name, placed at the end of `m`.
    fn parse_member(&mut self, m: &mut Members) -> Result<(), FormatError> {
        let start = self.pos;
        let mut after_prefix = self.parse_prefix();
        let shape = if self.peek() == Some(b'(') {
            let shape = self.parse_shape()?;
            self.skip_ws();
            after_prefix = self.parse_prefix();
            Some(shape)
        } else {
            None
        };
        let count_pos = self.pos;
        let count = self.parse_number("a repeat count")?;
        let code_pos = self.pos;
        let place = self.mode;
        let Some(c) = self.peek() else {
            return Err(self.expected_code(code_pos, count.is_some(), after_prefix));
        };

        // the item without its shape; `None` for padding (its byte count instead)
        let item: Result<ItemLayout, usize> = match c {
            b'T' => {
                if self.bytes.get(self.pos + 1) != Some(&b'{') {
                    return Err(self.error(self.pos + 1, "'{' after 'T'"));
                }
                if self.depth >= MAX_NESTING {
                    return Err(self.error(
                        self.pos,
                        format!("at most {MAX_NESTING} nested 'T{{' structs"),
                    ));
                }
                self.pos += 2;
                self.depth += 1;
                if self.depth == MAX_NESTING && self.deepest_struct.is_none() {
                    self.deepest_struct = Some(code_pos);
                }
                let inner = self.parse_members(Some(code_pos))?;
                self.depth -= 1;
                let mut size = inner.offset;
                // numpy's rule: a struct that ends in native-aligned mode gets the trailing
                // padding a C struct has
                if self.mode.aligned() {
                    size = size
                        .checked_next_multiple_of(inner.align)
                        .filter(|&s| s <= MAX_ITEM_SIZE)
                        .ok_or_else(|| self.too_big(code_pos))?;
                }
                let st = ItemLayout {
                    size,
                    align: inner.align,
                    kind: ItemKind::Struct(inner.fields),
                };
                Ok(self.repeat(st, count, count_pos)?)
            }
            b'Z' => {
                let kind = self
                    .bytes
                    .get(self.pos + 1)
                    .and_then(|&c| complex_kind(c))
                    .ok_or_else(|| {
                        self.error(self.pos + 1, "'e', 'f' or 'd' after 'Z' (complex)")
                    })?;
                self.pos += 2;
                Ok(self.repeat(leaf(kind, place), count, count_pos)?)
            }
            _ => {
                let item = match code(c, place.native_size()) {
                    Code::Scalar(kind) => self.repeat(leaf(kind, place), count, count_pos)?,
                    Code::Bytes => leaf(ScalarKind::Bytes(count.unwrap_or(1)), place),
                    Code::Pascal => leaf(ScalarKind::PascalString(count.unwrap_or(1)), place),
                    Code::Padding => {
                        self.pos += 1;
                        return self.finish(m, Err(count.unwrap_or(1)), shape, start, place);
                    }
                    Code::NativeOnly => {
                        return Err(self.error(
                            code_pos,
                            format!(
                                "a standard-size format code ('{}' exists only with native \
                                 size: no prefix, '@' or '^')",
                                c as char
                            ),
                        ))
                    }
                    Code::Unsupported(what) => {
                        return Err(self.error(
                            code_pos,
                            format!("a supported format code ({what}, not supported)"),
                        ))
                    }
                    Code::Unknown => {
                        return Err(self.expected_code(code_pos, count.is_some(), after_prefix))
                    }
                };
                self.pos += 1;
                Ok(item)
            }
        };
        self.finish(m, item, shape, start, place)
    }

    fn expected_code(&self, pos: usize, after_count: bool, after_prefix: bool) -> FormatError {
        let what = if after_count {
            "a format code right after the repeat count"
        } else if after_prefix {
            "a format code after the byte-order prefix"
        } else {
            "a format code (one of x ? c b B h H i I l L q Q n N e f d s p P, Zf Zd Ze, \
             T{...}), a repeat count, a '(' shape or a byte-order prefix"
        };
        self.error(pos, what)
    }

    /// `elem` repeated `count` times (`None` and 1: the item itself).
    fn repeat(
        &self,
        elem: ItemLayout,
        count: Option<usize>,
        pos: usize,
    ) -> Result<ItemLayout, FormatError> {
        match count {
            None | Some(1) => Ok(elem),
            Some(n) => array(vec![n], elem).ok_or_else(|| self.too_big(pos)),
        }
    }

    /// Applies the shape, reads the field name and places the item (or padding) in `m`.
    fn finish(
        &mut self,
        m: &mut Members,
        item: Result<ItemLayout, usize>,
        shape: Option<Vec<usize>>,
        start: usize,
        place: Mode,
    ) -> Result<(), FormatError> {
        let item = match (item, shape) {
            (item, None) => item,
            (Ok(elem), Some(shape)) => Ok(array(shape, elem).ok_or_else(|| self.too_big(start))?),
            (Err(pad), Some(shape)) => Err(shape
                .iter()
                .try_fold(pad, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| self.too_big(start))?),
        };
        self.skip_ws();
        let name = if self.peek() == Some(b':') {
            let name_start = self.pos + 1;
            let len = self.bytes[name_start..].iter().position(|&b| b == b':');
            match len {
                Some(0) => return Err(self.error(name_start, "a field name")),
                Some(len) => {
                    self.pos = name_start + len + 1;
                    Some(self.text[name_start..name_start + len].to_string())
                }
                None => {
                    return Err(self.error(self.bytes.len(), "':' to end the field name"));
                }
            }
        } else {
            None
        };
        let layout = match item {
            Ok(layout) => layout,
            Err(pad) => {
                m.items += 1;
                m.offset = m
                    .offset
                    .checked_add(pad)
                    .filter(|&o| o <= MAX_ITEM_SIZE)
                    .ok_or_else(|| self.too_big(start))?;
                if let Some(name) = name {
                    // numpy writes unstructured void fields ('V4') as named padding
                    m.fields.push(Field {
                        name: Some(name),
                        offset: m.offset - pad,
                        layout: leaf(ScalarKind::Bytes(pad), Mode::NativeUnaligned),
                    });
                }
                return Ok(());
            }
        };
        let mut offset = m.offset;
        if place.aligned() {
            offset = offset
                .checked_next_multiple_of(layout.align)
                .ok_or_else(|| self.too_big(start))?;
            m.align = m.align.max(layout.align);
        }
        m.offset = offset
            .checked_add(layout.size)
            .filter(|&o| o <= MAX_ITEM_SIZE)
            .ok_or_else(|| self.too_big(start))?;
        m.items += 1;
        m.fields.push(Field {
            name,
            offset,
            layout,
        });
        Ok(())
    }
}

impl ItemLayout {
    /// This layout extended to an exporter's `itemsize` by trailing padding, where the format
    /// may legitimately have left that padding out.
    ///
    /// numpy writes structs without their trailing padding unless they end in native-aligned
    /// mode (`{'names': ['a'], 'formats': ['f8'], 'itemsize': 12}` exports `T{=d:a:}`), so a
    /// struct item (`T{...}` or several items at the top level) whose size is below `itemsize`
    /// is padded at its end: the offsets of its fields are unchanged. Returns `None` for a
    /// struct larger than `itemsize` and for any other item whose size differs.
    ///
    /// ```
    /// use pybuf::format::parse;
    ///
    /// let item = parse("T{=d:a:}").unwrap().pad_to_itemsize(12).unwrap();
    /// assert_eq!(item.size, 12);
    /// assert!(parse("d").unwrap().pad_to_itemsize(12).is_none());
    /// ```
    pub fn pad_to_itemsize(self, itemsize: usize) -> Option<ItemLayout> {
        match self.kind {
            _ if self.size == itemsize => Some(self),
            ItemKind::Struct(_) if self.size < itemsize => Some(ItemLayout {
                size: itemsize,
                ..self
            }),
            _ => None,
        }
    }
}

impl ItemLayout {
    /// This layout with its size set to an exporter's `itemsize`, where the two can only
    /// disagree about a struct's trailing padding: [`pad_to_itemsize`](ItemLayout::pad_to_itemsize)
    /// when the struct is smaller; when it is larger, trimmed to `itemsize` as long as every
    /// field still fits and the bytes given up are fewer than the struct's alignment (the
    /// trailing padding the native rules add, never explicit `x` padding beyond it). Field
    /// offsets are never changed.
    ///
    /// numpy describes packed structured dtypes (`align=False`) with formats that switch back
    /// to native-alignment mode (`@`) for 0 or 1 records and for strided views: a 17-byte
    /// record is written `T{I:frame:=d:score:@H:x:H:y:B:label:}`, whose fields end at byte 17
    /// but which the native rules pad to 20. The items are 17 bytes: the exporter's
    /// `itemsize` says so, and the fields agree.
    ///
    /// Returns `None` for a struct whose fields do not fit in `itemsize` or that is larger by
    /// more than its alignment rounding, and for any other item whose size differs.
    ///
    /// ```
    /// use pybuf::format::parse;
    ///
    /// let numpy = parse("T{I:frame:=d:score:@H:x:H:y:B:label:}").unwrap();
    /// assert_eq!(numpy.size, 20);
    /// assert_eq!(numpy.clone().fit_to_itemsize(17).unwrap().size, 17);
    /// assert!(numpy.fit_to_itemsize(16).is_none()); // 'label' at byte 16 would not fit
    /// assert!(parse("T{=d:a:}").unwrap().fit_to_itemsize(12).is_some());
    /// assert!(parse("d").unwrap().fit_to_itemsize(4).is_none());
    /// // explicit padding is not alignment padding
    /// assert!(parse("T{B:a:3x}").unwrap().fit_to_itemsize(1).is_none());
    /// ```
    pub fn fit_to_itemsize(self, itemsize: usize) -> Option<ItemLayout> {
        match &self.kind {
            _ if self.size <= itemsize => self.pad_to_itemsize(itemsize),
            ItemKind::Struct(fields) => {
                let end = fields_end(fields);
                (end <= itemsize && self.size - end < self.align).then_some(ItemLayout {
                    size: itemsize,
                    ..self
                })
            }
            _ => None,
        }
    }
}

/// The first byte after every field (0 for no fields).
fn fields_end(fields: &[Field]) -> usize {
    fields
        .iter()
        .map(|f| f.offset.saturating_add(f.layout.size))
        .max()
        .unwrap_or(0)
}

/// A sub-array, or `None` if its size or its number of scalars (which bounds the counts that
/// [`ItemLayout::matches`] multiplies, also for zero-size elements) exceeds [`MAX_ITEM_SIZE`].
fn array(shape: Vec<usize>, elem: ItemLayout) -> Option<ItemLayout> {
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))?;
    count
        .checked_mul(scalar_count(&elem))
        .filter(|&n| n <= MAX_ITEM_SIZE)?;
    count
        .checked_mul(elem.size)
        .filter(|&s| s <= MAX_ITEM_SIZE)?;
    Some(ItemLayout::array(shape, elem))
}

/// Elements of nested sub-arrays, flattened (at most `MAX_ITEM_SIZE` for parsed items).
fn scalar_count(item: &ItemLayout) -> usize {
    match &item.kind {
        ItemKind::Array { shape, elem } => shape.iter().product::<usize>() * scalar_count(elem),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the fuzz target: a top-level sequence around a struct nested 64 deep parsed,
    /// but its `to_format` (`T{...}` around the sequence, 65 levels) did not.
    #[test]
    fn every_accepted_format_writes_a_format_that_parses() {
        let nest = |depth: usize| format!("{}B{}", "T{".repeat(depth), "}".repeat(depth));
        // what the fuzz target checks: the written format describes the same bytes
        let round_trip = |format: &str| {
            let item = parse(format).unwrap();
            let again = parse(&item.to_format()).unwrap();
            assert_eq!(again.size, item.size, "{format}");
            assert!(again.matches(&item).is_ok(), "{format}");
        };
        let deepest = nest(MAX_NESTING);
        round_trip(&deepest);
        for top in ["xx", "e@e@xx", "B"] {
            let err = parse(&format!("{top}{deepest}")).unwrap_err();
            // the `T{` one level too deep
            assert_eq!(err.position, top.len() + 2 * (MAX_NESTING - 1), "{err}");
            assert!(err.to_string().contains("at most 63 nested"), "{err}");
            round_trip(&format!("{top}{}", nest(MAX_NESTING - 1)));
        }
        let err = parse(&nest(MAX_NESTING + 1)).unwrap_err();
        assert!(err.to_string().contains("at most 64 nested"), "{err}");
    }

    #[test]
    fn fast_path_agrees_with_general_parser() {
        let prefixes = ["", "@", "^", "=", "<", ">", "!"];
        let mut n = 0;
        for p in prefixes {
            for c in 0u8..128 {
                for z in ["", "Z"] {
                    let f = format!("{p}{z}{}", c as char);
                    if let Some(fast) = parse_scalar(f.as_bytes()) {
                        assert_eq!(Ok(fast), parse_general(&f), "{f:?}");
                        n += 1;
                    }
                }
            }
        }
        // 18 scalar codes + s/p with native size, 16 (no n/N) + s/p with standard size, 3 complex
        assert_eq!(n, 3 * (18 + 2 + 3) + 4 * (16 + 2 + 3));
    }

    #[test]
    fn fitting_trims_alignment_padding_only() {
        let fit = |format: &str, itemsize: usize| {
            parse(format)
                .unwrap()
                .fit_to_itemsize(itemsize)
                .map(|item| item.size)
        };
        // numpy's packed dtype in native mode: fields end at 17, the native rules pad to 20
        let numpy = "T{I:frame:=d:score:@H:x:H:y:B:label:}";
        assert_eq!(fit(numpy, 17), Some(17));
        assert_eq!(fit(numpy, 19), Some(19));
        assert_eq!(fit(numpy, 16), None); // 'label' would not fit
        assert_eq!(fit(numpy, 24), Some(24)); // padding, as before
                                              // explicit padding, or more bytes than alignment rounding can add
        assert_eq!(fit("T{B:a:3x}", 1), None);
        assert_eq!(fit("1000000000000000000x", 1), None);
        assert_eq!(fit("B3x", 1), None);
        assert_eq!(fit("T{}", 0), Some(0));
        // scalars and arrays never change size
        assert_eq!(fit("d", 4), None);
        assert_eq!(fit("3d", 16), None);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "T{".repeat(100_000);
        let err = parse(&deep).unwrap_err();
        assert_eq!(err.position, 2 * MAX_NESTING);
        let ok = format!("{}d{}", "T{".repeat(MAX_NESTING), "}".repeat(MAX_NESTING));
        assert_eq!(parse(&ok).unwrap().size, 8);
    }
}
