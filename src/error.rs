//! The one error type of pybuf, and how each variant becomes a Python exception.
//!
//! Every message says what was expected and what was found. The Python exception follows the
//! usual conventions: `TypeError` for element-type and dimension mismatches, `BufferError`
//! for exporter refusals, read-only buffers, borrow conflicts and layouts that cannot be
//! viewed without a copy, `ValueError` for length mismatches in copies and invalid values,
//! `IndexError` for out-of-bounds indices.

use std::fmt;

use pyo3::exceptions::{PyBufferError, PyImportError, PyIndexError, PyTypeError, PyValueError};
use pyo3::PyErr;

use crate::format::{shape_tuple, Endian, FormatError};
use crate::source::Source;

/// What a buffer turned out to be, for the "found" half of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The exporter's type name (`numpy.ndarray`, `bytes`, ...).
    pub type_name: String,
    /// The exporter's format string, verbatim (`'B'` when it gave none).
    pub format: String,
    /// The parsed item in numpy's words (`float32`, `'>f8'`, `(3,) uint8`, `struct {...}`), if
    /// the format parsed.
    pub item: Option<String>,
    /// The exporter's `itemsize`, when the message should show it: for items that are not one
    /// scalar (records, sub-arrays), and where it disagrees with the format.
    pub itemsize: Option<isize>,
    /// The buffer's shape.
    pub shape: Vec<usize>,
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} buffer of ", dims_word(self.shape.len()))?;
        match (&self.item, self.itemsize) {
            (Some(item), Some(n)) => write!(f, "{item} (format '{}', itemsize {n})", self.format)?,
            (Some(item), None) => write!(f, "{item} (format '{}')", self.format)?,
            (None, Some(n)) => write!(f, "format '{}' (itemsize {n})", self.format)?,
            (None, None) => write!(f, "format '{}'", self.format)?,
        }
        write!(f, " with shape {}", shape_or_scalar(&self.shape))?;
        write!(f, " from '{}'", self.type_name)
    }
}

/// What the caller asked for, for the "expected" half of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    /// The Rust element type (`f64`, `Complex<f32>`, `my_crate::Point`).
    pub type_name: String,
    /// The element in numpy's words (`float64`, `'>f8'`, `(3,) uint8`); `None` for records,
    /// which only have their Rust name.
    pub item: Option<String>,
    /// Its canonical format (`'d'`, `'Zf'`, `'T{<i:x:<i:y:}'`).
    pub format: String,
    /// Its size in bytes, when the message should show it (records, sub-arrays).
    pub itemsize: Option<usize>,
    /// The number of dimensions, or `None` for any ([`IxDyn`](type@ndarray::IxDyn)).
    pub ndim: Option<usize>,
    /// For `[E; N]` elements, which may also take the items of `E` with one more trailing
    /// axis of length `N`: `E` in numpy's words and `N`.
    pub trailing_axis: Option<(String, usize)>,
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ndim {
            Some(n) => write!(f, "a {} buffer", dims_word(n))?,
            None => write!(f, "a buffer")?,
        }
        match &self.item {
            Some(item) => write!(
                f,
                " of {item} ({}, format '{}'",
                self.type_name, self.format
            )?,
            None => write!(f, " of {} (format '{}'", self.type_name, self.format)?,
        }
        if let Some(n) = self.itemsize {
            write!(f, ", itemsize {n}")?;
        }
        f.write_str(")")?;
        if let Some((elem, n)) = &self.trailing_axis {
            match self.ndim {
                Some(d) => write!(f, " or a {} buffer of {elem}", dims_word(d + 1))?,
                None => write!(f, " or a buffer of {elem}")?,
            }
            write!(f, " whose last axis has length {n} and is contiguous")?;
        }
        Ok(())
    }
}

/// Shared or exclusive access, for borrow conflicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A read borrow (`read()`, `with`, copies out, `item`).
    Shared,
    /// A write borrow (`write()`, `with_mut`, copies in, `set_item`).
    Exclusive,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::Shared => "read (shared)",
            Access::Exclusive => "write (exclusive)",
        })
    }
}

