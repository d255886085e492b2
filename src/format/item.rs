//! Item descriptors: what one element of a buffer looks like in memory.

use std::fmt;

use super::normal;

/// Byte order of a multi-byte scalar, resolved to the machine's (never "native").
///
/// One-byte scalars have no byte order; they always carry [`Endian::NATIVE`] so that
/// `'<b'` and `'>b'` describe the same item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endian {
    /// Least significant byte first (x86, most ARM).
    Little,
    /// Most significant byte first (`'>'`, `'!'`).
    Big,
}

impl Endian {
    /// The byte order of the machine this code runs on.
    #[cfg(target_endian = "little")]
    pub const NATIVE: Endian = Endian::Little;
    /// The byte order of the machine this code runs on.
    #[cfg(target_endian = "big")]
    pub const NATIVE: Endian = Endian::Big;

    /// The `struct` prefix that selects this byte order with standard sizes.
    pub fn prefix(self) -> char {
        match self {
            Endian::Little => '<',
            Endian::Big => '>',
        }
    }

    /// `"little-endian"` or `"big-endian"`.
    pub fn name(self) -> &'static str {
        match self {
            Endian::Little => "little-endian",
            Endian::Big => "big-endian",
        }
    }
}

/// The kind of a scalar, with its size resolved (`'l'` becomes `I64` or `I32`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScalarKind {
    /// `'?'`, one byte that must be 0 or 1 to be read as a Rust `bool`.
    Bool,
    /// `'c'`, a bytes object of length 1.
    Char,
    /// `'b'`
    I8,
    /// `'B'`
    U8,
    /// `'h'`
    I16,
    /// `'H'`
    U16,
    /// `'i'`, and `'l'` with standard size
    I32,
    /// `'I'`, and `'L'` with standard size
    U32,
    /// `'q'`, and `'l'` / `'n'` with native size on LP64
    I64,
    /// `'Q'`, and `'L'` / `'N'` with native size on LP64
    U64,
    /// `'e'`, IEEE 754 binary16
    F16,
    /// `'f'`
    F32,
    /// `'d'`
    F64,
    /// `'Ze'`, two `f16`
    ComplexF16,
    /// `'Zf'`, two `f32` (numpy `complex64`)
    ComplexF32,
    /// `'Zd'`, two `f64` (numpy `complex128`)
    ComplexF64,
    /// `'P'`, a `void *` (native size only). Matches the unsigned integer of pointer width.
    Pointer,
    /// `'Ns'`, a byte string of N bytes (the repeat count is its length, not a count of items).
    Bytes(usize),
    /// `'Np'`, a Pascal string of N bytes.
    PascalString(usize),
    /// bfloat16 (`half::bf16`): the upper half of an IEEE 754 binary32. It has no PEP 3118
    /// code, so no format string parses to it: only DLPack sources (`kDLBfloat`) produce it.
    /// pybuf writes it as `'E'` (the type character of `ml_dtypes.bfloat16` in numpy).
    BF16,
    /// A DLPack data type that no Rust element type reads (the float8, float6 and float4
    /// variants, opaque handles, vector types with several lanes, unusual sizes): it matches
    /// no element type, so acquiring it as `Buffer<T, D>` fails with an element-type error
    /// that names it. Only DLPack sources produce it, and only for whole-byte items (sub-byte
    /// items padded to a byte included); its size is `(bits × lanes + 7) / 8` bytes.
    DLPackOther {
        /// `DLDataType.code`.
        code: u8,
        /// `DLDataType.bits`.
        bits: u8,
        /// `DLDataType.lanes`.
        lanes: u16,
    },
}

impl ScalarKind {
    /// Size in bytes.
    pub const fn size(self) -> usize {
        use ScalarKind::*;
        match self {
            Bool | Char | I8 | U8 => 1,
            I16 | U16 | F16 | BF16 => 2,
            I32 | U32 | F32 | ComplexF16 => 4,
            I64 | U64 | F64 | ComplexF32 => 8,
            ComplexF64 => 16,
            Pointer => std::mem::size_of::<usize>(),
            Bytes(n) | PascalString(n) => n,
            DLPackOther { bits, lanes, .. } => (bits as usize * lanes as usize).div_ceil(8),
        }
    }

    /// Whether the byte order matters for this kind.
    pub fn has_byte_order(self) -> bool {
        use ScalarKind::*;
        !matches!(self, Bool | Char | I8 | U8 | Bytes(_) | PascalString(_))
    }

