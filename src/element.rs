//! Element types: the Rust types a buffer's items can be read as.
//!
//! | format (this machine, little-endian LP64) | Rust element |
//! |---|---|
//! | `?` | `bool` (bytes other than 0/1 are refused when read) or [`Bool`](crate::Bool) (every byte) |
//! | `b` `h` `i` `q`, `l` `n` (native size) | `i8` `i16` `i32` `i64`, `i64` `isize` |
//! | `B` `H` `I` `Q`, `L` `N` (native size) | `u8` `u16` `u32` `u64`, `u64` `usize` |
//! | `<l` `=l` `>l` `!l` (standard size) | `i32`, `i32`, [`be::I32`], [`be::I32`] |
//! | `c` | `u8` |
//! | `e` `f` `d` | `half::f16` `f32` `f64` |
//! | none (DLPack `kDLBfloat` only) | `half::bf16` |
//! | `Zf` `Zd` | `Complex<f32>` `Complex<f64>` |
//! | `>d`, `!d` (big-endian) | [`be::F64`] (align 1: also reads misaligned data) |
//! | `<d` unaligned | [`le::F64`] or `zerocopy::Unalign<f64>` |
//! | `3d`, `(2,3)d` | `[f64; 3]`, `[[f64; 3]; 2]` or `[f64; 6]` |
//! | `B` with a last axis of length 3 (H×W×3 images), `f` with one of 3 (N×3 points) | `[u8; 3]`, `[f32; 3]`: the array takes the axis (see below) |
//! | `5s` | `[u8; 5]` |
//! | `P` | `usize` |
//! | `T{...}` | a `#[repr(C)]` struct with `#[derive(pybuf::Element)]` |
//!
//! # Arrays take a trailing axis
//!
//! `[E; N]` reads items that are `[E; N]` (formats `'3d'`, `'(3)B'`), and also buffers of `E`
//! with one more axis than the handle, whose last axis has length `N` and holds its items back
//! to back (byte stride `size_of::<E>()`): a numpy H×W×3 `uint8` image is a
//! `Buffer2<[u8; 3]>`, an N×3 `float32` array a `Buffer1<[f32; 3]>`. The typed buffer then has
//! one axis fewer and `N`-item elements; everything else (alignment, strides of the other
//! axes, borrows, writes) is checked as for any element type. A last axis of another length,
//! or one whose items are not back to back (`img[..., ::-1]`, a channels-first array
//! transposed), is refused with [`Error::TrailingAxis`].
//!
//! # Records: `#[derive(Element)]`
//!
//! A `#[repr(C)]` (or `#[repr(C, packed)]`, `packed(N)`) struct whose fields are all
//! `Element`s derives `Element` (feature `derive`, on by default) and then reads buffers whose
//! items are structs: numpy structured arrays and ctypes `Structure` arrays. Its layout is a
//! `T{...}` with one field per Rust field (name, `offset_of!` offset, the field type's
//! layout), the struct's size and alignment; a buffer matches when the offsets, kinds, byte
//! orders and size agree, and the names agree where both sides have them
//! ([`ItemLayout::matches`]). Padding is never read as a value: a format describes it with
//! `x` (or implies it by the native alignment rules), and records with `bool` fields are
//! validated field by field. Nor is it ever written: Rust leaves the padding of its values
//! uninitialized, so records with padding ([`Element::HAS_PADDING`]) are stored field by field
//! by `set_item` and `copy_from_slice` (the buffer's padding bytes keep their bytes), and
//! mutable views of them are refused; `#[pybuf(no_padding)]` makes padding a compile error.
//!
//! | Python | Rust |
//! |---|---|
//! | `np.dtype([('a','i4'),('b','f8')], align=True)`, `'T{i:a:xxxxd:b:}'` | `#[repr(C)] struct R { a: i32, b: f64 }` |
//! | the same without `align=True`, `'T{i:a:=d:b:}'` | `#[repr(C, packed)] struct R { a: i32, b: f64 }` |
//! | sub-array field `('v', 'f4', (3,))`, nested dtype | `v: [f32; 3]`, a field of a derived record type |
//! | `'>f8'` field, `BigEndianStructure` | `pybuf::be::F64` field |
//! | ctypes `c_char * 8` field | `[u8; 8]` |
//! | ctypes `_pack_ = 1` | `#[repr(C, packed)]` |
//! | other names in the format, or none | `#[pybuf(name = "...")]` on a field, `#[pybuf(ignore_names)]` on the struct |
//!
//! ```
//! use pybuf::format::parse;
//! use pybuf::Element;
//!
//! #[derive(Clone, Copy, pybuf::Element)]
//! #[repr(C)]
//! struct Particle {
//!     id: u32,
//!     pos: [f32; 3],
//!     alive: bool,
//! }
//!
//! assert_eq!(Particle::layout().to_format(), "T{<I:id:(3)<f:pos:?:alive:3x}");
//! // what numpy exports for np.dtype([('id','u4'),('pos','f4',(3,)),('alive','?')], align=True)
//! let numpy = parse("T{I:id:(3)f:pos:?:alive:}").unwrap(); // padded to 20 bytes by the native rules
//! assert!(numpy.matches(&Particle::layout()).is_ok());
//! assert!(!Particle::is_valid(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0]));
//! ```
//!
//! With a `pybuf::Buffer1<Particle>` the records are then read like any other element. The
//! derive refuses at compile time what can never match or cannot be read soundly: structs
//! without `#[repr(C)]`, enums, unions, structs without fields, lifetime parameters, fields
//! whose type is not an `Element`, names that no format can carry; see the derive's
//! documentation for the full list and the attributes.

