//! Export of Rust memory to Python: every element type, every layout, values as numpy and
//! memoryview see them, writes, view counting and taking the data back.

use ndarray::{s, Array, Array0, Array2, Array3, ArrayD, Axis, IxDyn, ShapeBuilder};
use pybuf::export;
use pybuf::{be, le, Element, Error};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use pyo3::IntoPyObjectExt;

/// Runs `code` with `x`, numpy (`np`) and `extra` in scope; returns the locals.
fn run<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    extra: &[(&str, Bound<'py, PyAny>)],
    code: &str,
) -> Bound<'py, PyDict> {
    let locals = PyDict::new(py);
    locals.set_item("x", x).unwrap();
    locals.set_item("np", py.import("numpy").unwrap()).unwrap();
    for (name, value) in extra {
        locals.set_item(name, value).unwrap();
    }
    let code = std::ffi::CString::new(code).unwrap();
    py.run(&code, None, Some(&locals))
        .unwrap_or_else(|e| panic!("python failed: {e}\n{}", code.to_str().unwrap()));
    locals
}

fn get<'py, T: pyo3::conversion::FromPyObjectOwned<'py>>(
    locals: &Bound<'py, PyDict>,
    name: &str,
) -> T {
    locals
        .get_item(name)
        .unwrap()
        .unwrap_or_else(|| panic!("{name} not set"))
        .extract()
        .unwrap_or_else(|e| panic!("{name}: {}", Into::<PyErr>::into(e)))
}

/// A Rust value as the Python value numpy's `tolist()` gives for it.
trait PyValue: Element {
    fn py_value<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny>;
}

macro_rules! py_value_direct {
    ($($t:ty),*) => {$(
        impl PyValue for $t {
            fn py_value<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
                self.into_bound_py_any(py).unwrap()
            }
        }
    )*};
}
py_value_direct!(i8, i16, i32, i64, u8, u16, u32, u64, isize, usize, f32, f64, bool);

impl PyValue for half::f16 {
    fn py_value<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        f64::from(self.to_f32()).into_bound_py_any(py).unwrap()
    }
}

macro_rules! py_value_complex {
    ($($t:ty),*) => {$(
        impl PyValue for num_complex::Complex<$t> {
            fn py_value<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
                py.import("builtins")
                    .unwrap()
                    .getattr("complex")
                    .unwrap()
                    .call1((f64::from(self.re), f64::from(self.im)))
                    .unwrap()
            }
        }
    )*};
}
py_value_complex!(f32, f64);

impl<T: PyValue, const N: usize> PyValue for [T; N] {
    fn py_value<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        PyList::new(py, self.iter().map(|v| v.py_value(py)))
            .unwrap()
            .into_any()
    }
}

macro_rules! py_value_byte_order {
    ($($t:ty => $as:ty),*) => {$(
        impl PyValue for $t {
            fn py_value<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
                <$as>::from(self.get()).into_bound_py_any(py).unwrap()
            }
        }
    )*};
}
py_value_byte_order!(
    be::I16 => i16, be::U32 => u32, be::I64 => i64, be::F32 => f32, be::F64 => f64,
    le::U16 => u16, le::I32 => i32, le::U64 => u64, le::F32 => f32, le::F64 => f64
);

fn py_list<'py, T: PyValue>(py: Python<'py>, values: &[T]) -> Bound<'py, PyList> {
    PyList::new(py, values.iter().map(|v| v.py_value(py))).unwrap()
}

