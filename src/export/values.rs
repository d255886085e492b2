//! Element values as Python objects: `ExportedBuffer.tolist()` and its `repr`.
//!
//! Values are what numpy's `tolist()` gives for numpy's view of the buffer: `int` for
//! integers and pointers, `float` for float16/32/64 and bfloat16 (as `ml_dtypes` gives it), `complex` for complex numbers, `bool`,
//! `bytes` for byte strings (trailing NUL bytes stripped, as numpy's `'S'` dtype does), nested
//! lists for sub-array items (numpy folds them into the array's shape), and tuples of the
//! fields for records (padding is not a field). One difference: numpy gives a sub-array
//! *field* of a record as a numpy array; here it is a list, as pybuf does not depend on numpy.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyComplex, PyList, PyTuple};

use super::object::ExportedBuffer;
use crate::format::{Endian, ItemKind, ItemLayout, Scalar, ScalarKind};
use crate::Error;

/// Every element, as nested lists (the scalar itself for 0-d).
pub(crate) fn to_list<'py>(slf: &Bound<'py, ExportedBuffer>) -> Result<Bound<'py, PyAny>, Error> {
    let py = slf.py();
    let layout = slf.get().layout();
    let mut reader = ItemReader::new(&layout.item);
    slf.get()
        .read_raw(|first| nested(py, &layout.shape, &layout.strides, first, &mut reader))?
        .map_err(Error::Python)
}

fn nested<'py>(
    py: Python<'py>,
    shape: &[isize],
    strides: &[isize],
    at: *const u8,
    reader: &mut ItemReader<'_>,
) -> PyResult<Bound<'py, PyAny>> {
    let Some((&len, rest)) = shape.split_first() else {
        return reader.value(py, at);
    };
    let items = (0..len)
        .map(|i| {
            // `wrapping_offset`: plain address arithmetic; the result is an element of the
            // layout
            let element = at.wrapping_offset(i * strides[0]);
            nested(py, rest, &strides[1..], element, reader)
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok(PyList::new(py, items)?.into_any())
}

/// Copies items out of exported memory and decodes them.
struct ItemReader<'a> {
    item: &'a ItemLayout,
    scratch: Vec<u8>,
}

impl<'a> ItemReader<'a> {
    fn new(item: &'a ItemLayout) -> Self {
        ItemReader {
            item,
            scratch: vec![0; item.size],
        }
    }

    /// The value of the item at `at`, an element address of an export inside
    /// [`ExportedBuffer::read_raw`].
    fn value<'py>(&mut self, py: Python<'py>, at: *const u8) -> PyResult<Bound<'py, PyAny>> {
        // SAFETY: `at` is the address of an element of the export's layout (the first element
        // plus in-range multiples of the strides), so `item.size` bytes from it lie inside the
        // owner's allocation, which `read_raw` keeps allocated while this runs. The bytes are
        // initialized: valid values of the element type, with padding zeroed at export, and
        // Python consumers only ever store bytes. It is a raw copy into our own buffer, never
        // a reference to memory a consumer may be writing (see `read_raw`).
        unsafe {
            std::ptr::copy_nonoverlapping(at, self.scratch.as_mut_ptr(), self.item.size);
        }
        item_value(py, self.item, &self.scratch)
    }
}

/// The value of one item held in `bytes` (exactly `item.size` of them).
pub(crate) fn item_value<'py>(
    py: Python<'py>,
    item: &ItemLayout,
    bytes: &[u8],
) -> PyResult<Bound<'py, PyAny>> {
    match &item.kind {
        ItemKind::Scalar(s) => scalar_value(py, *s, bytes),
        ItemKind::Array { shape, elem } => sub_array(py, shape, elem, bytes),
        ItemKind::Struct(fields) => {
            let values = fields
                .iter()
                .map(|f| item_value(py, &f.layout, &bytes[f.offset..f.offset + f.layout.size]))
                .collect::<PyResult<Vec<_>>>()?;
            Ok(PyTuple::new(py, values)?.into_any())
        }
    }
}

/// A C-order sub-array of `shape` items of `elem`, as nested lists.
fn sub_array<'py>(
    py: Python<'py>,
    shape: &[usize],
    elem: &ItemLayout,
    bytes: &[u8],
) -> PyResult<Bound<'py, PyAny>> {
    let Some((&len, rest)) = shape.split_first() else {
        return item_value(py, elem, bytes);
    };
    let step = rest.iter().product::<usize>() * elem.size;
    let list = PyList::empty(py);
    for i in 0..len {
        list.append(sub_array(py, rest, elem, &bytes[i * step..(i + 1) * step])?)?;
    }
    Ok(list.into_any())
}

