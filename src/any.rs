//! [`AnyBuffer`]: an untyped handle for inspection and dispatch on the element type.

use ndarray::{Dimension, Ix1, IxDyn, Order};
use pyo3::prelude::*;

use crate::acquire;
use crate::borrow;
use crate::buffer::Buffer;
use crate::copy;
use crate::element::Element;
use crate::error::{Access, Error};
use crate::format::{Endian, ItemKind, ItemLayout, ScalarKind};
use crate::layout::Layout;
use crate::source::{Acquired, Request, Source};

/// An acquired buffer whose element type is not fixed yet.
///
/// Use it to look at what an object exports (format, parsed item, shape, strides,
/// suboffsets, alignment) and to dispatch on the element type:
///
/// ```
/// use pybuf::{AnyBuffer, ElementKind};
/// use pyo3::prelude::*;
///
/// fn total(obj: &Bound<'_, PyAny>) -> Result<f64, pybuf::Error> {
///     let any = AnyBuffer::get(obj)?;
///     Ok(match any.element_kind() {
///         ElementKind::F64 => any.typed::<f64, ndarray::IxDyn>()?.to_vec()?.iter().sum(),
///         ElementKind::I32 => any.typed::<i32, ndarray::IxDyn>()?.to_vec()?.iter().map(|&x| x as f64).sum(),
///         ElementKind::U8 => any.typed::<u8, ndarray::IxDyn>()?.to_vec()?.iter().map(|&x| x as f64).sum(),
///         _ => return Err(pybuf::Error::NotABuffer { type_name: "unsupported".into() }),
///     })
/// }
///
/// Python::attach(|py| {
///     let a = py.eval(c"__import__('array').array('i', [1, 2, 3])", None, None).unwrap();
///     assert_eq!(total(&a).unwrap(), 6.0);
/// });
/// ```
pub struct AnyBuffer {
    raw: Acquired,
    layout: Layout<IxDyn>,
    item: Result<ItemLayout, Error>,
}

/// The element type of a buffer in native byte order, for `match`-based dispatch; anything
/// else (other byte order, records, sub-arrays, byte strings) is [`ElementKind::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ElementKind {
    /// `bool`
    Bool,
    /// `i8`
    I8,
    /// `u8` (also `'c'`)
    U8,
    /// `i16`
    I16,
    /// `u16`
    U16,
    /// `i32`
    I32,
    /// `u32`
    U32,
    /// `i64`
    I64,
    /// `u64` (also `'P'` on 64-bit)
    U64,
    /// `half::f16`
    F16,
    /// `half::bf16` (from DLPack only: bfloat16 has no PEP 3118 code)
    BF16,
    /// `f32`
    F32,
    /// `f64`
    F64,
    /// `Complex<f32>`
    ComplexF32,
    /// `Complex<f64>`
    ComplexF64,
    /// Anything else; see [`AnyBuffer::item_layout`].
    Other,
}

impl ElementKind {
    /// The kind of buffers that an element type `T` reads in native byte order (`F64` for
    /// `f64`, `Bool` for `bool` and [`Bool`](crate::Bool)); [`ElementKind::Other`] for
    /// everything else (byte-order types, arrays, records).
    ///
    /// ```
    /// use pybuf::ElementKind;
    /// assert_eq!(ElementKind::of::<f32>(), ElementKind::F32);
    /// assert_eq!(ElementKind::of::<pybuf::be::F64>(), ElementKind::Other);
    /// ```
    pub fn of<T: Element>() -> ElementKind {
        match T::SCALAR {
            Some(scalar) if scalar.endian == Endian::NATIVE => kind_of_scalar(scalar.kind),
            _ => ElementKind::Other,
        }
    }

    /// numpy's name of the kind (`float64`, `uint8`, `bool`, `complex128`); `"other"` for
    /// [`ElementKind::Other`].
    pub fn name(self) -> &'static str {
        match self {
            ElementKind::Bool => "bool",
            ElementKind::I8 => "int8",
            ElementKind::U8 => "uint8",
            ElementKind::I16 => "int16",
            ElementKind::U16 => "uint16",
            ElementKind::I32 => "int32",
            ElementKind::U32 => "uint32",
            ElementKind::I64 => "int64",
            ElementKind::U64 => "uint64",
            ElementKind::F16 => "float16",
            ElementKind::BF16 => "bfloat16",
            ElementKind::F32 => "float32",
            ElementKind::F64 => "float64",
            ElementKind::ComplexF32 => "complex64",
            ElementKind::ComplexF64 => "complex128",
            ElementKind::Other => "other",
        }
    }
}