/// Exports `values` as a Vec and checks what numpy and memoryview see. `dtype` is the numpy
/// dtype numpy must infer, `format` the PEP 3118 format memoryview must report, `item_shape`
/// the sub-array shape numpy folds into the array shape.
fn check_vec<T: PyValue>(values: Vec<T>, dtype: &str, format: &str, item_shape: &[usize]) {
    Python::attach(|py| {
        let n = values.len();
        let expected = py_list(py, &values);
        // the raw bytes of the Rust values, for bytes(x)
        // SAFETY: (test) Element types are plain data without padding here.
        let rust_bytes = unsafe {
            std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), n * std::mem::size_of::<T>())
        }
        .to_vec();
        let x = export::from_vec(py, values).unwrap();
        let ptr = x.as_ptr() as usize;
        let locals = run(
            py,
            x.bind(py).as_any(),
            &[
                ("expected", expected.into_any()),
                ("dtype", pyo3::types::PyString::new(py, dtype).into_any()),
            ],
            "import struct\n\
             a = np.asarray(x)\n\
             ptr = a.__array_interface__['data'][0]\n\
             dtype_ok = a.dtype == np.dtype(dtype)\n\
             shape = a.shape\n\
             values_ok = a.tolist() == expected\n\
             writeable = a.flags.writeable\n\
             m = memoryview(x)\n\
             fmt, itemsize, mshape, mstrides, ro = m.format, m.itemsize, m.shape, m.strides, m.readonly\n\
             try:\n    calcsize = struct.calcsize(fmt)\n\
             except struct.error:\n    calcsize = None\n\
             raw = bytes(x)\n\
             cast = bytes(m.cast('B').tolist())\n\
             views_during = x.views\n\
             m.release()\n\
             del a\n",
        );
        let tname = T::type_name();
        assert_eq!(
            get::<usize>(&locals, "ptr"),
            ptr,
            "{tname}: numpy shares the memory"
        );
        assert!(get::<bool>(&locals, "dtype_ok"), "{tname}: dtype {dtype}");
        let mut shape = vec![n];
        shape.extend_from_slice(item_shape);
        assert_eq!(get::<Vec<usize>>(&locals, "shape"), shape, "{tname}");
        assert!(get::<bool>(&locals, "values_ok"), "{tname}: values");
        assert!(
            !get::<bool>(&locals, "writeable"),
            "{tname}: read-only export"
        );
        assert_eq!(get::<String>(&locals, "fmt"), format, "{tname}");
        let size = std::mem::size_of::<T>();
        assert_eq!(get::<usize>(&locals, "itemsize"), size, "{tname}");
        if let Some(calc) = get::<Option<usize>>(&locals, "calcsize") {
            assert_eq!(calc, size, "{tname}: struct.calcsize agrees with itemsize");
        }
        assert_eq!(get::<Vec<usize>>(&locals, "mshape"), [n], "{tname}");
        assert_eq!(
            get::<Vec<isize>>(&locals, "mstrides"),
            [size as isize],
            "{tname}"
        );
        assert!(get::<bool>(&locals, "ro"), "{tname}");
        assert_eq!(
            get::<Vec<u8>>(&locals, "raw"),
            rust_bytes,
            "{tname}: bytes(x)"
        );
        assert_eq!(
            get::<Vec<u8>>(&locals, "cast"),
            rust_bytes,
            "{tname}: cast('B')"
        );
        // memoryview(x), its cast, numpy's array and bytes(x)'s temporary view are gone
        assert!(get::<usize>(&locals, "views_during") >= 2, "{tname}");
        drop(locals);
        assert_eq!(x.view_count(), 0, "{tname}: all views released");
        let back = x.try_into_inner().unwrap();
        assert_eq!(back.len(), n);
    });
}

