//! `pybuf_testmod`: an extension module that uses pybuf the way a library does, and the
//! subject of the Python test suite in `python/tests/` (run it with `bash scripts/pytest.sh`).
//!
//! It doubles as the worked example of pybuf in an extension module:
//!
//! - **Typed arguments.** A `#[pyfunction]` argument of type [`Buffer1<f64>`],
//!   [`Buffer2<u8>`], [`BufferD<f64>`] or [`Buffer0<f64>`] accepts every object that exports a
//!   buffer of that element type and number of dimensions (numpy, `array.array`, ctypes,
//!   `memoryview`, ...). Anything else raises the exception that pybuf's [`Error`] maps to,
//!   with a message that names what was expected and what was found.
//! - **Writable outputs.** `Buffer`'s own extraction makes a read request; an argument of type
//!   [`BufferMut`] makes a writable one, so read-only objects are refused before the body runs.
//! - **Dispatch over element types.** [`total`] takes any buffer and matches on
//!   [`AnyBuffer::element_kind`]; [`mean`] writes one body for every numeric type with
//!   `pybuf::dispatch!`.
//! - **Views where they exist, copies where they must.** `with_or_copy` runs the same code on
//!   misaligned arrays and record fields (`rec['x']`) as on plain ones.
//! - **Records and pixels.** [`frame_scores`] reads numpy's packed structured arrays as a
//!   `#[repr(C, packed)]` struct, [`parse_frames`] the same records from raw bytes
//!   (`AnyBuffer::reinterpret`), [`gray`] an H×W×3 image as `Buffer2<[u8; 3]>`.
//! - **Returning arrays.** [`histogram`] and [`outer`] hand Rust-owned memory to Python
//!   through `pybuf::export`: numpy reads it without a copy.
//! - **Releasing the interpreter.** Heavy loops run inside `py.detach` on a view borrowed from
//!   a guard; the guard keeps pybuf's borrow registry informed, so an output that overlaps an
//!   input is refused before any memory is touched.
//!
//! The Rust doc comments of the functions below are the Python docstrings.

use ndarray::{Array2, Axis, IxDyn, Order, Zip};
use pybuf::export::{self, Exported};
use pybuf::num_complex::Complex;
use pybuf::{
    ndarray, AnyBuffer, Bool, Buffer0, Buffer1, Buffer2, BufferD, BufferMut1, BufferMutD, Element,
    ElementKind, Error,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};
use pyo3::IntoPyObjectExt;

/// Return the Euclidean norm of a 1-D float64 buffer.
#[pyfunction]
fn norm(x: Buffer1<f64>) -> PyResult<f64> {
    Ok(x.with(|v| v.dot(&v).sqrt())?)
}

/// Return the sum of each row of a 2-D float64 buffer, as a list.
#[pyfunction]
fn row_sums(py: Python<'_>, m: Buffer2<f64>) -> PyResult<Vec<f64>> {
    let guard = m.read()?;
    let view = guard.view();
    Ok(py.detach(|| view.rows().into_iter().map(|row| row.sum()).collect()))
}

/// Return the 256-bin histogram of a 2-D uint8 image: a read-only 1-D uint64 buffer that
/// numpy.asarray() and memoryview() read without a copy.
#[pyfunction]
fn histogram(py: Python<'_>, image: Buffer2<u8>) -> PyResult<Exported<Vec<u64>>> {
    let guard = image.read()?;
    let view = guard.view();
    let counts = py.detach(|| {
        let mut counts = vec![0u64; 256];
        view.for_each(|&pixel| counts[usize::from(pixel)] += 1);
        counts
    });
    Ok(export::from_vec(py, counts)?)
}

/// Return the outer product of two 1-D float64 buffers: a writable 2-D float64 buffer.
#[pyfunction]
fn outer(py: Python<'_>, a: Buffer1<f64>, b: Buffer1<f64>) -> PyResult<Exported<Array2<f64>>> {
    let (a, b) = (a.read()?, b.read()?);
    let (a, b) = (a.view(), b.view());
    let product = py.detach(|| &a.insert_axis(Axis(1)) * &b);
    Ok(export::from_array_mut(py, product)?)
}

/// Write `x * factor` into `out`, a writable 1-D float64 buffer of the same length.
///
/// `out` must not overlap `x` (BufferError); `out[::2]` next to `x = out[1::2]` is fine.
#[pyfunction]
fn scale(py: Python<'_>, x: Buffer1<f64>, factor: f64, out: BufferMut1<f64>) -> PyResult<()> {
    if out.len() != x.len() {
        return Err(PyValueError::new_err(format!(
            "expected 'out' of length {} (the length of 'x'), got length {}",
            x.len(),
            out.len()
        )));
    }
    // Both borrows are registered before any memory is touched: an `out` that overlaps `x`
    // fails here with a borrow conflict.
    let src = x.read()?;
    let mut dst = out.write()?;
    let (src, dst) = (src.view(), dst.view_mut());
    py.detach(|| Zip::from(dst).and(src).for_each(|d, &s| *d = s * factor));
    Ok(())
}