/// The first `N` bytes.
fn first<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

macro_rules! decode {
    ($t:ty, $endian:expr, $bytes:expr) => {{
        let raw = first::<{ std::mem::size_of::<$t>() }>($bytes);
        match $endian {
            Endian::Little => <$t>::from_le_bytes(raw),
            Endian::Big => <$t>::from_be_bytes(raw),
        }
    }};
}

fn scalar_value<'py>(py: Python<'py>, s: Scalar, b: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    use ScalarKind::*;
    let e = s.endian;
    let value = match s.kind {
        // numpy reads any non-zero byte as True
        Bool => PyBool::new(py, b[0] != 0).to_owned().into_any(),
        I8 => (b[0] as i8).into_pyobject(py)?.into_any(),
        U8 => b[0].into_pyobject(py)?.into_any(),
        I16 => decode!(i16, e, b).into_pyobject(py)?.into_any(),
        U16 => decode!(u16, e, b).into_pyobject(py)?.into_any(),
        I32 => decode!(i32, e, b).into_pyobject(py)?.into_any(),
        U32 => decode!(u32, e, b).into_pyobject(py)?.into_any(),
        I64 => decode!(i64, e, b).into_pyobject(py)?.into_any(),
        U64 => decode!(u64, e, b).into_pyobject(py)?.into_any(),
        Pointer => decode!(usize, e, b).into_pyobject(py)?.into_any(),
        F16 => f16_to_f64(decode!(u16, e, b)).into_pyobject(py)?.into_any(),
        // bfloat16 is the upper half of a binary32: exact as f32, then as a Python float
        BF16 => f64::from(f32::from_bits(u32::from(decode!(u16, e, b)) << 16))
            .into_pyobject(py)?
            .into_any(),
        F32 => f64::from(decode!(f32, e, b)).into_pyobject(py)?.into_any(),
        F64 => decode!(f64, e, b).into_pyobject(py)?.into_any(),
        ComplexF16 => PyComplex::from_doubles(
            py,
            f16_to_f64(decode!(u16, e, b)),
            f16_to_f64(decode!(u16, e, &b[2..])),
        )
        .into_any(),
        ComplexF32 => PyComplex::from_doubles(
            py,
            f64::from(decode!(f32, e, b)),
            f64::from(decode!(f32, e, &b[4..])),
        )
        .into_any(),
        ComplexF64 => {
            PyComplex::from_doubles(py, decode!(f64, e, b), decode!(f64, e, &b[8..])).into_any()
        }
        // numpy's 'S' dtype drops trailing NUL bytes
        Char | Bytes(_) => {
            let end = b.iter().rposition(|&c| c != 0).map_or(0, |i| i + 1);
            PyBytes::new(py, &b[..end]).into_any()
        }
        // a DLPack type pybuf cannot interpret: its bytes, as they are
        DLPackOther { .. } => PyBytes::new(py, b).into_any(),
        // as `struct` unpacks 'Np': a length byte (at most N - 1), then the bytes
        PascalString(n) => {
            let len = b
                .first()
                .map_or(0, |&l| usize::from(l).min(n.saturating_sub(1)));
            PyBytes::new(py, &b[1.min(b.len())..(1 + len).min(b.len())]).into_any()
        }
    };
    Ok(value)
}

/// IEEE 754 binary16 to binary64, exactly (NaNs become the default NaN).
fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let fraction = f64::from(bits & 0x3ff);
    match exponent {
        0 => sign * fraction * 2f64.powi(-24),
        0x1f if fraction == 0.0 => sign * f64::INFINITY,
        0x1f => f64::NAN,
        _ => sign * (1.0 + fraction / 1024.0) * 2f64.powi(exponent - 15),
    }
}

/// Elements shown before and after `...` on a summarized axis, and the element count above
/// which axes are summarized (numpy's `edgeitems` and `threshold`).
const EDGE_ITEMS: isize = 3;
const THRESHOLD: usize = 1000;