#[test]
fn every_element_type_as_numpy_and_memoryview_see_it() {
    use half::f16;
    use num_complex::Complex;
    check_vec(vec![-128i8, 0, 7, 127], "i1", "b", &[]);
    check_vec(vec![0u8, 1, 200, 255], "u1", "B", &[]);
    check_vec(vec![-32768i16, -1, 12345], "i2", "h", &[]);
    check_vec(vec![0u16, 65535, 3], "u2", "H", &[]);
    check_vec(vec![i32::MIN, -5, i32::MAX], "i4", "i", &[]);
    check_vec(vec![u32::MAX, 0, 17], "u4", "I", &[]);
    check_vec(vec![i64::MIN, -1, i64::MAX], "i8", "q", &[]);
    check_vec(vec![u64::MAX, 0, 1 << 40], "u8", "Q", &[]);
    check_vec(vec![isize::MIN, 0, isize::MAX], "i8", "q", &[]);
    check_vec(vec![usize::MAX, 0, 9], "u8", "Q", &[]);
    check_vec(vec![1.5f32, -0.25, f32::MAX], "f4", "f", &[]);
    check_vec(
        vec![1.5f64, -2.75, 1e300, f64::MIN_POSITIVE],
        "f8",
        "d",
        &[],
    );
    check_vec(vec![true, false, true, true], "?", "?", &[]);
    check_vec(
        vec![f16::from_f32(1.5), f16::from_f32(-0.5), f16::MAX],
        "f2",
        "e",
        &[],
    );
    check_vec(
        vec![Complex::new(1.0f32, -2.0), Complex::new(0.5, 0.25)],
        "c8",
        "Zf",
        &[],
    );
    check_vec(
        vec![Complex::new(1.0f64, -2.0), Complex::new(1e-300, 3.5)],
        "c16",
        "Zd",
        &[],
    );
    check_vec(
        vec![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]],
        "f4",
        "(3)f",
        &[3],
    );
    check_vec(
        vec![[[1i16, 2], [3, 4]], [[5, 6], [7, 8]]],
        "i2",
        "(2,2)h",
        &[2, 2],
    );
    check_vec(
        vec![be::F64::new(1.5), be::F64::new(-3.0)],
        ">f8",
        ">d",
        &[],
    );
    check_vec(vec![be::F32::new(0.5), be::F32::new(2.0)], ">f4", ">f", &[]);
    check_vec(vec![be::I16::new(-2), be::I16::new(300)], ">i2", ">h", &[]);
    check_vec(
        vec![be::U32::new(7), be::U32::new(u32::MAX)],
        ">u4",
        ">I",
        &[],
    );
    check_vec(
        vec![be::I64::new(-7), be::I64::new(1 << 50)],
        ">i8",
        ">q",
        &[],
    );
    check_vec(vec![le::F64::new(1.5), le::F64::new(-3.0)], "<f8", "d", &[]);
    check_vec(vec![le::F32::new(1.5)], "<f4", "f", &[]);
    check_vec(vec![le::U16::new(513)], "<u2", "H", &[]);
    check_vec(vec![le::I32::new(-513)], "<i4", "i", &[]);
    check_vec(vec![le::U64::new(u64::MAX)], "<u8", "Q", &[]);
}

