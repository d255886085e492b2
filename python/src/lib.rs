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

use ndarray::{Array2, ArrayD, Axis, IxDyn, Order, Zip};
use pybuf::export::{self, Exported};
use pybuf::num_complex::Complex;
use pybuf::{
    ndarray, AnyBuffer, Bool, Buffer0, Buffer1, Buffer2, BufferD, BufferMut1, BufferMutD, Element,
    ElementKind, Error, ExportedBuffer,
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

// ---- Returning arrays: exports of every element type and layout ---------------------------

/// Copies a buffer's elements (C order) into an owned array of its shape.
fn owned_copy<T: Element>(any: AnyBuffer) -> PyResult<ArrayD<T>> {
    let shape = any.shape().to_vec();
    let values = any.typed::<T, IxDyn>()?.to_vec()?;
    ArrayD::from_shape_vec(IxDyn(&shape), values).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// The same values (logical order) laid out in memory as `layout` says.
fn relaid<T: Element>(array: ArrayD<T>, layout: &str) -> PyResult<ArrayD<T>> {
    Ok(match layout {
        "C" => array,
        // Fortran order: the C-order copy of the transposed array, transposed back
        "F" => array
            .reversed_axes()
            .as_standard_layout()
            .into_owned()
            .reversed_axes(),
        // every axis reversed in memory, so every stride is negative (length > 1)
        "reversed" => {
            let mut flipped = array;
            for axis in 0..flipped.ndim() {
                flipped.invert_axis(Axis(axis));
            }
            let mut stored = flipped.as_standard_layout().into_owned();
            for axis in 0..stored.ndim() {
                stored.invert_axis(Axis(axis));
            }
            stored
        }
        // every other element of an array twice as long on each axis: the owner keeps the
        // elements in between, which the export does not show
        "strided" => {
            let Some(&fill) = array.iter().next() else {
                return Ok(array);
            };
            let big: Vec<usize> = array.shape().iter().map(|&d| 2 * d).collect();
            let mut storage = ArrayD::from_elem(IxDyn(&big), fill);
            storage
                .slice_each_axis_mut(|_| ndarray::Slice::new(0, None, 2))
                .assign(&array);
            storage.slice_each_axis_inplace(|_| ndarray::Slice::new(0, None, 2));
            storage
        }
        other => {
            return Err(PyValueError::new_err(format!(
                "expected layout 'C', 'F', 'reversed' or 'strided', got '{other}'"
            )))
        }
    })
}

fn exported<T: Element>(
    py: Python<'_>,
    any: AnyBuffer,
    writable: bool,
    layout: &str,
) -> PyResult<Py<ExportedBuffer>> {
    let array = relaid(owned_copy::<T>(any)?, layout)?;
    let result = if writable {
        export::from_array_mut(py, array)
    } else {
        export::from_array(py, array)
    };
    Ok(result?.unbind())
}

/// Return a Rust-owned copy of a numeric buffer as a pybuf.ExportedBuffer: same dtype, shape
/// and values, laid out in memory in `layout` order.
///
/// `layout` is 'C', 'F', 'reversed' (every stride negative) or 'strided' (every other element
/// of a larger Rust array on each axis). `writable` makes consumers' views writable.
#[pyfunction]
#[pyo3(signature = (x, writable = false, layout = "C"))]
fn export_copy(x: &Bound<'_, PyAny>, writable: bool, layout: &str) -> PyResult<Py<ExportedBuffer>> {
    let py = x.py();
    let any = AnyBuffer::get(x)?;
    match any.element_kind() {
        ElementKind::Bool => exported::<bool>(py, any, writable, layout),
        ElementKind::I8 => exported::<i8>(py, any, writable, layout),
        ElementKind::U8 => exported::<u8>(py, any, writable, layout),
        ElementKind::I16 => exported::<i16>(py, any, writable, layout),
        ElementKind::U16 => exported::<u16>(py, any, writable, layout),
        ElementKind::I32 => exported::<i32>(py, any, writable, layout),
        ElementKind::U32 => exported::<u32>(py, any, writable, layout),
        ElementKind::I64 => exported::<i64>(py, any, writable, layout),
        ElementKind::U64 => exported::<u64>(py, any, writable, layout),
        ElementKind::F16 => exported::<pybuf::half::f16>(py, any, writable, layout),
        ElementKind::F32 => exported::<f32>(py, any, writable, layout),
        ElementKind::F64 => exported::<f64>(py, any, writable, layout),
        ElementKind::ComplexF32 => exported::<Complex<f32>>(py, any, writable, layout),
        ElementKind::ComplexF64 => exported::<Complex<f64>>(py, any, writable, layout),
        _ => Err(any
            .unsupported_element(&["numbers (bool, int8..uint64, float16..float64, complex64/128)"])
            .into()),
    }
}

/// A particle: numpy's `dtype([('id', 'u4'), ('pos', 'f4', (3,)), ('alive', '?')],
/// align=True)`, 20 bytes with 3 bytes of trailing padding.
#[derive(Clone, Copy, pybuf::Element)]
#[repr(C)]
struct Particle {
    id: u32,
    pos: [f32; 3],
    alive: bool,
}

/// A segment of two points and a tag: a record holding records, with padding after `tag`.
#[derive(Clone, Copy, pybuf::Element)]
#[repr(C)]
struct Segment {
    tag: u8,
    a: Point,
    b: Point,
}

/// A packed record: numpy's `dtype([('frame', 'u4'), ('score', 'f8'), ('label', 'u1')])`.
#[derive(Clone, Copy, pybuf::Element)]
#[repr(C, packed)]
struct Packed {
    frame: u32,
    score: f64,
    label: u8,
}

fn records<T: Element>(
    py: Python<'_>,
    n: usize,
    make: impl Fn(usize) -> T,
    writable: bool,
    strided: bool,
) -> PyResult<Py<ExportedBuffer>> {
    // strided: every other record of twice as many, so the owner keeps records (and their
    // padding) that the export does not show
    let step = if strided { 2 } else { 1 };
    let mut array = ndarray::Array1::from_iter((0..n * step).map(&make));
    if strided {
        array.slice_axis_inplace(Axis(0), ndarray::Slice::new(0, None, 2));
    }
    let result = if writable {
        export::from_array_mut(py, array)
    } else {
        export::from_array(py, array)
    };
    Ok(result?.unbind())
}

/// Return `n` records of kind 'particle', 'point', 'segment' or 'packed' as a
/// pybuf.ExportedBuffer, with values computed from the index.
///
/// `strided` exports every other record of a Rust array twice as long.
#[pyfunction]
#[pyo3(signature = (kind, n, writable = false, strided = false))]
fn export_records(
    py: Python<'_>,
    kind: &str,
    n: usize,
    writable: bool,
    strided: bool,
) -> PyResult<Py<ExportedBuffer>> {
    let point = |i: usize| Point {
        x: i as f64 + 0.5,
        y: -(i as f64),
    };
    match kind {
        "particle" => records(
            py,
            n,
            |i| Particle {
                id: i as u32 * 7,
                pos: [i as f32, 0.25, -(i as f32)],
                alive: i % 2 == 0,
            },
            writable,
            strided,
        ),
        "point" => records(py, n, point, writable, strided),
        "segment" => records(
            py,
            n,
            |i| Segment {
                tag: i as u8,
                a: point(i),
                b: point(i + 1),
            },
            writable,
            strided,
        ),
        "packed" => records(
            py,
            n,
            |i| Packed {
                frame: i as u32,
                score: i as f64 / 4.0,
                label: (i % 256) as u8,
            },
            writable,
            strided,
        ),
        other => Err(PyValueError::new_err(format!(
            "expected kind 'particle', 'point', 'segment' or 'packed', got '{other}'"
        ))),
    }
}

/// Return float64 values stored big-endian (format '>d') as a pybuf.ExportedBuffer.
#[pyfunction]
fn export_big_endian(py: Python<'_>, values: Vec<f64>) -> PyResult<Py<ExportedBuffer>> {
    let data: Vec<pybuf::be::F64> = values.into_iter().map(pybuf::be::F64::new).collect();
    Ok(export::from_vec(py, data)?.unbind())
}

/// Return the rows of an N×3 float32 buffer as N items of type [f32; 3] (format '(3)f'), as a
/// pybuf.ExportedBuffer.
#[pyfunction]
#[pyo3(signature = (x, writable = false))]
fn export_vectors(py: Python<'_>, x: Buffer2<f32>, writable: bool) -> PyResult<Py<ExportedBuffer>> {
    if x.shape()[1] != 3 {
        return Err(PyValueError::new_err(format!(
            "expected 3 columns, got {}",
            x.shape()[1]
        )));
    }
    let flat = x.to_vec()?;
    let rows: Vec<[f32; 3]> = flat.chunks_exact(3).map(|r| [r[0], r[1], r[2]]).collect();
    let result = if writable {
        export::from_vec_mut(py, rows)
    } else {
        export::from_vec(py, rows)
    };
    Ok(result?.unbind())
}

/// Return the outer product of two 1-D float64 buffers as a writable numpy.ndarray that
/// shares Rust-owned memory (numpy is imported at run time).
#[pyfunction]
fn outer_array<'py>(
    py: Python<'py>,
    a: Buffer1<f64>,
    b: Buffer1<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    let (a, b) = (a.read()?, b.read()?);
    let (a, b) = (a.view(), b.view());
    let product = py.detach(|| &a.insert_axis(Axis(1)) * &b);
    Ok(export::from_array_mut(py, product)?.to_numpy(py)?)
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
    #[pymodule_export]
    use super::{export_big_endian, export_copy, export_records, export_vectors, outer_array};
    #[pymodule_export]
    use pybuf::ExportedBuffer;
}