use std::marker::PhantomData;
use std::ops::Range;

use ndarray::{Dimension, Order};

use crate::copy;
use crate::error::Error;
use crate::format::{Endian, ItemLayout, Scalar, ScalarKind};
use crate::layout::Layout;

/// A Rust type whose values can be read from (and written to) buffer memory bytewise.
///
/// # Safety
///
/// Implementing this trait promises, for `T: Element`:
/// - `T::layout().size == size_of::<T>()` and `T::layout().align == align_of::<T>()`;
/// - `T::layout()` describes exactly how a value of `T` is laid out in memory (scalar kinds,
///   byte order, sub-arrays, field offsets), so that memory matching the layout holds the
///   value Python means;
/// - every byte that `T::layout()` gives to a scalar (its
///   [`value_ranges`](ItemLayout::value_ranges)) is initialized in every value of `T`: when
///   pybuf stores a `T` that may have padding into Python's memory, it copies those bytes and
///   only those;
/// - if [`Element::HAS_PADDING`] is `false`, every byte of every value of `T` is initialized
///   (no padding anywhere, also not inside fields or array elements), so values may be copied
///   whole into Python's memory and mutable views may hand out `&mut T` into it. `true`, the
///   default, is always allowed;
/// - every byte pattern of `size_of::<T>()` *initialized* bytes for which
///   [`Element::is_valid`] returns `true` is a valid `T`, and if [`Element::ALWAYS_VALID`] is
///   `true`, every such pattern is (so `T` has no invalid values and no references; padding
///   bytes, which may hold anything, do not prevent it);
/// - `T` has no drop glue and no interior mutability (it is `Copy`);
/// - [`Element::SCALAR`], when `Some`, equals `T::layout().as_scalar()`.
pub unsafe trait Element: Copy + Send + Sync + 'static {
    /// Whether every initialized byte pattern is a valid `T` (false for `bool` and records
    /// holding one).
    const ALWAYS_VALID: bool = true;

    /// Whether values of `T` may contain padding: bytes that belong to no scalar and that
    /// Rust leaves uninitialized. `false` for scalars, byte-order types and arrays and
    /// records of them without gaps; `#[derive(Element)]` computes it through fields, arrays
    /// and nested records.
    ///
    /// Padding must never reach Python's memory, so for a type that may have it pybuf stores
    /// values field by field (leaving the destination's padding bytes as they were:
    /// [`Buffer::set_item`](crate::Buffer::set_item),
    /// [`copy_from_slice`](crate::Buffer::copy_from_slice)) and refuses mutable views
    /// ([`Buffer::write`](crate::Buffer::write), [`with_mut`](crate::Buffer::with_mut)) with
    /// [`Error::PaddedElement`]. Reading is not affected.
    ///
    /// The default is `true`, which is sound for every type; a hand-written impl for a type
    /// without padding sets it to `false` to allow mutable views and whole-value copies.
    const HAS_PADDING: bool = true;

    /// `Some(scalar)` when `T::layout()` is exactly that one scalar: lets acquisition match
    /// plain scalars without building a layout. Must agree with [`Element::layout`].
    const SCALAR: Option<Scalar> = None;

    /// The item this type's memory holds.
    fn layout() -> ItemLayout;

    /// Whether `bytes` (exactly `size_of::<T>()` of them) hold a valid `T`.
    fn is_valid(bytes: &[u8]) -> bool {
        let _ = bytes;
        true
    }

    /// The name used in messages (`f64`, `Complex<f32>`, `be::F64`).
    fn type_name() -> String {
        short_type_name(std::any::type_name::<Self>())
    }
}