/// Everything that can go wrong between a Python object and a typed view of its memory.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The object supports none of the protocols pybuf reads: not the buffer protocol, not
    /// DLPack (`__dlpack__`), not the array interface (`__array_struct__`,
    /// `__array_interface__`). (`TypeError`)
    NotABuffer {
        /// The object's type name.
        type_name: String,
    },
    /// An explicit constructor (`Buffer::from_dlpack`, `from_array_interface`, ...) was given
    /// an object without that protocol's attribute. (`TypeError`)
    MissingProtocol {
        /// The object's type name.
        type_name: String,
        /// The protocol that was asked for.
        protocol: Source,
    },
    /// A DLPack producer's memory is on a device the CPU cannot read; only `kDLCPU`,
    /// `kDLCUDAHost` and `kDLCUDAManaged` memory is accepted. (`BufferError`)
    Device {
        /// The object's type name.
        type_name: String,
        /// The DLPack device type (`DLDeviceType`: 2 is `kDLCUDA`, ...).
        device_type: i32,
        /// The device index.
        device_id: i32,
    },
    /// A DLPack capsule, `__array_struct__` capsule or `__array_interface__` dict that does not
    /// follow its protocol, or uses a part of it pybuf does not read: a capsule of another
    /// name, a DLPack major version other than 1, a dict without `shape`, a `mask`...
    /// (`BufferError`)
    Interchange {
        /// The object's type name.
        type_name: String,
        /// The protocol.
        protocol: Source,
        /// What the protocol (or pybuf) requires.
        expected: String,
        /// What the object gave.
        found: String,
    },
    /// The exporter refused the request (`PyObject_GetBuffer` failed). (`BufferError`, with
    /// the exporter's own exception as `__cause__`)
    Refused {
        /// The object's type name.
        type_name: String,
        /// Whether a writable buffer was requested.
        writable: bool,
        /// The exporter's exception.
        cause: PyErr,
    },
    /// A write was requested but the buffer is read-only. (`BufferError`)
    ReadOnly {
        /// The object's type name.
        type_name: String,
    },
    /// The exporter's format string is not valid PEP 3118. (`BufferError`)
    Format {
        /// The object's type name.
        type_name: String,
        /// The parse error (with position and expectation).
        error: Box<FormatError>,
    },
    /// The items are of another type than the element type. (`TypeError`)
    ElementType {
        /// What the caller asked for.
        expected: Box<Expected>,
        /// What the buffer is.
        found: Box<Found>,
    },
    /// Same element type, other byte order (for example `'>d'` read as `f64`). (`TypeError`)
    ///
    /// Read big-endian data with the types of [`be`](crate::be) (`pybuf::be::F64` for
    /// `'>f8'`), little-endian data with the plain types or those of [`le`](crate::le); see
    /// [`Error::hint`].
    ByteOrder {
        /// What the caller asked for.
        expected: Box<Expected>,
        /// What the buffer is.
        found: Box<Found>,
        /// The data's byte order.
        data: Endian,
        /// The element type's byte order.
        element: Endian,
    },
    /// The exporter's `itemsize` disagrees with the size its format describes. (`BufferError`)
    ItemSize {
        /// The exporter's format string.
        format: String,
        /// The size the format describes.
        format_size: usize,
        /// The exporter's `itemsize`, as it sent it.
        itemsize: isize,
    },
    /// Wrong number of dimensions. (`TypeError`)
    Dimensions {
        /// What the caller asked for.
        expected: Box<Expected>,
        /// What the buffer is.
        found: Box<Found>,
    },
    /// An `[E; N]` element type was asked for and the buffer holds items of `E`, but its last
    /// axis cannot become the array: another length than `N`, or not contiguous (a byte
    /// stride other than the size of `E`). (`TypeError`)
    TrailingAxis {
        /// What the caller asked for.
        expected: Box<Expected>,
        /// What the buffer is.
        found: Box<Found>,
        /// The length of the buffer's last axis.
        length: usize,
        /// Its byte stride.
        stride: isize,
        /// Whether it uses suboffsets (indirection), which an item cannot span.
        indirect: bool,
        /// The length the array needs (`N`).
        expected_length: usize,
        /// The byte stride it needs (the size of `E`).
        expected_stride: usize,
    },
    /// [`AnyBuffer::reinterpret`](crate::AnyBuffer::reinterpret) needs the buffer's bytes back
    /// to back in C order. (`BufferError`)
    NotContiguous {
        /// The object's type name.
        type_name: String,
        /// The buffer's shape.
        shape: Vec<usize>,
        /// Its byte strides.
        strides: Vec<isize>,
    },
    /// [`AnyBuffer::reinterpret`](crate::AnyBuffer::reinterpret): the buffer's length in bytes
    /// is not a multiple of the element's size. (`ValueError`)
    ByteLength {
        /// The object's type name.
        type_name: String,
        /// The element type.
        element: String,
        /// Its size in bytes.
        element_size: usize,
        /// The buffer's length in bytes.
        len: usize,
    },
    /// A dispatch over element types ([`dispatch!`](crate::dispatch!)) met an element type it
    /// does not handle. (`TypeError`)
    UnsupportedElement {
        /// The element types handled, in numpy's words.
        expected: String,
        /// What the buffer is.
        found: Box<Found>,
    },
    /// The exporter described a layout that is impossible or too large to address: negative
    /// shape, `shape × stride` overflow, `ndim` above 64, NULL data with a non-zero length...
    /// (`BufferError`)
    InvalidLayout {
        /// The object's type name.
        type_name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A zero-copy view would create misaligned references. (`BufferError`)
    ///
    /// Copies work ([`Buffer::read_or_copy`](crate::Buffer::read_or_copy),
    /// [`Buffer::to_vec`](crate::Buffer::to_vec)); element types of alignment 1
    /// ([`le`](crate::le), [`be`](crate::be), `zerocopy::Unalign<T>`) view misaligned data.
    Misaligned {
        /// The element type.
        type_name: String,
        /// The element type in numpy's words (`float64`).
        item: String,
        /// Its required alignment.
        align: usize,
        /// The first misaligned address (base pointer or base + stride).
        address: usize,
    },
    /// A byte stride is not a multiple of the item size, so no element-stride view exists.
    /// (`BufferError`; copies work: [`Buffer::read_or_copy`](crate::Buffer::read_or_copy).)
    StrideNotMultiple {
        /// The axis.
        axis: usize,
        /// Its byte stride.
        stride: isize,
        /// The item size.
        itemsize: usize,
    },
    /// The buffer uses suboffsets (PIL-style indirection), which a view cannot follow.
    /// (`BufferError`; copies work: [`Buffer::read_or_copy`](crate::Buffer::read_or_copy).)
    Suboffsets,
    /// The buffer's elements overlap each other (zero or overlapping strides), so no mutable
    /// view of it may exist. (`BufferError`)
    SelfOverlapping {
        /// The buffer's shape.
        shape: Vec<usize>,
        /// Its byte strides.
        strides: Vec<isize>,
    },
    /// The memory is already borrowed in a conflicting way. (`BufferError`)
    BorrowConflict {
        /// The access that was requested.
        requested: Access,
        /// The access that is already live on overlapping memory.
        held: Access,
    },
    /// An index outside the shape. (`IndexError`)
    IndexOutOfBounds {
        /// The index, as written (`[3, 1]`, `(3, 1)`).
        index: String,
        /// The shape.
        shape: Vec<usize>,
    },
    /// A copy between a buffer and a slice of another length. (`ValueError`)
    LengthMismatch {
        /// The buffer's number of elements.
        expected: usize,
        /// The slice's length.
        found: usize,
    },
    /// The memory holds a bit pattern that is not a valid value of the element type, such as
    /// a `bool` byte other than 0 or 1 (read those as [`Bool`](crate::Bool)). (`ValueError`)
    InvalidValue {
        /// The element type.
        type_name: String,
        /// Position of the first invalid element, in logical C order.
        position: usize,
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// A mutable view ([`Buffer::write`](crate::Buffer::write),
    /// [`with_mut`](crate::Buffer::with_mut)) of an element type that may have padding
    /// ([`Element::HAS_PADDING`](crate::Element::HAS_PADDING)): storing a whole value through
    /// it would put uninitialized bytes into Python's memory. `set_item` and
    /// `copy_from_slice` write such types. (`TypeError`)
    PaddedElement {
        /// The element type.
        type_name: String,
        /// Its size in bytes.
        size: usize,
        /// Its padding bytes, from its layout (empty when a hand-written impl keeps the
        /// default `HAS_PADDING = true` for a layout without gaps).
        padding: Vec<std::ops::Range<usize>>,
    },
    /// Rust-owned exported memory is still viewed from Python. (`BufferError`)
    ViewsAlive {
        /// How many views (exports) are live.
        count: usize,
    },
    /// Rust already took the exported memory back (`try_into_inner`), so it can be neither
    /// viewed nor taken again. (`BufferError`)
    ExportTaken,
    /// A Python exception raised on the way (for example by `numpy` while building a result).
    Python(PyErr),
    /// The exported element type has no DLPack data type (records, byte strings, data in the
    /// other byte order), so `__dlpack__` cannot describe it. (`BufferError`, as the array API
    /// standard asks of producers)
    DLPackDtype {
        /// The export's format string.
        format: String,
        /// A description of its item (`struct {x: float64 @0, ...}`, `big-endian float64`).
        item: String,
        /// Why DLPack cannot describe it.
        reason: String,
    },
    /// A legacy DLPack capsule (`__dlpack__` without `max_version >= (1, 0)`) was asked for
    /// read-only memory: only versioned capsules can mark memory read-only, so it is refused,
    /// as numpy does. (`BufferError`)
    DLPackReadOnly {
        /// The `max_version` the consumer passed, if any.
        max_version: Option<(i64, i64)>,
    },
    /// `__dlpack__` was asked for a device other than the host (`dl_device`), which the
    /// memory is not on and cannot be copied to. (`BufferError`)
    DLPackDevice {
        /// The requested DLPack device type.
        device_type: i64,
        /// The requested device index.
        device_id: i64,
    },
    /// `__dlpack__` got a `stream` other than `None`, which host memory does not have.
    /// (`ValueError`)
    DLPackStream {
        /// `repr()` of the stream argument.
        stream: String,
    },
    /// numpy could not be imported for a result that must be a `numpy.ndarray`.
    /// (`ImportError`, with numpy's import error as `__cause__`)
    NumpyUnavailable {
        /// The import error.
        cause: PyErr,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotABuffer { type_name } => write!(
                f,
                "expected an object supporting the buffer protocol, DLPack or the array \
                 interface, got '{type_name}'"
            ),
            Error::MissingProtocol {
                type_name,
                protocol,
            } => write!(
                f,
                "expected an object supporting {} ({}), got '{type_name}'",
                protocol_name(*protocol),
                protocol_attribute(*protocol)
            ),
            Error::Device {
                type_name,
                device_type,
                device_id,
            } => write!(
                f,
                "expected memory the CPU can read (DLPack device kDLCPU, kDLCUDAHost or \
                 kDLCUDAManaged), got a tensor on {} (device type {device_type}), device \
                 {device_id}, from '{type_name}'",
                crate::dlpack::DLDeviceType::name(i64::from(*device_type))
                    .unwrap_or("a device type dlpack.h does not define")
            ),
            Error::Interchange {
                type_name,
                protocol,
                expected,
                found,
            } => write!(
                f,
                "'{type_name}' exported an unusable {}: expected {expected}, found {found}",
                protocol_object(*protocol)
            ),
            Error::Refused {
                type_name,
                writable,
                cause,
            } => write!(
                f,
                "'{type_name}' refused a {} buffer request: {cause}",
                if *writable { "writable" } else { "read-only" }
            ),
            Error::ReadOnly { type_name } => write!(
                f,
                "expected a writable buffer, got a read-only buffer from '{type_name}'"
            ),
            Error::Format { type_name, error } => {
                write!(f, "'{type_name}' exported an invalid format: {error}")
            }
            Error::ElementType { expected, found } => {
                write!(f, "expected {expected}, got a {found}")
            }
            Error::ByteOrder {
                expected,
                found,
                data,
                element,
            } => write!(
                f,
                "expected {expected}, got a {found}: the byte order differs ({} data, {} \
                 expected)",
                data.name(),
                element.name(),
            ),
            Error::ItemSize {
                format,
                format_size,
                itemsize,
            } => write!(
                f,
                "format '{format}' describes {format_size}-byte items, but the exporter \
                 reported itemsize {itemsize}"
            ),
            Error::Dimensions { expected, found } => {
                write!(f, "expected {expected}, got a {found}")
            }
            Error::TrailingAxis {
                expected,
                found,
                length,
                stride,
                indirect,
                expected_length,
                expected_stride,
            } => {
                write!(
                    f,
                    "expected {expected}, got a {found} whose last axis has length {length} \
                     and byte stride {stride}"
                )?;
                if *indirect {
                    f.write_str(" with suboffsets")?;
                }
                write!(
                    f,
                    " (expected length {expected_length} and byte stride {expected_stride})"
                )
            }
            Error::NotContiguous {
                type_name,
                shape,
                strides,
            } => write!(
                f,
                "expected a C-contiguous buffer (its bytes back to back), got shape {} with \
                 byte strides {strides:?} from '{type_name}'",
                shape_or_scalar(shape)
            ),
            Error::ByteLength {
                type_name,
                element,
                element_size: 0,
                ..
            } => write!(
                f,
                "expected an element type of at least one byte to read the bytes of \
                 '{type_name}' as, got {element}, which has none"
            ),
            Error::ByteLength {
                type_name,
                element,
                element_size,
                len,
            } => write!(
                f,
                "expected a length in bytes that is a multiple of {element_size} (the size of \
                 {element}), got {len} bytes from '{type_name}'"
            ),
            Error::UnsupportedElement { expected, found } => {
                write!(f, "expected a buffer of {expected}, got a {found}")
            }
            Error::InvalidLayout { type_name, reason } => {
                write!(
                    f,
                    "'{type_name}' exported an invalid buffer layout: {reason}"
                )
            }
            Error::Misaligned {
                type_name,
                item,
                align,
                address,
            } => write!(
                f,
                "expected {item} ({type_name}) items aligned to {align} bytes, found address \
                 {address:#x}; a zero-copy view of misaligned data is impossible"
            ),
            Error::StrideNotMultiple {
                axis,
                stride,
                itemsize,
            } => write!(
                f,
                "expected byte strides that are multiples of the item size {itemsize}, \
                 found stride {stride} on axis {axis}; a zero-copy view is impossible"
            ),
            Error::Suboffsets => f.write_str(
                "expected a direct buffer, found one with suboffsets (PIL-style indirection); \
                 a zero-copy view is impossible",
            ),
            Error::SelfOverlapping { shape, strides } => write!(
                f,
                "expected non-overlapping elements for a mutable view, found shape {} with \
                 byte strides {:?}, whose elements share memory",
                shape_or_scalar(shape),
                strides
            ),
            Error::BorrowConflict { requested, held } => write!(
                f,
                "cannot take a {requested} borrow: the memory is already under a live \
                 {held} borrow"
            ),
            Error::IndexOutOfBounds { index, shape } => write!(
                f,
                "index {index} is out of bounds for shape {}",
                shape_or_scalar(shape)
            ),
            Error::LengthMismatch { expected, found } => write!(
                f,
                "expected a slice of {expected} elements (the buffer's length), got {found}"
            ),
            Error::InvalidValue {
                type_name,
                position,
                bytes,
            } => write!(
                f,
                "expected a valid {type_name}, found bytes {bytes:?} at element {position}"
            ),
            Error::PaddedElement {
                type_name,
                size,
                padding,
            } => {
                write!(
                    f,
                    "expected an element type without padding for a mutable view, found \
                     {type_name} ({size} bytes) "
                )?;
                if padding.is_empty() {
                    f.write_str("whose Element impl does not rule out padding")
                } else {
                    let ranges: Vec<String> = padding
                        .iter()
                        .map(|r| format!("{}..{}", r.start, r.end))
                        .collect();
                    write!(f, "with padding at bytes {}", ranges.join(", "))
                }
            }
            Error::ViewsAlive { count } => write!(
                f,
                "expected no live views of the exported memory, found {count}; release them \
                 (memoryview.release(), del) first"
            ),
            Error::ExportTaken => f.write_str(
                "expected exported memory, found none: Rust already took it back \
                 (try_into_inner)",
            ),
            Error::Python(err) => write!(f, "{err}"),
            Error::DLPackDtype {
                format,
                item,
                reason,
            } => write!(
                f,
                "expected elements DLPack can describe (bool, int8..uint64, float16/32/64, \
                 complex64/128, in native byte order), got format '{format}' ({item}): {reason}"
            ),
            Error::DLPackReadOnly { max_version } => write!(
                f,
                "expected max_version >= (1, 0) to export read-only memory through DLPack (a \
                 legacy 'dltensor' capsule cannot mark memory read-only), got max_version={}",
                match max_version {
                    Some((major, minor)) => format!("({major}, {minor})"),
                    None => "None".to_string(),
                }
            ),
            Error::DLPackDevice {
                device_type,
                device_id,
            } => write!(
                f,
                "expected dl_device None or (1, 0) (kDLCPU, where the memory is), got \
                 ({device_type}, {device_id}) ({}); host memory cannot be exported to \
                 another device",
                crate::dlpack::DLDeviceType::name(*device_type).unwrap_or("an unknown device type")
            ),
            Error::DLPackStream { stream } => write!(
                f,
                "expected stream=None for host (kDLCPU) memory, got stream={stream}"
            ),
            Error::NumpyUnavailable { cause } => write!(
                f,
                "expected numpy to be importable (to return a numpy.ndarray), got {cause}"
            ),
        }
    }
}

