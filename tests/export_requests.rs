//! `_testbuffer`-style request checks: every combination of request flag bits against C, F,
//! strided and 0-d exports, compared with CPython's `memoryview` of an equivalent numpy array
//! (and, for bytes, with `bytes`/`bytearray`): same acceptance, same filled fields.

use ndarray::{s, Array, Array0, Array2, ShapeBuilder};
use pybuf::export;
use pyo3::ffi;
use pyo3::prelude::*;
use std::ffi::CStr;

/// The eight request bits; their 256 subsets include every named request and more.
const BITS: [i32; 8] = [0x1, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80, 0x100];

#[derive(Debug, PartialEq)]
struct Filled {
    len: isize,
    itemsize: isize,
    readonly: i32,
    ndim: i32,
    format: Option<String>,
    shape: Option<Vec<isize>>,
    strides: Option<Vec<isize>>,
    suboffsets_null: bool,
}

/// Requests a buffer of `obj` with `flags`; returns the filled fields (and `buf`) or `None`
/// when refused (checking that the refusal raised `BufferError`).
fn request(obj: &Bound<'_, PyAny>, flags: i32) -> Option<(Filled, usize)> {
    let py = obj.py();
    let mut view = std::mem::MaybeUninit::<ffi::Py_buffer>::zeroed();
    // SAFETY: a zeroed Py_buffer to fill; `obj` is a live object.
    let rc = unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), view.as_mut_ptr(), flags) };
    if rc != 0 {
        let err = PyErr::take(py).expect("a failed request sets an exception");
        // CPython 3.13+ itself refuses a request of exactly `PyBUF_READ` (0x100) or
        // `PyBUF_WRITE` (0x200), memoryview constants rather than request bits, with a
        // SystemError before any exporter is asked (every exporter alike).
        if py.version_info() >= (3, 13) && (flags == 0x100 || flags == 0x200) {
            assert!(
                err.is_instance_of::<pyo3::exceptions::PySystemError>(py),
                "flags {flags:#x}: CPython's own refusal must be a SystemError, got {err}"
            );
        } else {
            assert!(
                err.is_instance_of::<pyo3::exceptions::PyBufferError>(py),
                "flags {flags:#x}: refusal must be a BufferError, got {err}"
            );
        }
        return None;
    }
    // SAFETY: the request succeeded, so `view` is filled.
    let mut view = unsafe { view.assume_init() };
    let dims = |p: *mut isize| -> Option<Vec<isize>> {
        if p.is_null() || view.ndim == 0 {
            (!p.is_null()).then(Vec::new)
        } else {
            // SAFETY: a non-null shape/strides array holds `ndim` entries.
            Some(unsafe { std::slice::from_raw_parts(p, view.ndim as usize) }.to_vec())
        }
    };
    let filled = Filled {
        len: view.len,
        itemsize: view.itemsize,
        readonly: view.readonly,
        ndim: view.ndim,
        // SAFETY: a non-null format is a NUL-terminated string.
        format: (!view.format.is_null()).then(|| {
            unsafe { CStr::from_ptr(view.format) }
                .to_str()
                .unwrap()
                .to_string()
        }),
        shape: dims(view.shape),
        strides: dims(view.strides),
        suboffsets_null: view.suboffsets.is_null(),
    };
    let buf = view.buf as usize;
    // SAFETY: releasing the view we acquired, once.
    unsafe { ffi::PyBuffer_Release(&mut view) };
    Some((filled, buf))
}

fn all_flags() -> impl Iterator<Item = i32> {
    (0u32..256).map(|mask| {
        BITS.iter()
            .enumerate()
            .filter(|(k, _)| mask & (1 << k) != 0)
            .map(|(_, b)| *b)
            .sum()
    })
}