/// Strips module paths from a type name: `num_complex::Complex<f32>` → `Complex<f32>`.
pub(crate) fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut segment = String::new();
    for c in full.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            segment.push(c);
        } else {
            out.push_str(segment.rsplit("::").next().unwrap_or(""));
            segment.clear();
            out.push(c);
        }
    }
    out.push_str(segment.rsplit("::").next().unwrap_or(""));
    out
}

macro_rules! native_scalar {
    ($($t:ty => $kind:expr),* $(,)?) => {$(
        // SAFETY: a native scalar of the stated kind, whose size and alignment are the type's
        // own; every bit pattern of an integer, float or complex of floats is a valid value,
        // and none of them has padding (a complex is two floats back to back).
        unsafe impl Element for $t {
            const HAS_PADDING: bool = false;
            const SCALAR: Option<Scalar> = Some(Scalar::native($kind));

            fn layout() -> ItemLayout {
                ItemLayout::scalar(Scalar::native($kind), std::mem::align_of::<$t>())
            }
        }
    )*};
}

native_scalar! {
    i8 => ScalarKind::I8,
    u8 => ScalarKind::U8,
    i16 => ScalarKind::I16,
    u16 => ScalarKind::U16,
    i32 => ScalarKind::I32,
    u32 => ScalarKind::U32,
    i64 => ScalarKind::I64,
    u64 => ScalarKind::U64,
    f32 => ScalarKind::F32,
    f64 => ScalarKind::F64,
}

#[cfg(target_pointer_width = "64")]
native_scalar! { isize => ScalarKind::I64, usize => ScalarKind::U64 }
#[cfg(target_pointer_width = "32")]
native_scalar! { isize => ScalarKind::I32, usize => ScalarKind::U32 }

#[cfg(feature = "half")]
native_scalar! { half::f16 => ScalarKind::F16 }

// bfloat16 has no PEP 3118 code: only DLPack sources (`kDLBfloat`) deliver it.
#[cfg(feature = "half")]
native_scalar! { half::bf16 => ScalarKind::BF16 }

#[cfg(feature = "complex")]
native_scalar! {
    num_complex::Complex<f32> => ScalarKind::ComplexF32,
    num_complex::Complex<f64> => ScalarKind::ComplexF64,
}

#[cfg(all(feature = "complex", feature = "half"))]
native_scalar! { num_complex::Complex<half::f16> => ScalarKind::ComplexF16 }

/// Rust's `bool`: items must be 0 or 1, which every read checks
/// ([`Error::InvalidValue`] otherwise). [`Bool`](crate::Bool)
/// reads every byte, for masks that may hold others and for guards held across calls into
/// Python.
// SAFETY: `bool` is one byte with alignment 1 and no padding; only 0 and 1 are valid, which
// `is_valid` checks and `ALWAYS_VALID = false` makes every reader call.
unsafe impl Element for bool {
    const ALWAYS_VALID: bool = false;
    const HAS_PADDING: bool = false;
    const SCALAR: Option<Scalar> = Some(Scalar::native(ScalarKind::Bool));