    /// The name Python users know it by (numpy's dtype names where they exist).
    pub fn name(self) -> String {
        use ScalarKind::*;
        match self {
            Bool => "bool".into(),
            Char => "char".into(),
            I8 => "int8".into(),
            U8 => "uint8".into(),
            I16 => "int16".into(),
            U16 => "uint16".into(),
            I32 => "int32".into(),
            U32 => "uint32".into(),
            I64 => "int64".into(),
            U64 => "uint64".into(),
            F16 => "float16".into(),
            F32 => "float32".into(),
            F64 => "float64".into(),
            ComplexF16 => "complex32".into(),
            ComplexF32 => "complex64".into(),
            ComplexF64 => "complex128".into(),
            Pointer => "pointer".into(),
            Bytes(n) => format!("bytes{n}"),
            PascalString(n) => format!("pascal-string{n}"),
            BF16 => "bfloat16".into(),
            DLPackOther { code, bits, lanes } => {
                format!("DLPack type code {code}, {bits} bits, {lanes} lane(s)")
            }
        }
    }

    /// numpy's type code without the byte order (`f8`, `u2`, `c16`), for kinds numpy has.
    fn numpy_code(self) -> Option<&'static str> {
        use ScalarKind::*;
        Some(match self {
            Bool => "b1",
            I8 => "i1",
            U8 => "u1",
            I16 => "i2",
            U16 => "u2",
            I32 => "i4",
            U32 => "u4",
            I64 => "i8",
            U64 => "u8",
            F16 => "f2",
            F32 => "f4",
            F64 => "f8",
            ComplexF32 => "c8",
            ComplexF64 => "c16",
            Char
            | ComplexF16
            | BF16
            | Pointer
            | Bytes(_)
            | PascalString(_)
            | DLPackOther { .. } => return None,
        })
    }

    /// The format code that writes this kind with a standard-size prefix.
    fn standard_code(self) -> String {
        use ScalarKind::*;
        match self {
            Bool => "?".into(),
            Char => "c".into(),
            I8 => "b".into(),
            U8 => "B".into(),
            I16 => "h".into(),
            U16 => "H".into(),
            I32 => "i".into(),
            U32 => "I".into(),
            I64 => "q".into(),
            U64 => "Q".into(),
            F16 => "e".into(),
            F32 => "f".into(),
            F64 => "d".into(),
            ComplexF16 => "Ze".into(),
            ComplexF32 => "Zf".into(),
            ComplexF64 => "Zd".into(),
            Pointer if std::mem::size_of::<usize>() == 8 => "Q".into(),
            Pointer => "I".into(),
            Bytes(n) => format!("{n}s"),
            PascalString(n) => format!("{n}p"),
            BF16 => "E".into(),
            DLPackOther { code, bits, lanes } => format!("dlpack({code},{bits},{lanes})"),
        }
    }

    /// The unsigned integer kind of pointer width, which `Pointer` is equivalent to.
    fn pointer_equivalent() -> ScalarKind {
        if std::mem::size_of::<usize>() == 8 {
            ScalarKind::U64
        } else {
            ScalarKind::U32
        }
    }
}

/// One scalar: its kind and byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Scalar {
    /// What the bytes mean.
    pub kind: ScalarKind,
    /// Their byte order ([`Endian::NATIVE`] for one-byte kinds).
    pub endian: Endian,
}

impl Scalar {
    /// A scalar; the byte order of one-byte kinds is normalized to native.
    pub const fn new(kind: ScalarKind, endian: Endian) -> Scalar {
        let endian = match kind {
            ScalarKind::Bool
            | ScalarKind::Char
            | ScalarKind::I8
            | ScalarKind::U8
            | ScalarKind::Bytes(_)
            | ScalarKind::PascalString(_) => Endian::NATIVE,
            _ => endian,
        };
        Scalar { kind, endian }
    }

    /// A scalar in the machine's byte order.
    pub const fn native(kind: ScalarKind) -> Scalar {
        Scalar::new(kind, Endian::NATIVE)
    }

    /// Whether data of this scalar reads as `expected` (equivalent kinds such as `'P'` and
    /// the pointer-width unsigned integer match; byte orders must agree).
    #[inline]
    pub(crate) fn matches(self, expected: Scalar) -> Result<(), Mismatch> {
        scalar_matches(self, expected)
    }
}