/// Checks an exported f64 array against numpy's view of it: memory, shape, strides, values,
/// memoryview fields, bytes(x) and (for C-contiguous exports) memoryview.cast('B').
fn check_array<D: ndarray::Dimension + 'static>(arr: Array<f64, D>) {
    Python::attach(|py| {
        let shape = arr.shape().to_vec();
        let strides: Vec<isize> = if arr.is_empty() {
            // empty exports get C-order strides (computed here by numpy's rule)
            let mut st = vec![8isize; shape.len()];
            for k in (0..shape.len().saturating_sub(1)).rev() {
                st[k] = st[k + 1] * shape[k + 1].max(1) as isize;
            }
            st
        } else {
            arr.strides().iter().map(|s| s * 8).collect()
        };
        let logical: Vec<f64> = arr.iter().copied().collect();
        let c_contig = arr.is_standard_layout() || arr.is_empty();
        let c_bytes: Vec<u8> = logical.iter().flat_map(|v| v.to_ne_bytes()).collect();
        let x = export::from_array(py, arr).unwrap();
        let locals = run(
            py,
            x.bind(py).as_any(),
            &[],
            "a = np.asarray(x)\n\
             ptr = a.__array_interface__['data'][0]\n\
             shape, strides, flat = a.shape, a.strides, a.ravel(order='C').tolist()\n\
             dtype = a.dtype.str\n\
             m = memoryview(x)\n\
             mshape, mstrides, mro, mfmt = m.shape, m.strides, m.readonly, m.format\n\
             mflat = np.array(m.tolist()).ravel().tolist()\n\
             raw = bytes(x)\n\
             tob = a.tobytes(order='C')\n\
             cast = bytes(m.cast('B').tolist()) if m.c_contiguous and m.nbytes else b''\n\
             mc = m.c_contiguous\n\
             m.release()\n\
             del a\n",
        );
        let what = format!("shape {shape:?} strides {strides:?}");
        assert_eq!(get::<usize>(&locals, "ptr"), x.as_ptr() as usize, "{what}");
        assert_eq!(get::<Vec<usize>>(&locals, "shape"), shape, "{what}");
        assert_eq!(get::<Vec<isize>>(&locals, "strides"), strides, "{what}");
        assert_eq!(get::<Vec<f64>>(&locals, "flat"), logical, "{what}");
        assert_eq!(get::<String>(&locals, "dtype"), "<f8", "{what}");
        assert_eq!(get::<Vec<usize>>(&locals, "mshape"), shape, "{what}");
        assert_eq!(get::<Vec<isize>>(&locals, "mstrides"), strides, "{what}");
        assert!(get::<bool>(&locals, "mro"), "{what}");
        assert_eq!(get::<String>(&locals, "mfmt"), "d", "{what}");
        assert_eq!(get::<Vec<f64>>(&locals, "mflat"), logical, "{what}");
        assert_eq!(get::<Vec<u8>>(&locals, "raw"), c_bytes, "{what}");
        assert_eq!(get::<Vec<u8>>(&locals, "tob"), c_bytes, "{what}");
        assert_eq!(get::<bool>(&locals, "mc"), c_contig, "{what}");
        if c_contig {
            assert_eq!(get::<Vec<u8>>(&locals, "cast"), c_bytes, "{what}");
        }
        drop(locals);
        let back = x.try_into_inner().unwrap();
        assert_eq!(back.iter().copied().collect::<Vec<_>>(), logical);
    });
}

fn iota(n: usize) -> Vec<f64> {
    (0..n).map(|i| i as f64 * 1.5 - 4.0).collect()
}

#[test]
fn every_layout_as_numpy_and_memoryview_see_it() {
    check_array(Array0::from_elem((), 2.5));
    check_array(ArrayD::from_shape_vec(IxDyn(&[]), vec![-1.25]).unwrap());
    check_array(Array::from_vec(iota(7)));
    check_array(Array::from_vec(Vec::<f64>::new()));
    check_array(Array2::from_shape_vec((3, 4), iota(12)).unwrap());
    check_array(Array2::from_shape_vec((3, 4).f(), iota(12)).unwrap());
    check_array(
        Array2::from_shape_vec((3, 4), iota(12))
            .unwrap()
            .reversed_axes(),
    );
    check_array(Array3::from_shape_vec((2, 3, 4).f(), iota(24)).unwrap());
    check_array(Array2::from_shape_vec((3, 0), vec![]).unwrap());
    let mut inv = Array2::from_shape_vec((3, 4), iota(12)).unwrap();
    inv.invert_axis(Axis(0));
    check_array(inv);
    let mut inv_both = Array2::from_shape_vec((3, 4).f(), iota(12)).unwrap();
    inv_both.invert_axis(Axis(0));
    inv_both.invert_axis(Axis(1));
    check_array(inv_both);
    check_array(
        Array2::from_shape_vec((5, 8), iota(40))
            .unwrap()
            .slice_move(s![..;2, ..;-3]),
    );
    check_array(
        Array3::from_shape_vec((4, 5, 6), iota(120))
            .unwrap()
            .slice_move(s![1..;2, ..;-1, 2..5]),
    );
    check_array(Array::from_vec(iota(10)).slice_move(s![..;-2]));
    check_array(
        ArrayD::from_shape_vec(IxDyn(&[2, 1, 3, 2]), iota(12))
            .unwrap()
            .permuted_axes(IxDyn(&[3, 1, 0, 2])),
    );
}