/// Set every element of `out`, a writable float64 buffer of any shape, to `value`.
#[pyfunction]
fn fill(out: BufferMutD<f64>, value: f64) -> PyResult<()> {
    Ok(out.with_mut(|mut v| v.fill(value))?)
}

/// Return the elements of a float64 buffer of any shape and layout, in C order, as a list.
#[pyfunction]
fn flatten(x: BufferD<f64>) -> PyResult<Vec<f64>> {
    Ok(x.to_vec()?)
}

/// Return the value of a 0-d float64 buffer (a numpy or ctypes scalar).
#[pyfunction]
fn scalar(x: Buffer0<f64>) -> PyResult<f64> {
    Ok(x.item(())?)
}

/// A record of two float64 fields named `x` and `y`: the items of numpy's
/// `dtype([('x', 'f8'), ('y', 'f8')])` and of ctypes arrays of a `Structure` with two
/// `c_double` fields `x` and `y`.
#[derive(Clone, Copy, pybuf::Element)]
#[repr(C)]
struct Point {
    x: f64,
    y: f64,
}

/// Return the mean (x, y) of a 1-D buffer of points: records with float64 fields x and y.
#[pyfunction]
fn centroid(points: Buffer1<Point>) -> PyResult<(f64, f64)> {
    let (sx, sy) = points.with(|v| {
        v.iter()
            .fold((0.0, 0.0), |(sx, sy), p| (sx + p.x, sy + p.y))
    })?;
    let n = points.len() as f64;
    Ok((sx / n, sy / n))
}

/// Return the sum of every element of a numeric buffer of any shape, layout and dtype:
/// an int for bool and integer dtypes, a float for float16/32/64, a complex for complex64/128.
#[pyfunction]
fn total(py: Python<'_>, x: AnyBuffer) -> PyResult<Bound<'_, PyAny>> {
    match x.element_kind() {
        ElementKind::Bool => sum(py, x, |v: bool| i128::from(v))?.into_bound_py_any(py),
        ElementKind::I8 => sum(py, x, |v: i8| i128::from(v))?.into_bound_py_any(py),
        ElementKind::U8 => sum(py, x, |v: u8| i128::from(v))?.into_bound_py_any(py),
        ElementKind::I16 => sum(py, x, |v: i16| i128::from(v))?.into_bound_py_any(py),
        ElementKind::U16 => sum(py, x, |v: u16| i128::from(v))?.into_bound_py_any(py),
        ElementKind::I32 => sum(py, x, |v: i32| i128::from(v))?.into_bound_py_any(py),
        ElementKind::U32 => sum(py, x, |v: u32| i128::from(v))?.into_bound_py_any(py),
        ElementKind::I64 => sum(py, x, |v: i64| i128::from(v))?.into_bound_py_any(py),
        ElementKind::U64 => sum(py, x, |v: u64| i128::from(v))?.into_bound_py_any(py),
        ElementKind::F16 => sum(py, x, |v: pybuf::half::f16| v.to_f64())?.into_bound_py_any(py),
        ElementKind::F32 => sum(py, x, |v: f32| f64::from(v))?.into_bound_py_any(py),
        ElementKind::F64 => sum(py, x, |v: f64| v)?.into_bound_py_any(py),
        ElementKind::ComplexF32 => sum(py, x, |v: Complex<f32>| {
            Complex::new(f64::from(v.re), f64::from(v.im))
        })?
        .into_bound_py_any(py),
        ElementKind::ComplexF64 => sum(py, x, |v: Complex<f64>| v)?.into_bound_py_any(py),
        _ => Err(x
            .unsupported_element(&["numbers (bool, int8..uint64, float16..float64, complex64/128)"])
            .into()),
    }
}

/// Sums `f(element)` over every element, without the interpreter lock: zero-copy through a
/// view where the layout allows one, over a copy where it does not (misaligned, strides that
/// are not multiples of the item size, suboffsets).
fn sum<T, A>(py: Python<'_>, any: AnyBuffer, f: impl Fn(T) -> A + Sync) -> Result<A, Error>
where
    T: Element,
    A: std::iter::Sum + Send,
{
    let x = any.typed::<T, IxDyn>()?;
    py.detach(|| x.with_or_copy(|v| v.iter().map(|&e| f(e)).sum()))
}

/// Return the raw bytes of every element of any buffer, in C (`'C'`) or Fortran (`'F'`)
/// order, like `memoryview(x).tobytes(order)`.
#[pyfunction]
#[pyo3(signature = (x, order = "C"))]
fn tobytes<'py>(py: Python<'py>, x: AnyBuffer, order: &str) -> PyResult<Bound<'py, PyBytes>> {
    let order = match order {
        "C" => Order::C,
        "F" => Order::F,
        other => {
            return Err(PyValueError::new_err(format!(
                "expected order 'C' or 'F', got '{other}'"
            )))
        }
    };
    let bytes = x.to_bytes(order)?;
    Ok(PyBytes::new(py, &bytes))
}