impl Error {
    /// Advice for the Rust author, where there is some: which element type or method handles
    /// the case (`pybuf::be::F64` for big-endian data, `read_or_copy()` for layouts no view
    /// can describe, [`Bool`](crate::Bool) for masks with bytes other than 0 and 1).
    ///
    /// It is not part of the message ([`Display`](fmt::Display), and the Python exception),
    /// which speaks to whoever passed the buffer: usually a Python caller.
    ///
    /// ```
    /// # use pyo3::prelude::*;
    /// # Python::attach(|py| -> PyResult<()> {
    /// let x = py.eval(c"__import__('numpy').arange(3.0).astype('>f8')", None, None)?;
    /// let err = pybuf::Buffer1::<f64>::get(&x).unwrap_err();
    /// assert!(!err.to_string().contains("pybuf::"));
    /// assert!(err.hint().unwrap().contains("pybuf::be::F64"));
    /// # Ok(()) }).unwrap();
    /// ```
    pub fn hint(&self) -> Option<String> {
        const COPY: &str = "copy instead: read_or_copy() and with_or_copy() view where they can \
                            and copy where they must; to_vec() and to_array() always copy";
        Some(match self {
            Error::ByteOrder {
                data: Endian::Big, ..
            } => "read big-endian data with the element types of pybuf::be (pybuf::be::F64 for \
                  '>f8'); they have alignment 1, so views need no copy"
                .to_string(),
            Error::ByteOrder {
                data: Endian::Little,
                ..
            } => "read little-endian data with the plain Rust types where it is aligned, or \
                  with the element types of pybuf::le (alignment 1) anywhere"
                .to_string(),
            Error::Misaligned { .. } => format!(
                "{COPY}; or read with an element type of alignment 1 (pybuf::le::F64, \
                 zerocopy::Unalign<T>), which views misaligned data"
            ),
            Error::StrideNotMultiple { .. } | Error::Suboffsets => COPY.to_string(),
            Error::InvalidValue { .. } => "read masks whose bytes may be other than 0 and 1 as \
                                           pybuf::Bool, which accepts every byte"
                .to_string(),
            Error::ItemSize { .. } => "if the format does not describe the items (ctypes \
                                       structures with _pack_ export 'B'), read their bytes with \
                                       AnyBuffer::reinterpret::<T>()"
                .to_string(),
            Error::TrailingAxis { .. } => "an [E; N] element takes a last axis of length N \
                                           whose items are back to back; copy other layouts \
                                           with a Buffer of E"
                .to_string(),
            Error::BorrowConflict { .. } => "a guard (read(), write(), with...) of overlapping \
                                             memory is still live: end it first; copies take \
                                             momentary borrows too"
                .to_string(),
            Error::PaddedElement { padding, .. } if padding.is_empty() => {
                "a hand-written Element impl keeps the default HAS_PADDING = true: set it to \
                 false if every byte of every value is initialized; or write with set_item or \
                 copy_from_slice, which leave padding bytes as they are"
                    .to_string()
            }
            Error::PaddedElement { .. } => "write it with set_item or copy_from_slice, which \
                                            leave padding bytes as they are"
                .to_string(),
            Error::UnsupportedElement { .. } => "list more element types in the dispatch, or \
                                                 handle ElementKind::Other yourself"
                .to_string(),
            _ => return None,
        })
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Refused { cause, .. }
            | Error::Python(cause)
            | Error::NumpyUnavailable { cause } => Some(cause),
            Error::Format { error, .. } => Some(&**error),
            _ => None,
        }
    }
}

impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        let msg = err.to_string();
        match err {
            Error::NotABuffer { .. }
            | Error::MissingProtocol { .. }
            | Error::ElementType { .. }
            | Error::ByteOrder { .. }
            | Error::Dimensions { .. }
            | Error::TrailingAxis { .. }
            | Error::UnsupportedElement { .. }
            | Error::PaddedElement { .. } => PyTypeError::new_err(msg),
            Error::Refused { cause, .. } => {
                let new = PyBufferError::new_err(msg);
                pyo3::Python::attach(|py| new.set_cause(py, Some(cause)));
                new
            }
            Error::LengthMismatch { .. }
            | Error::InvalidValue { .. }
            | Error::ByteLength { .. } => PyValueError::new_err(msg),
            Error::DLPackStream { .. } => PyValueError::new_err(msg),
            Error::NumpyUnavailable { cause } => {
                let new = PyImportError::new_err(msg);
                pyo3::Python::attach(|py| new.set_cause(py, Some(cause)));
                new
            }
            Error::IndexOutOfBounds { .. } => PyIndexError::new_err(msg),
            Error::Python(e) => e,
            Error::ReadOnly { .. }
            | Error::Format { .. }
            | Error::ItemSize { .. }
            | Error::InvalidLayout { .. }
            | Error::NotContiguous { .. }
            | Error::Misaligned { .. }
            | Error::StrideNotMultiple { .. }
            | Error::Suboffsets
            | Error::SelfOverlapping { .. }
            | Error::BorrowConflict { .. }
            | Error::ViewsAlive { .. }
            | Error::ExportTaken
            | Error::Device { .. }
            | Error::Interchange { .. }
            | Error::DLPackDtype { .. }
            | Error::DLPackReadOnly { .. }
            | Error::DLPackDevice { .. } => PyBufferError::new_err(msg),
        }
    }
}