#[test]
fn boxed_slices_export_like_vectors() {
    Python::attach(|py| {
        let x = export::from_boxed_slice(py, vec![1u32, 2, 3].into_boxed_slice()).unwrap();
        let locals = run(py, x.bind(py).as_any(), &[], "v = np.asarray(x).tolist()\n");
        assert_eq!(get::<Vec<u32>>(&locals, "v"), [1, 2, 3]);
        drop(locals);
        let back: Box<[u32]> = x.try_into_inner().unwrap();
        assert_eq!(&*back, &[1, 2, 3]);
    });
}

#[test]
fn try_into_inner_waits_for_views_to_be_released() {
    Python::attach(|py| {
        let x = export::from_vec(py, vec![1.0f64, 2.0, 3.0]).unwrap();
        let locals = run(py, x.bind(py).as_any(), &[], "m = memoryview(x)\n");
        assert_eq!(x.view_count(), 1);
        match x.try_into_inner() {
            Err(Error::ViewsAlive { count }) => assert_eq!(count, 1),
            other => panic!("expected ViewsAlive, got {other:?}"),
        }
        // the failed attempt changed nothing: the view still reads the data
        let m = locals.get_item("m").unwrap().unwrap();
        assert_eq!(
            m.call_method0("tolist")
                .unwrap()
                .extract::<Vec<f64>>()
                .unwrap(),
            [1.0, 2.0, 3.0]
        );
        m.call_method0("release").unwrap();
        assert_eq!(x.view_count(), 0);
        assert_eq!(x.try_into_inner().unwrap(), [1.0, 2.0, 3.0]);
        // taken: Python can no longer view it, and Rust can't take it twice
        let err = py
            .import("builtins")
            .unwrap()
            .getattr("memoryview")
            .unwrap()
            .call1((x.bind(py),))
            .unwrap_err();
        assert!(
            err.is_instance_of::<pyo3::exceptions::PyBufferError>(py),
            "{err}"
        );
        assert!(matches!(x.try_into_inner(), Err(Error::ExportTaken)));
    });
}

#[test]
fn numpy_views_count_until_the_array_is_gone() {
    Python::attach(|py| {
        let x = export::from_array(py, Array2::from_shape_vec((2, 2), iota(4)).unwrap()).unwrap();
        let locals = run(
            py,
            x.bind(py).as_any(),
            &[],
            "a = np.asarray(x)\nb = a[1:]\n",
        );
        assert!(matches!(x.try_into_inner(), Err(Error::ViewsAlive { .. })));
        locals.del_item("a").unwrap();
        assert!(
            matches!(x.try_into_inner(), Err(Error::ViewsAlive { .. })),
            "b keeps it"
        );
        locals.del_item("b").unwrap();
        assert_eq!(
            x.try_into_inner().unwrap().into_raw_vec_and_offset().0,
            iota(4)
        );
    });
}

#[test]
fn writes_through_a_writable_export_are_seen_by_rust() {
    Python::attach(|py| {
        let arr = Array2::from_shape_vec((3, 4).f(), iota(12)).unwrap();
        let x = export::from_array_mut(py, arr).unwrap();
        assert!(x.is_writable());
        let locals = run(
            py,
            x.bind(py).as_any(),
            &[],
            "a = np.asarray(x)\n\
             w = a.flags.writeable\n\
             a[1, 2] = 100.0\n\
             a[:, 0] *= -1\n\
             m = memoryview(x)\n\
             ro = m.readonly\n\
             m[2, 3] = 7.5\n\
             m.release()\n\
             expected = a.tolist()\n\
             del a\n",
        );
        assert!(get::<bool>(&locals, "w"));
        assert!(!get::<bool>(&locals, "ro"));
        let expected: Vec<Vec<f64>> = get(&locals, "expected");
        assert_eq!(expected[1][2], 100.0);
        assert_eq!(expected[2][3], 7.5);
        let back = x.try_into_inner().unwrap();
        let rows: Vec<Vec<f64>> = back.rows().into_iter().map(|r| r.to_vec()).collect();
        assert_eq!(rows, expected);
        assert!(back.t().is_standard_layout(), "still Fortran order");
    });
}