/// The kind of a native scalar.
fn kind_of_scalar(kind: ScalarKind) -> ElementKind {
    match kind {
        ScalarKind::Bool => ElementKind::Bool,
        ScalarKind::I8 => ElementKind::I8,
        ScalarKind::U8 | ScalarKind::Char => ElementKind::U8,
        ScalarKind::I16 => ElementKind::I16,
        ScalarKind::U16 => ElementKind::U16,
        ScalarKind::I32 => ElementKind::I32,
        ScalarKind::U32 => ElementKind::U32,
        ScalarKind::I64 => ElementKind::I64,
        ScalarKind::U64 => ElementKind::U64,
        ScalarKind::Pointer if cfg!(target_pointer_width = "64") => ElementKind::U64,
        ScalarKind::Pointer => ElementKind::U32,
        ScalarKind::F16 => ElementKind::F16,
        ScalarKind::BF16 => ElementKind::BF16,
        ScalarKind::F32 => ElementKind::F32,
        ScalarKind::F64 => ElementKind::F64,
        ScalarKind::ComplexF32 => ElementKind::ComplexF32,
        ScalarKind::ComplexF64 => ElementKind::ComplexF64,
        _ => ElementKind::Other,
    }
}

// SAFETY: the handle owns its acquisition (`Acquired` is Send + Sync) and immutable layout
// facts; the raw pointer in `layout` is only dereferenced by `to_bytes` under a borrow from
// the thread-safe registry, or after conversion into a `Buffer` (which is Send itself).
// Dropping releases through `release::release`, which is safe on any thread (queued when the
// thread is not attached).
unsafe impl Send for AnyBuffer {}
// SAFETY: `&AnyBuffer` only reads immutable facts and copies under a shared registry borrow.
unsafe impl Sync for AnyBuffer {}

impl AnyBuffer {
    /// Acquires a buffer for reading, whatever its element type. Fails only for exporter
    /// refusals and invalid layouts; an unparseable format is reported by
    /// [`item_layout`](AnyBuffer::item_layout) and [`typed`](AnyBuffer::typed).
    pub fn get(obj: &Bound<'_, PyAny>) -> Result<Self, Error> {
        acquire::untyped(obj, Request::Read)
    }

    /// Acquires a buffer for writing ([`Error::ReadOnly`] if the memory is read-only).
    pub fn get_mut(obj: &Bound<'_, PyAny>) -> Result<Self, Error> {
        acquire::untyped(obj, Request::Write)
    }

    /// Acquires through DLPack only (see [`Buffer::from_dlpack`]).
    pub fn from_dlpack(obj: &Bound<'_, PyAny>) -> Result<Self, Error> {
        acquire::untyped_from(obj, Source::DLPack, Request::Read)
    }

    /// Acquires through DLPack only, for writing (see [`Buffer::from_dlpack_mut`]).
    pub fn from_dlpack_mut(obj: &Bound<'_, PyAny>) -> Result<Self, Error> {
        acquire::untyped_from(obj, Source::DLPack, Request::Write)
    }

    /// Acquires through `__array_interface__` only (see [`Buffer::from_array_interface`]).
    pub fn from_array_interface(obj: &Bound<'_, PyAny>) -> Result<Self, Error> {
        acquire::untyped_from(obj, Source::ArrayInterface, Request::Read)
    }

    /// Acquires through `__array_interface__` only, for writing.
    pub fn from_array_interface_mut(obj: &Bound<'_, PyAny>) -> Result<Self, Error> {
        acquire::untyped_from(obj, Source::ArrayInterface, Request::Write)
    }

    /// Acquires through `__array_struct__` only (see [`Buffer::from_array_struct`]).
    pub fn from_array_struct(obj: &Bound<'_, PyAny>) -> Result<Self, Error> {
        acquire::untyped_from(obj, Source::ArrayStruct, Request::Read)
    }

    /// Acquires through `__array_struct__` only, for writing.
    pub fn from_array_struct_mut(obj: &Bound<'_, PyAny>) -> Result<Self, Error> {
        acquire::untyped_from(obj, Source::ArrayStruct, Request::Write)
    }