impl From<PyErr> for Error {
    fn from(err: PyErr) -> Error {
        Error::Python(err)
    }
}

/// The protocol's name, for "expected an object supporting ...".
fn protocol_name(protocol: Source) -> &'static str {
    match protocol {
        Source::BufferProtocol | Source::Numpy => "the buffer protocol",
        Source::DLPack => "DLPack",
        Source::ArrayStruct | Source::ArrayInterface => "the array interface",
    }
}

/// The attribute (or slot) an object implements the protocol with.
fn protocol_attribute(protocol: Source) -> &'static str {
    match protocol {
        Source::BufferProtocol | Source::Numpy => "bf_getbuffer or __buffer__",
        Source::DLPack => "__dlpack__",
        Source::ArrayStruct => "__array_struct__",
        Source::ArrayInterface => "__array_interface__",
    }
}

/// What the protocol hands over, for "exported an unusable ...".
fn protocol_object(protocol: Source) -> &'static str {
    match protocol {
        Source::BufferProtocol | Source::Numpy => "buffer",
        Source::DLPack => "DLPack tensor",
        Source::ArrayStruct => "__array_struct__ capsule",
        Source::ArrayInterface => "__array_interface__",
    }
}

fn dims_word(n: usize) -> String {
    format!("{n}-D")
}

fn shape_or_scalar(shape: &[usize]) -> String {
    if shape.is_empty() {
        "() (a scalar)".to_string()
    } else {
        shape_tuple(shape)
    }
}