/// Return what pybuf sees of a buffer: format, shape, strides, itemsize, ndim, readonly,
/// c_contiguous, f_contiguous, element_kind and alignment.
#[pyfunction]
fn describe(py: Python<'_>, x: AnyBuffer) -> PyResult<Bound<'_, PyDict>> {
    let info = PyDict::new(py);
    info.set_item("format", x.format())?;
    info.set_item("shape", PyTuple::new(py, x.shape())?)?;
    info.set_item("strides", PyTuple::new(py, x.strides())?)?;
    info.set_item("itemsize", x.itemsize())?;
    info.set_item("ndim", x.ndim())?;
    info.set_item("readonly", x.is_readonly())?;
    info.set_item("c_contiguous", x.is_c_contiguous())?;
    info.set_item("f_contiguous", x.is_f_contiguous())?;
    info.set_item("element_kind", format!("{:?}", x.element_kind()))?;
    info.set_item("alignment", x.alignment())?;
    Ok(info)
}

/// Return the mean of every element of a numeric buffer (int8..uint64, float32, float64) of
/// any shape and layout, as a float.
#[pyfunction]
fn mean(py: Python<'_>, x: AnyBuffer) -> PyResult<f64> {
    let n = x.len() as f64;
    let sum = pybuf::dispatch!(x, |buf: BufferD<T>| py
        .detach(|| { buf.with_or_copy(|v| v.iter().map(|&e| e as f64).sum::<f64>()) }))??;
    Ok(sum / n)
}

/// Return how many items of a bool buffer of any shape are true (any non-zero byte, as numpy
/// counts them).
#[pyfunction]
fn count_true(mask: BufferD<Bool>) -> PyResult<usize> {
    Ok(mask.with_or_copy(|v| v.iter().filter(|b| b.get()).count())?)
}

/// Return the luma of an H×W×3 uint8 RGB image (ITU-R 601, rounded): a 2-D uint8 buffer.
#[pyfunction]
fn gray(py: Python<'_>, image: Buffer2<[u8; 3]>) -> PyResult<Exported<Array2<u8>>> {
    let luma = py.detach(|| {
        image.with_or_copy(|pixels| {
            pixels.map(|&[r, g, b]| {
                ((299 * u32::from(r) + 587 * u32::from(g) + 114 * u32::from(b) + 500) / 1000) as u8
            })
        })
    })?;
    Ok(export::from_array(py, luma)?)
}

/// A record of numpy's packed (`align=False`) dtype `[('frame', 'u4'), ('score', 'f8'),
/// ('x', 'u2'), ('y', 'u2'), ('label', 'u1')]`: 17 bytes, no padding.
#[derive(Clone, Copy, pybuf::Element)]
#[repr(C, packed)]
struct Frame {
    frame: u32,
    score: f64,
    x: u16,
    y: u16,
    label: u8,
}

type FrameTuple = (u32, f64, u16, u16, u8);

impl Frame {
    fn to_tuple(self) -> FrameTuple {
        (self.frame, self.score, self.x, self.y, self.label)
    }
}

/// Return the score of each frame of a 1-D array of numpy's packed frame records (any slice).
#[pyfunction]
fn frame_scores(frames: Buffer1<Frame>) -> PyResult<Vec<f64>> {
    Ok(frames.with(|v| v.iter().map(|f| f.score).collect())?)
}

/// Return the packed frame records in raw bytes (bytes, bytearray, mmap, ...) as a list of
/// (frame, score, x, y, label) tuples.
#[pyfunction]
fn parse_frames(data: AnyBuffer) -> PyResult<Vec<FrameTuple>> {
    let frames = data.reinterpret::<Frame>()?;
    Ok(frames.with(|v| v.iter().map(|f| f.to_tuple()).collect())?)
}

/// Functions that take arrays from Python through the buffer protocol, built on pybuf.
#[pymodule]
mod pybuf_testmod {
    #[pymodule_export]
    use super::{
        centroid, describe, fill, flatten, histogram, norm, outer, row_sums, scalar, scale,
        tobytes, total,
    };
    #[pymodule_export]
    use super::{count_true, frame_scores, gray, mean, parse_frames};
}