/// One field of a struct item (`T{...}` or a compound format such as `'l x d'`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// The `:name:` the format gave it, if any.
    pub name: Option<String>,
    /// Byte offset from the start of the item.
    pub offset: usize,
    /// What is stored there.
    pub layout: ItemLayout,
}

/// The shape of an item: a scalar, a fixed-size array, or a struct.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemKind {
    /// A single scalar.
    Scalar(Scalar),
    /// A sub-array: a repeat count (`'3d'`) or an explicit shape (`'(2,3)d'`), C order.
    Array {
        /// The sub-array's shape (one entry for a repeat count).
        shape: Vec<usize>,
        /// The element of the sub-array.
        elem: Box<ItemLayout>,
    },
    /// Fields at byte offsets, in format order; padding bytes belong to no field.
    Struct(Vec<Field>),
}

/// A complete item description: size, alignment and structure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemLayout {
    /// Size of one item in bytes (what the exporter's `itemsize` must equal).
    pub size: usize,
    /// Required alignment in bytes: the native alignment for `'@'` formats, 1 for standard
    /// ones. For a Rust element type it is `align_of::<T>()`.
    pub align: usize,
    /// What the item is made of.
    pub kind: ItemKind,
}

/// Why two item layouts did not match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// Same scalar kind, other byte order (the usual cause: `'>d'` data read as `f64`).
    ByteOrder {
        /// Byte order of the buffer's data.
        found: Endian,
        /// Byte order of the element type.
        expected: Endian,
    },
    /// Different kinds, sizes or field offsets.
    Layout,
    /// A struct field whose name differs.
    FieldName {
        /// Field position.
        index: usize,
        /// Name in the element type.
        expected: String,
        /// Name in the buffer's format.
        found: String,
    },
}

impl ItemLayout {
    /// A scalar item with its natural size and the given alignment.
    pub const fn scalar(scalar: Scalar, align: usize) -> ItemLayout {
        ItemLayout {
            size: scalar.kind.size(),
            align,
            kind: ItemKind::Scalar(scalar),
        }
    }

    /// A sub-array of `shape` items of `elem` (C order, no padding between items).
    pub fn array(shape: Vec<usize>, elem: ItemLayout) -> ItemLayout {
        let count: usize = shape.iter().product();
        ItemLayout {
            size: elem.size * count,
            align: elem.align,
            kind: ItemKind::Array {
                shape,
                elem: Box::new(elem),
            },
        }
    }