    fn layout() -> ItemLayout {
        ItemLayout::scalar(Scalar::native(ScalarKind::Bool), 1)
    }

    fn is_valid(bytes: &[u8]) -> bool {
        matches!(bytes, [0 | 1])
    }
}

// SAFETY: `[T; N]` is N values of T back to back with T's alignment and no padding between
// them (T's size is a multiple of its alignment), so its only padding is its elements' and
// its value bytes are theirs; valid exactly when every element is.
unsafe impl<T: Element, const N: usize> Element for [T; N] {
    const ALWAYS_VALID: bool = T::ALWAYS_VALID;
    const HAS_PADDING: bool = T::HAS_PADDING;

    fn layout() -> ItemLayout {
        ItemLayout::array(vec![N], T::layout())
    }

    fn is_valid(bytes: &[u8]) -> bool {
        let size = std::mem::size_of::<T>();
        if T::ALWAYS_VALID {
            true
        } else if size == 0 {
            // zero-size elements (`[[bool; 0]; 2]`): every one is the same empty byte string
            N == 0 || T::is_valid(&[])
        } else {
            bytes.len() == size * N && bytes.chunks_exact(size).all(|chunk| T::is_valid(chunk))
        }
    }

    fn type_name() -> String {
        format!("[{}; {N}]", T::type_name())
    }
}

// SAFETY: `Unalign<T>` has T's size and bytes with alignment 1 (zerocopy guarantees
// `#[repr(C, packed)]`), so T's layout with `align = 1` describes it; validity and padding
// are T's.
unsafe impl<T: Element> Element for zerocopy::Unalign<T> {
    const ALWAYS_VALID: bool = T::ALWAYS_VALID;
    const HAS_PADDING: bool = T::HAS_PADDING;

    fn layout() -> ItemLayout {
        ItemLayout {
            align: 1,
            ..T::layout()
        }
    }

    fn is_valid(bytes: &[u8]) -> bool {
        T::is_valid(bytes)
    }

    fn type_name() -> String {
        format!("Unalign<{}>", T::type_name())
    }
}

/// Stores values of `T` into Python's memory without ever storing a padding byte.
///
/// A type without padding ([`Element::HAS_PADDING`] `false`) is stored whole. For any other
/// type only the bytes that its layout gives to scalars are copied (they are initialized in
/// every value, by the `Element` contract); the destination's padding bytes keep the bytes
/// they had. So after a write Python's memory holds exactly what it held before in the padding
/// and the value's fields everywhere else, as when numpy assigns a record field by field.
pub(crate) struct ValueWriter<T> {
    /// The value byte ranges of `T` (within `size_of::<T>()`), or `None` to store whole.
    ranges: Option<Vec<Range<usize>>>,
    _element: PhantomData<fn(T)>,
}

impl<T: Element> ValueWriter<T> {
    pub(crate) fn new() -> Self {
        let ranges = T::HAS_PADDING.then(|| {
            let size = std::mem::size_of::<T>();
            // clamped to the type's size: a wrong hand-written layout must not make us write
            // outside the item
            T::layout()
                .value_ranges()
                .into_iter()
                .map(|r| r.start.min(size)..r.end.min(size))
                .filter(|r| !r.is_empty())
                .collect()
        });
        ValueWriter {
            ranges,
            _element: PhantomData,
        }
    }

    /// Stores the value bytes of `value` at `dst`, which needs no alignment; the bytes of
    /// `dst` that are padding in `T` are left as they were.
    ///
    /// # Safety
    /// `dst` is valid for writes of `size_of::<T>()` bytes, does not overlap `value`, and
    /// nothing else accesses those bytes during the call.
    pub(crate) unsafe fn write(&self, value: &T, dst: *mut u8) {
        match &self.ranges {
            // SAFETY: no padding, so every byte of `value` is initialized; `dst` is valid for
            // an unaligned write of a `T` (caller's promise).
            None => unsafe { dst.cast::<T>().write_unaligned(*value) },
            Some(ranges) => {
                let src = (value as *const T).cast::<u8>();
                for r in ranges {
                    // SAFETY: `r` lies within `size_of::<T>()` (clamped in `new`), so both
                    // ranges are in bounds; the source bytes are value bytes of `T`, which
                    // the `Element` contract says are initialized; `dst` does not overlap
                    // `value` (caller's promise).
                    unsafe {
                        std::ptr::copy_nonoverlapping(src.add(r.start), dst.add(r.start), r.len())
                    };
                }
            }
        }
    }