/// Compares every request on `ours` with the same request on `reference`.
fn compare(py: Python<'_>, ours: &Bound<'_, PyAny>, reference: &Bound<'_, PyAny>, data: usize) {
    let mut accepted = 0;
    let mut refused = 0;
    for flags in all_flags() {
        let a = request(ours, flags);
        let b = request(reference, flags);
        match (&a, &b) {
            (Some((fa, buf)), Some((fb, _))) => {
                // an empty shape list and a NULL shape are the same for ndim 0
                assert_eq!(fa, fb, "flags {flags:#x}: filled fields");
                assert_eq!(*buf, data, "flags {flags:#x}: buf is the Rust data");
                accepted += 1;
            }
            (None, None) => refused += 1,
            _ => panic!(
                "flags {flags:#x}: ours {} but the reference {}",
                if a.is_some() { "accepted" } else { "refused" },
                if b.is_some() { "accepted" } else { "refused" },
            ),
        }
    }
    assert_eq!(accepted + refused, 256);
    // no view is left behind
    let x: &Bound<'_, pybuf::ExportedBuffer> = ours.cast().unwrap();
    assert_eq!(x.get().view_count(), 0);
    let _ = py;
}

fn eval<'py>(py: Python<'py>, code: &str) -> Bound<'py, PyAny> {
    let locals = pyo3::types::PyDict::new(py);
    locals.set_item("np", py.import("numpy").unwrap()).unwrap();
    let code = std::ffi::CString::new(code).unwrap();
    py.eval(&code, None, Some(&locals)).unwrap()
}

fn f64s(n: usize) -> Vec<f64> {
    (0..n).map(|i| i as f64).collect()
}

fn check<D: ndarray::Dimension + 'static>(arr: Array<f64, D>, numpy: &str) {
    Python::attach(|py| {
        for writable in [false, true] {
            let np_code = if writable {
                format!("memoryview({numpy})")
            } else {
                format!("(lambda a: (a.setflags(write=False), memoryview(a))[1])({numpy})")
            };
            let reference = eval(py, &np_code);
            let x = if writable {
                export::from_array_mut(py, arr.clone()).unwrap()
            } else {
                export::from_array(py, arr.clone()).unwrap()
            };
            let data = x.as_ptr() as usize;
            compare(py, x.bind(py).as_any(), &reference, data);
        }
    });
}

#[test]
fn c_order_requests_match_memoryview_of_numpy() {
    check(
        Array2::from_shape_vec((3, 4), f64s(12)).unwrap(),
        "np.arange(12.0).reshape(3, 4)",
    );
}

#[test]
fn fortran_order_requests_match_memoryview_of_numpy() {
    check(
        Array2::from_shape_vec((3, 4).f(), f64s(12)).unwrap(),
        "np.asfortranarray(np.arange(12.0).reshape(3, 4))",
    );
}

#[test]
fn strided_requests_match_memoryview_of_numpy() {
    check(
        Array2::from_shape_vec((5, 8), f64s(40))
            .unwrap()
            .slice_move(s![..;2, ..;-3]),
        "np.arange(40.0).reshape(5, 8)[::2, ::-3]",
    );
}

#[test]
fn one_d_and_zero_d_requests_match_memoryview_of_numpy() {
    check(Array::from_vec(f64s(6)), "np.arange(6.0)");
    check(
        Array::from_vec(f64s(10)).slice_move(s![..;-2]),
        "np.arange(10.0)[::-2]",
    );
    check(Array0::from_elem((), 4.0), "np.array(4.0)");
}

#[test]
fn byte_requests_match_bytes_and_bytearray() {
    Python::attach(|py| {
        let ro = export::from_vec(py, b"hello".to_vec()).unwrap();
        let data = ro.as_ptr() as usize;
        compare(py, ro.bind(py).as_any(), &eval(py, "b'hello'"), data);
        let rw = export::from_vec_mut(py, b"hello".to_vec()).unwrap();
        let data = rw.as_ptr() as usize;
        compare(
            py,
            rw.bind(py).as_any(),
            &eval(py, "bytearray(b'hello')"),
            data,
        );
    });
}