    pub(crate) fn from_parts(
        raw: Acquired,
        layout: Layout<IxDyn>,
        item: Result<ItemLayout, Error>,
    ) -> Self {
        AnyBuffer { raw, layout, item }
    }

    /// The protocol the memory was acquired through.
    pub fn source(&self) -> Source {
        self.raw.source()
    }

    /// Number of items along each axis.
    pub fn shape(&self) -> &[usize] {
        self.layout.shape.slice()
    }

    /// Byte strides per axis.
    pub fn strides(&self) -> &[isize] {
        self.layout.strides()
    }

    /// Suboffsets, when the buffer uses indirection.
    pub fn suboffsets(&self) -> Option<&[isize]> {
        self.layout.suboffsets.as_deref()
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.layout.ndim()
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.layout.len
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.layout.len == 0
    }

    /// Bytes per item, as the exporter reported.
    pub fn itemsize(&self) -> usize {
        self.layout.itemsize
    }

    /// The exporter's format string, verbatim (`"B"` when it gave none; lossily decoded if it
    /// is not UTF-8).
    pub fn format(&self) -> &str {
        self.raw.format()
    }

    /// The parsed item, or why it could not be parsed (or disagrees with `itemsize`).
    pub fn item_layout(&self) -> Result<&ItemLayout, &Error> {
        self.item.as_ref()
    }

    /// The element type for dispatch.
    pub fn element_kind(&self) -> ElementKind {
        let Ok(ItemLayout {
            kind: ItemKind::Scalar(s),
            ..
        }) = &self.item
        else {
            return ElementKind::Other;
        };
        if s.endian != Endian::NATIVE {
            return ElementKind::Other;
        }
        kind_of_scalar(s.kind)
    }

    /// Whether the memory is read-only.
    pub fn is_readonly(&self) -> bool {
        self.raw.is_readonly()
    }

    /// Whether the items are C-contiguous (precise PEP 3118 sense).
    pub fn is_c_contiguous(&self) -> bool {
        self.layout.is_c_contiguous()
    }

    /// Whether the items are Fortran-contiguous.
    pub fn is_f_contiguous(&self) -> bool {
        self.layout.is_f_contiguous()
    }

    /// The largest power of two (up to 4096) that divides the base address and every
    /// stride that moves between items: items are aligned to it. 4096 for an empty buffer.
    pub fn alignment(&self) -> usize {
        let mut align = 4096usize;
        while align > 1 && self.layout.first_misaligned(align).is_some() {
            align /= 2;
        }
        align
    }