    /// Copies `src` (in `order`) into every item of `layout`, storing only value bytes.
    ///
    /// For a type with padding, the items are first gathered into a byte image, the values
    /// are laid over it field by field, and the image is scattered back: the padding bytes go
    /// back to where they came from.
    ///
    /// # Safety
    /// As for [`copy::scatter`]: `layout` describes writable memory that nothing else reads or
    /// writes during the call, with items of `size_of::<T>()` bytes; `src.len()` is
    /// `layout.len` and `src` does not overlap the memory.
    pub(crate) unsafe fn scatter<D: Dimension>(&self, layout: &Layout<D>, src: &[T], order: Order) {
        let size = std::mem::size_of::<T>();
        if self.ranges.is_none() {
            // SAFETY: the caller's promises; every byte of `src` is initialized (no padding).
            unsafe { copy::scatter(layout, src.as_ptr().cast::<u8>(), order) };
            return;
        }
        if size == 0 || src.is_empty() {
            return;
        }
        let mut image = vec![0u8; std::mem::size_of_val(src)];
        // SAFETY: `image` holds `len` items of `size` bytes and is fresh memory; the layout is
        // readable and nothing else touches it during the call (caller's promise).
        unsafe { copy::gather(layout, image.as_mut_ptr(), order) };
        for (item, value) in image.chunks_exact_mut(size).zip(src) {
            // SAFETY: `item` is `size_of::<T>()` bytes of our own image.
            unsafe { self.write(value, item.as_mut_ptr()) };
        }
        // SAFETY: the caller's promises; `image` holds `len` fully initialized items.
        unsafe { copy::scatter(layout, image.as_ptr(), order) };
    }
}

/// Refuses mutable views of element types that may have padding: through a `&mut T`, safe
/// code can store a whole `T`, padding included, so uninitialized bytes would reach Python's
/// memory.
pub(crate) fn check_mutable_view<T: Element>() -> Result<(), Error> {
    if !T::HAS_PADDING {
        return Ok(());
    }
    let layout = T::layout();
    Err(Error::PaddedElement {
        type_name: T::type_name(),
        size: layout.size,
        padding: layout.padding_ranges(),
    })
}

/// Maps zerocopy's byte-order marker types to [`Endian`].
pub trait KnownByteOrder: zerocopy::byteorder::ByteOrder + Send + Sync + 'static {
    /// The byte order.
    const ENDIAN: Endian;
}

impl KnownByteOrder for zerocopy::byteorder::BigEndian {
    const ENDIAN: Endian = Endian::Big;
}

impl KnownByteOrder for zerocopy::byteorder::LittleEndian {
    const ENDIAN: Endian = Endian::Little;
}

macro_rules! byte_order_scalar {
    ($($t:ident => $kind:expr),* $(,)?) => {$(
        // SAFETY: zerocopy's byte-order types are `[u8; N]` wrappers with alignment 1 that
        // hold the value in the byte order `O`, as the layout states; every bit pattern is
        // valid, and a byte array has no padding.
        unsafe impl<O: KnownByteOrder> Element for zerocopy::byteorder::$t<O> {
            const HAS_PADDING: bool = false;
            const SCALAR: Option<Scalar> = Some(Scalar::new($kind, O::ENDIAN));

            fn layout() -> ItemLayout {
                ItemLayout::scalar(Scalar::new($kind, O::ENDIAN), 1)
            }

            fn type_name() -> String {
                let module = match O::ENDIAN {
                    Endian::Big => "be",
                    Endian::Little => "le",
                };
                format!("{module}::{}", stringify!($t))
            }
        }
    )*};
}