    /// The scalar, if this item is one.
    pub fn as_scalar(&self) -> Option<Scalar> {
        match self.kind {
            ItemKind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// Whether a buffer whose items are described by `self` can be read as items described
    /// by `expected` (typically `T::layout()` of an [`Element`](crate::Element)).
    ///
    /// Equivalent spellings match: nested sub-arrays are flattened (`'(2,3)d'` is `'6d'`),
    /// a struct of identical unnamed fields packed back to back is the array it spells
    /// (`'dd'` is `'2d'`), a one-item array is its item, and `'P'` is the unsigned integer
    /// of pointer width. Field names are compared only where both sides have them.
    ///
    /// Each layout is normalized once and the two are compared in one walk, so the time grows
    /// with the number of nodes `n` of the layouts, as `n log n` at worst, whatever their
    /// nesting (64 levels of `T{...}` take microseconds).
    pub fn matches(&self, expected: &ItemLayout) -> Result<(), Mismatch> {
        if self.size != expected.size {
            return Err(Mismatch::Layout);
        }
        // the common case, checked on every acquisition: two plain scalars
        if let (ItemKind::Scalar(f), ItemKind::Scalar(e)) = (&self.kind, &expected.kind) {
            if !matches!(f.kind, ScalarKind::Bytes(_) | ScalarKind::PascalString(_)) {
                return scalar_matches(*f, *e);
            }
        }
        // each side normalized once, then compared in one walk: time proportional to the
        // size of the layouts (see `normal`), whatever their nesting
        normal::matches(self, expected)
    }

    /// [`matches`](ItemLayout::matches) against an expected plain scalar, without building its
    /// layout (the acquisition fast path for scalar element types).
    #[inline]
    pub fn matches_scalar(&self, expected: Scalar) -> Result<(), Mismatch> {
        match self.kind {
            ItemKind::Scalar(found)
                if !matches!(
                    found.kind,
                    ScalarKind::Bytes(_) | ScalarKind::PascalString(_)
                ) =>
            {
                if self.size != expected.kind.size() {
                    return Err(Mismatch::Layout);
                }
                scalar_matches(found, expected)
            }
            _ => self.matches(&ItemLayout::scalar(expected, 1)),
        }
    }

    /// A short description in numpy's words, for error messages: `float64`, `'>f8'` (numpy's
    /// `dtype.str` for data in the other byte order), `(3,) int32`,
    /// `struct {a: int32 @0, b: float64 @8}`.
    pub fn describe(&self) -> String {
        match &self.kind {
            ItemKind::Scalar(s) => {
                if s.kind.has_byte_order() && s.endian != Endian::NATIVE {
                    match s.kind.numpy_code() {
                        Some(code) => format!("'{}{code}'", s.endian.prefix()),
                        None => format!("{} {}", s.endian.name(), s.kind.name()),
                    }
                } else {
                    s.kind.name()
                }
            }
            ItemKind::Array { shape, elem } => {
                format!("{} {}", shape_tuple(shape), elem.describe())
            }
            ItemKind::Struct(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|f| {
                        format!(
                            "{}: {} @{}",
                            f.name.as_deref().unwrap_or("_"),
                            f.layout.describe(),
                            f.offset
                        )
                    })
                    .collect();
                format!("struct {{{}}}", parts.join(", "))
            }
        }
    }

    /// Writes the canonical PEP 3118 format of this item; `top` items in native byte order
    /// are written without a prefix (`'d'`), everything else with explicit `<`/`>` so that
    /// no native alignment padding is implied.
    fn write_format(&self, out: &mut String, top: bool) {
        match &self.kind {
            ItemKind::Scalar(s) => {
                if !(top && s.endian == Endian::NATIVE) && s.kind.has_byte_order() {
                    out.push(s.endian.prefix());
                }
                if top && s.kind == ScalarKind::Pointer {
                    out.push('P');
                } else {
                    out.push_str(&s.kind.standard_code());
                }
            }
            ItemKind::Array { shape, elem } => {
                // nested sub-arrays ('(2)3d' parses as (2,) of (3,) d) are written as one
                // shape: the grammar has a single shape per item
                let mut dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
                let mut elem: &ItemLayout = elem;
                while let ItemKind::Array { shape, elem: inner } = &elem.kind {
                    dims.extend(shape.iter().map(|d| d.to_string()));
                    elem = inner;
                }
                out.push('(');
                out.push_str(&dims.join(","));
                out.push(')');
                elem.write_format(out, top);
            }
            ItemKind::Struct(fields) => {
                out.push_str("T{");
                let mut at = 0;
                for f in fields {
                    push_padding(out, f.offset.saturating_sub(at));
                    f.layout.write_format(out, false);
                    if let Some(name) = &f.name {
                        out.push(':');
                        out.push_str(name);
                        out.push(':');
                    }
                    at = f.offset + f.layout.size;
                }
                push_padding(out, self.size.saturating_sub(at));
                out.push('}');
            }
        }
    }

    /// The canonical PEP 3118 format string (what pybuf exports and prints).
    pub fn to_format(&self) -> String {
        let mut s = String::new();
        self.write_format(&mut s, true);
        s
    }
}

impl fmt::Display for ItemLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_format())
    }
}

fn push_padding(out: &mut String, n: usize) {
    match n {
        0 => {}
        1 => out.push('x'),
        n => {
            out.push_str(&n.to_string());
            out.push('x');
        }
    }
}

#[inline]
pub(super) fn scalar_matches(found: Scalar, expected: Scalar) -> Result<(), Mismatch> {
    if canonical_kind(found.kind) != canonical_kind(expected.kind) {
        Err(Mismatch::Layout)
    } else if found.endian != expected.endian {
        Err(Mismatch::ByteOrder {
            found: found.endian,
            expected: expected.endian,
        })
    } else {
        Ok(())
    }
}

#[inline]
pub(super) fn canonical_kind(kind: ScalarKind) -> ScalarKind {
    match kind {
        ScalarKind::Pointer => ScalarKind::pointer_equivalent(),
        ScalarKind::Char => ScalarKind::U8,
        k => k,
    }
}

pub(crate) fn shape_tuple(shape: &[usize]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => {
            let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            format!("({})", dims.join(", "))
        }
    }
}
