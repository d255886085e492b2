//! Export of Rust memory to Python: every element type, every layout, values as numpy and
//! memoryview see them, writes, view counting and taking the data back.

use ndarray::{s, Array, Array0, Array2, Array3, ArrayD, Axis, IxDyn, ShapeBuilder};
use pybuf::export::{self, ExportSource, Exported};
use pybuf::format::{Field, ItemKind, ItemLayout, Scalar, ScalarKind};
use pybuf::{be, le, Element, Error};
use pyo3::prelude::*;
use pyo3::IntoPyObjectExt;
use pyo3::types::{PyDict, PyList};

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

fn get<'py, T: pyo3::conversion::FromPyObjectOwned<'py>>(locals: &Bound<'py, PyDict>, name: &str) -> T {
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
        assert_eq!(get::<usize>(&locals, "ptr"), ptr, "{tname}: numpy shares the memory");
        assert!(get::<bool>(&locals, "dtype_ok"), "{tname}: dtype {dtype}");
        let mut shape = vec![n];
        shape.extend_from_slice(item_shape);
        assert_eq!(get::<Vec<usize>>(&locals, "shape"), shape, "{tname}");
        assert!(get::<bool>(&locals, "values_ok"), "{tname}: values");
        assert!(!get::<bool>(&locals, "writeable"), "{tname}: read-only export");
        assert_eq!(get::<String>(&locals, "fmt"), format, "{tname}");
        let size = std::mem::size_of::<T>();
        assert_eq!(get::<usize>(&locals, "itemsize"), size, "{tname}");
        if let Some(calc) = get::<Option<usize>>(&locals, "calcsize") {
            assert_eq!(calc, size, "{tname}: struct.calcsize agrees with itemsize");
        }
        assert_eq!(get::<Vec<usize>>(&locals, "mshape"), [n], "{tname}");
        assert_eq!(get::<Vec<isize>>(&locals, "mstrides"), [size as isize], "{tname}");
        assert!(get::<bool>(&locals, "ro"), "{tname}");
        assert_eq!(get::<Vec<u8>>(&locals, "raw"), rust_bytes, "{tname}: bytes(x)");
        assert_eq!(get::<Vec<u8>>(&locals, "cast"), rust_bytes, "{tname}: cast('B')");
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
    check_vec(vec![1.5f64, -2.75, 1e300, f64::MIN_POSITIVE], "f8", "d", &[]);
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
    check_vec(vec![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]], "f4", "(3)f", &[3]);
    check_vec(vec![[[1i16, 2], [3, 4]], [[5, 6], [7, 8]]], "i2", "(2,2)h", &[2, 2]);
    check_vec(vec![be::F64::new(1.5), be::F64::new(-3.0)], ">f8", ">d", &[]);
    check_vec(vec![be::F32::new(0.5), be::F32::new(2.0)], ">f4", ">f", &[]);
    check_vec(vec![be::I16::new(-2), be::I16::new(300)], ">i2", ">h", &[]);
    check_vec(vec![be::U32::new(7), be::U32::new(u32::MAX)], ">u4", ">I", &[]);
    check_vec(vec![be::I64::new(-7), be::I64::new(1 << 50)], ">i8", ">q", &[]);
    check_vec(vec![le::F64::new(1.5), le::F64::new(-3.0)], "<f8", "d", &[]);
    check_vec(vec![le::F32::new(1.5)], "<f4", "f", &[]);
    check_vec(vec![le::U16::new(513)], "<u2", "H", &[]);
    check_vec(vec![le::I32::new(-513)], "<i4", "i", &[]);
    check_vec(vec![le::U64::new(u64::MAX)], "<u8", "Q", &[]);
}