byte_order_scalar! {
    I16 => ScalarKind::I16,
    U16 => ScalarKind::U16,
    I32 => ScalarKind::I32,
    U32 => ScalarKind::U32,
    I64 => ScalarKind::I64,
    U64 => ScalarKind::U64,
    F32 => ScalarKind::F32,
    F64 => ScalarKind::F64,
}

macro_rules! byte_order_module {
    ($(#[$doc:meta])* $name:ident, $order:ty) => {
        $(#[$doc])*
        pub mod $name {
            /// 16-bit signed integer.
            pub type I16 = zerocopy::byteorder::I16<$order>;
            /// 16-bit unsigned integer.
            pub type U16 = zerocopy::byteorder::U16<$order>;
            /// 32-bit signed integer.
            pub type I32 = zerocopy::byteorder::I32<$order>;
            /// 32-bit unsigned integer.
            pub type U32 = zerocopy::byteorder::U32<$order>;
            /// 64-bit signed integer.
            pub type I64 = zerocopy::byteorder::I64<$order>;
            /// 64-bit unsigned integer.
            pub type U64 = zerocopy::byteorder::U64<$order>;
            /// IEEE 754 binary32.
            pub type F32 = zerocopy::byteorder::F32<$order>;
            /// IEEE 754 binary64.
            pub type F64 = zerocopy::byteorder::F64<$order>;
        }
    };
}

byte_order_module! {
    /// Big-endian element types (formats `'>d'`, `'!i'`, numpy `'>f8'`), alignment 1.
    ///
    /// ```
    /// let x = pybuf::be::F64::new(1.5);
    /// assert_eq!(x.get(), 1.5);
    /// ```
    be, zerocopy::byteorder::BigEndian
}

byte_order_module! {
    /// Little-endian element types with alignment 1: read `'<d'` data at any address.
    le, zerocopy::byteorder::LittleEndian
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_alignments_agree_with_rust() {
        fn check<T: Element>() {
            let l = T::layout();
            assert_eq!(l.size, std::mem::size_of::<T>(), "{}", T::type_name());
            assert_eq!(l.align, std::mem::align_of::<T>(), "{}", T::type_name());
        }
        check::<i8>();
        check::<u64>();
        check::<isize>();
        check::<bool>();
        check::<f64>();
        check::<[f32; 3]>();
        check::<[[u16; 2]; 5]>();
        check::<be::F64>();
        check::<le::I32>();
        check::<zerocopy::Unalign<f64>>();
        #[cfg(feature = "half")]
        check::<half::f16>();
        #[cfg(feature = "half")]
        check::<half::bf16>();
        #[cfg(feature = "complex")]
        check::<num_complex::Complex<f64>>();
    }

    #[test]
    fn scalar_shortcut_agrees_with_layout() {
        fn check<T: Element>() {
            assert_eq!(T::SCALAR, T::layout().as_scalar(), "{}", T::type_name());
        }
        check::<i8>();
        check::<u16>();
        check::<i32>();
        check::<u64>();
        check::<isize>();
        check::<usize>();
        check::<f32>();
        check::<f64>();
        check::<bool>();
        check::<be::F64>();
        check::<le::I16>();
        #[cfg(feature = "half")]
        check::<half::f16>();
        #[cfg(feature = "half")]
        check::<half::bf16>();
        #[cfg(feature = "complex")]
        check::<num_complex::Complex<f32>>();
    }

    #[test]
    fn type_names_are_short() {
        assert_eq!(<f64 as Element>::type_name(), "f64");
        assert_eq!(<be::F64 as Element>::type_name(), "be::F64");
        assert_eq!(<[u8; 4] as Element>::type_name(), "[u8; 4]");
        #[cfg(feature = "complex")]
        assert_eq!(
            <num_complex::Complex<f32> as Element>::type_name(),
            "Complex<f32>"
        );
    }

    #[test]
    fn bool_validity() {
        assert!(bool::is_valid(&[0]));
        assert!(bool::is_valid(&[1]));
        assert!(!bool::is_valid(&[2]));
        assert!(!<[bool; 2]>::is_valid(&[1, 7]));
    }
}