/// `pybuf.ExportedBuffer([1.5, 2.5], dtype=float64, shape=(2,), readonly)`: the values (a
/// summary beyond 1000 elements), the dtype in numpy's terms, the shape and the access.
pub(crate) fn repr(slf: &Bound<'_, ExportedBuffer>) -> PyResult<String> {
    let py = slf.py();
    let this = slf.get();
    let layout = this.layout();
    let size: usize = layout.shape.iter().map(|&d| d as usize).product();
    let summarize = size > THRESHOLD;
    let mut reader = ItemReader::new(&layout.item);
    let values = match this.read_raw(|first| {
        let mut out = String::new();
        render(
            py,
            &layout.shape,
            &layout.strides,
            first,
            &mut reader,
            summarize,
            &mut out,
        )
        .map(|()| out)
    }) {
        Ok(values) => values?,
        Err(Error::ExportTaken) => "<taken back by Rust>".to_string(),
        Err(other) => return Err(other.into()),
    };
    let shape: Vec<usize> = this.shape();
    Ok(format!(
        "pybuf.ExportedBuffer({values}, dtype={}, shape={}, {})",
        dtype_name(py, &layout.item)?,
        if shape.is_empty() {
            "()".to_string()
        } else {
            crate::format::shape_tuple(&shape)
        },
        if this.is_writable() {
            "writable"
        } else {
            "readonly"
        }
    ))
}

fn render(
    py: Python<'_>,
    shape: &[isize],
    strides: &[isize],
    at: *const u8,
    reader: &mut ItemReader<'_>,
    summarize: bool,
    out: &mut String,
) -> PyResult<()> {
    let Some((&len, rest)) = shape.split_first() else {
        out.push_str(&reader.value(py, at)?.repr()?.to_cow()?);
        return Ok(());
    };
    out.push('[');
    let mut i = 0;
    while i < len {
        if i > 0 {
            out.push_str(", ");
        }
        if summarize && len > 2 * EDGE_ITEMS && i == EDGE_ITEMS {
            out.push_str("...");
            i = len - EDGE_ITEMS;
            continue;
        }
        let element = at.wrapping_offset(i * strides[0]);
        render(py, rest, &strides[1..], element, reader, summarize, out)?;
        i += 1;
    }
    out.push(']');
    Ok(())
}

/// numpy's name of the item's dtype: `float64`, `'>f8'`, `('<f4', (3,))`, a record's descr.
fn dtype_name(py: Python<'_>, item: &ItemLayout) -> PyResult<String> {
    Ok(match &item.kind {
        ItemKind::Scalar(s) => match s.kind {
            ScalarKind::Char => "S1".to_string(),
            ScalarKind::Bytes(n) => format!("S{n}"),
            ScalarKind::PascalString(n) => format!("V{n}"),
            ScalarKind::Pointer => format!("uint{}", 8 * std::mem::size_of::<usize>()),
            kind if !kind.has_byte_order() || s.endian == Endian::NATIVE => kind.name(),
            _ => format!("'{}'", super::interface::typestr(*s)),
        },
        ItemKind::Array { .. } => {
            let (inner, sub_shape) = super::interface::fold(item);
            let inner = match &inner.kind {
                ItemKind::Scalar(s) => format!("'{}'", super::interface::typestr(*s)),
                _ => dtype_name(py, inner)?,
            };
            format!("({inner}, {})", crate::format::shape_tuple(&sub_shape))
        }
        ItemKind::Struct(_) => super::interface::descr(py, item)?
            .repr()?
            .to_cow()?
            .into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::f16_to_f64;

    #[test]
    fn half_precision_decodes_exactly() {
        assert_eq!(f16_to_f64(0x3c00), 1.0);
        assert_eq!(f16_to_f64(0xc000), -2.0);
        assert_eq!(f16_to_f64(0x3e00), 1.5);
        assert_eq!(f16_to_f64(0x7bff), 65504.0);
        assert_eq!(f16_to_f64(0x0001), 2f64.powi(-24));
        assert_eq!(f16_to_f64(0x03ff), 1023.0 * 2f64.powi(-24));
        assert_eq!(f16_to_f64(0x7c00), f64::INFINITY);
        assert_eq!(f16_to_f64(0xfc00), f64::NEG_INFINITY);
        assert!(f16_to_f64(0x7e00).is_nan());
        assert_eq!(f16_to_f64(0x8000), 0.0);
        assert!(f16_to_f64(0x8000).is_sign_negative());
        #[cfg(feature = "half")]
        for bits in 0..=u16::MAX {
            let h = half::f16::from_bits(bits);
            if !h.is_nan() {
                assert_eq!(f16_to_f64(bits), f64::from(h), "{bits:#x}");
            }
        }
    }
}