    /// The exporting object.
    pub fn obj<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        self.raw.obj(py).unwrap_or_else(|| py.None().into_bound(py))
    }

    /// Copies the raw bytes of every item, in C or F order (any layout).
    pub fn to_bytes(&self, order: Order) -> Result<Vec<u8>, Error> {
        // SAFETY: the layout is this handle's, whose buffer stays held while `self` lives.
        let _borrow = unsafe { borrow::acquire_layout(&self.layout, Access::Shared)? };
        let n = self.layout.len * self.layout.itemsize;
        let mut out = vec![0u8; n];
        // SAFETY: `out` holds every item's bytes, is fresh memory, and the shared borrow keeps
        // every other pybuf borrow from writing during the copy (writers outside the registry
        // are the documented trust boundary).
        unsafe { copy::gather(&self.layout, out.as_mut_ptr(), order) };
        Ok(out)
    }

    /// Turns this handle into a typed one, with the same checks as [`Buffer::get`] (element
    /// type, item size, number of dimensions), without acquiring the buffer again.
    pub fn typed<T: Element, D: Dimension>(self) -> Result<Buffer<T, D>, Error> {
        let AnyBuffer { raw, layout, item } = self;
        acquire::retype(raw, layout, &item?)
    }

    /// Reads the buffer's bytes as a 1-D buffer of `T`, whatever its format says: numpy's
    /// `np.frombuffer(x, dtype)`, zerocopy's `FromBytes::ref_from_bytes`. For records in raw
    /// bytes (`bytes`, `bytearray`, `mmap`, a file read into memory) and for exporters whose
    /// format does not describe their items (ctypes structures with `_pack_` export `'B'`).
    ///
    /// Checks, in order:
    /// - the buffer is C-contiguous, its bytes back to back in C order
    ///   ([`Error::NotContiguous`]); the bytes of a 0-d buffer are its one item;
    /// - its length in bytes is a multiple of `size_of::<T>()` (not zero)
    ///   ([`Error::ByteLength`]): the result has `len_bytes / size_of::<T>()` items.
    ///
    /// The format is not consulted: that is the reinterpretation. Everything else is checked
    /// as for any buffer, when it matters: alignment when a view is asked for
    /// ([`Error::Misaligned`] from [`Buffer::read`]; [`Buffer::read_or_copy`] copies
    /// misaligned data instead, and `#[repr(C, packed)]` records have alignment 1), the
    /// validity of every item that is read (a `bool` field must be 0 or 1), writes only for
    /// writable memory ([`AnyBuffer::get_mut`]), and borrows against every other borrow of the
    /// same memory.
    ///
    /// ```
    /// use pybuf::AnyBuffer;
    /// use pyo3::prelude::*;
    ///
    /// #[derive(Clone, Copy, Debug, PartialEq, pybuf::Element)]
    /// #[repr(C, packed)]
    /// struct Sample {
    ///     id: u16,
    ///     value: f32,
    /// }
    ///
    /// Python::attach(|py| -> PyResult<()> {
    ///     let data = py.eval(c"__import__('struct').pack('<HfHf', 1, 0.5, 2, -1.5)", None, None)?;
    ///     let samples = AnyBuffer::get(&data)?.reinterpret::<Sample>()?;
    ///     assert_eq!(samples.len(), 2);
    ///     let second = samples.item(1)?;
    ///     assert_eq!({ second.value }, -1.5);
    ///
    ///     let odd = py.eval(c"bytes(7)", None, None)?;
    ///     let err = AnyBuffer::get(&odd)?.reinterpret::<Sample>().unwrap_err();
    ///     assert!(err.to_string().contains("multiple of 6"));
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub fn reinterpret<T: Element>(self) -> Result<Buffer<T, Ix1>, Error> {
        if !self.layout.is_c_contiguous() {
            return Err(Error::NotContiguous {
                type_name: self.raw.exporter_name(),
                shape: self.shape().to_vec(),
                strides: self.strides().to_vec(),
            });
        }
        let size = std::mem::size_of::<T>();
        let len = self.layout.len * self.layout.itemsize;
        if size == 0 || len % size != 0 {
            return Err(Error::ByteLength {
                type_name: self.raw.exporter_name(),
                element: T::type_name(),
                element_size: size,
                len,
            });
        }
        let layout = self.layout.contiguous_bytes_as(size);
        Ok(Buffer::from_validated(self.raw, layout))
    }

    /// The [`Error::UnsupportedElement`] for this buffer: `expected` names the element types
    /// that were handled (numpy's names, as [`ElementKind::name`] gives them). What
    /// [`dispatch!`](crate::dispatch!) returns for element types it was not given.
    pub fn unsupported_element(&self, expected: &[&str]) -> Error {
        match acquire::found(&self.raw, self.item.as_ref().ok()) {
            Ok(found) => Error::UnsupportedElement {
                expected: expected.join(", "),
                found: Box::new(found),
            },
            Err(err) => err,
        }
    }
}

impl std::fmt::Debug for AnyBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnyBuffer")
            .field("format", &self.format())
            .field("shape", &self.shape())
            .field("strides", &self.strides())
            .field("readonly", &self.is_readonly())
            .finish()
    }
}

/// An `AnyBuffer` argument of a `#[pyfunction]` makes a read request ([`AnyBuffer::get`]):
/// the function then inspects the element type and dispatches on it.
///
/// ```
/// use pybuf::AnyBuffer;
/// use pyo3::prelude::*;
///
/// #[pyfunction]
/// fn dtype_of(x: AnyBuffer) -> String {
///     format!("{:?}", x.element_kind())
/// }
/// # fn main() {}
/// ```
impl<'a, 'py> FromPyObject<'a, 'py> for AnyBuffer {
    type Error = Error;

    fn extract(obj: pyo3::Borrowed<'a, 'py, PyAny>) -> Result<Self, Self::Error> {
        AnyBuffer::get(&obj)
    }
}