#[test]
fn read_only_exports_refuse_writes() {
    Python::attach(|py| {
        let x = export::from_vec(py, vec![1i32, 2]).unwrap();
        let locals = run(
            py,
            x.bind(py).as_any(),
            &[],
            "a = np.asarray(x)\n\
             w = a.flags.writeable\n\
             try:\n    a[0] = 5\n    err = None\n\
             except ValueError as e:\n    err = 'ValueError'\n\
             m = memoryview(x)\n\
             try:\n    m[0] = 5\n    merr = None\n\
             except TypeError:\n    merr = 'TypeError'\n\
             m.release()\n\
             del a\n",
        );
        assert!(!get::<bool>(&locals, "w"));
        assert_eq!(
            get::<Option<String>>(&locals, "err").as_deref(),
            Some("ValueError")
        );
        assert_eq!(
            get::<Option<String>>(&locals, "merr").as_deref(),
            Some("TypeError")
        );
        drop(locals);
        assert_eq!(x.try_into_inner().unwrap(), [1, 2]);
    });
}

#[test]
fn rust_reads_while_exported_never_race_python_writes() {
    Python::attach(|py| {
        // read-only export: Rust may read while Python views it
        let ro = export::from_vec(py, vec![1u8, 2, 3]).unwrap();
        let locals = run(py, ro.bind(py).as_any(), &[], "m = memoryview(x)\n");
        assert_eq!(ro.with_inner(|s| s.iter().sum::<u8>()).unwrap(), 6);
        drop(locals);

        // writable export: not while a view lives, and no view while Rust reads
        let rw = export::from_vec_mut(py, vec![1u8, 2, 3]).unwrap();
        let locals = run(py, rw.bind(py).as_any(), &[], "m = memoryview(x)\n");
        assert!(matches!(
            rw.with_inner(|s| s.len()),
            Err(Error::BorrowConflict { .. })
        ));
        locals
            .get_item("m")
            .unwrap()
            .unwrap()
            .call_method0("release")
            .unwrap();
        let refused = rw
            .with_inner(|s| {
                let err = py
                    .import("builtins")
                    .unwrap()
                    .getattr("memoryview")
                    .unwrap()
                    .call1((rw.bind(py),))
                    .unwrap_err();
                (
                    s.to_vec(),
                    err.is_instance_of::<pyo3::exceptions::PyBufferError>(py),
                )
            })
            .unwrap();
        assert_eq!(refused, (vec![1, 2, 3], true));
        // after the read, views work again
        let locals = run(py, rw.bind(py).as_any(), &[], "v = bytes(x)\n");
        assert_eq!(get::<Vec<u8>>(&locals, "v"), [1, 2, 3]);
    });
}

#[test]
fn invalid_bools_written_by_python_are_caught() {
    Python::attach(|py| {
        let x = export::from_vec_mut(py, vec![true, false, true]).unwrap();
        run(
            py,
            x.bind(py).as_any(),
            &[],
            "m = memoryview(x).cast('B')\nm[1] = 2\nm.release()\n",
        );
        match x.try_into_inner() {
            Err(Error::InvalidValue {
                position, bytes, ..
            }) => {
                assert_eq!((position, bytes), (1, vec![2]))
            }
            other => panic!("expected InvalidValue, got {other:?}"),
        }
        assert!(matches!(
            x.with_inner(|_| ()),
            Err(Error::InvalidValue { .. })
        ));
        run(
            py,
            x.bind(py).as_any(),
            &[],
            "m = memoryview(x).cast('B')\nm[1] = 1\nm.release()\n",
        );
        assert_eq!(x.try_into_inner().unwrap(), [true, true, true]);
    });
}
