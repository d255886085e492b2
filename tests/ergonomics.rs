//! The easy path for extension authors (issue 15): view-or-copy, the handle aliases,
//! `AnyBuffer` arguments, re-exported crates and `dispatch!`.

mod common;

use common::{eval, namespace, run};
use pybuf::{
    AnyBuffer, Buffer1, Buffer2, Buffer3, BufferD, BufferMut1, BufferMut2, BufferMut3, BufferMutD,
    Error, ViewOrCopy,
};
use pyo3::prelude::*;

/// numpy's values of `expr` in C order, as f64.
fn numpy_values(g: &Bound<'_, pyo3::types::PyDict>, expr: &str) -> Vec<f64> {
    eval(
        g,
        &format!("np.asarray({expr}, dtype=float).ravel().tolist()"),
    )
    .extract()
    .unwrap()
}

/// The items of `expr` in C order as Python reads them (memoryview for suboffsets, which
/// numpy does not import).
fn python_values(g: &Bound<'_, pyo3::types::PyDict>, expr: &str) -> Vec<f64> {
    eval(
        g,
        &format!(
            "(lambda m: np.ravel(m.tolist()).tolist() if m.suboffsets else np.asarray({expr}).ravel().tolist())(memoryview({expr}))"
        ),
    )
    .extract()
    .unwrap()
}

// ---- read_or_copy / with_or_copy ----------------------------------------------------------

#[test]
fn read_or_copy_views_where_it_can() {
    Python::attach(|py| {
        let g = namespace(py);
        for make in [
            "np.arange(12.0).reshape(3, 4)",
            "np.arange(12.0).reshape(3, 4)[::-1, ::2]",
            "np.asfortranarray(np.arange(12.0).reshape(3, 4))",
            "np.broadcast_to(np.arange(4.0), (3, 4))",
            "np.zeros((0, 4))",
        ] {
            run(py, &g, &format!("x = {make}"));
            let expr = "x";
            let buf = Buffer2::<f64>::get(&eval(&g, expr)).unwrap();
            let items = buf.read_or_copy().unwrap();
            assert!(items.is_view(), "{make}");
            assert_eq!(
                items.view().iter().copied().collect::<Vec<_>>(),
                numpy_values(&g, expr),
                "{make}"
            );
            // the view is a registered borrow: a writer of the same memory is refused
            let writer = Buffer2::<f64>::get_mut(&eval(&g, expr));
            if let Ok(writer) = writer {
                if !buf.is_empty() && !writer.is_readonly() {
                    assert!(matches!(writer.write(), Err(Error::BorrowConflict { .. })));
                }
            }
        }
    });
}

#[test]
fn read_or_copy_copies_where_no_view_can_exist() {
    Python::attach(|py| {
        let g = namespace(py);
        run(
            py,
            &g,
            "rec = np.zeros(5, dtype=[('tag', 'u1'), ('x', 'f8')])\n\
             rec['x'] = np.arange(5) * 1.5\n\
             mis = np.frombuffer(bytearray(8 * 6 + 1), 'f8', offset=1).reshape(2, 3)\n\
             mis[...] = [[1, 2, 3], [4, 5, 6]]\n\
             pil = _testbuffer.ndarray([float(i) for i in range(6)], shape=[2, 3], format='d', flags=_testbuffer.ND_PIL)\n",
        );
        type Why = fn(&Error) -> bool;
        let cases: [(&str, Why); 3] = [
            ("rec['x']", |e| matches!(e, Error::StrideNotMultiple { .. })),
            ("mis", |e| matches!(e, Error::Misaligned { .. })),
            ("pil", |e| matches!(e, Error::Suboffsets)),
        ];
        for (expr, why) in cases {
            let buf = BufferD::<f64>::get(&eval(&g, expr)).unwrap();
            let err = buf.read().unwrap_err();
            assert!(why(&err), "{expr}: {err}");
            let items = buf.read_or_copy().unwrap();
            assert!(matches!(items, ViewOrCopy::Copy(_)), "{expr}");
            let expected = python_values(&g, expr);
            assert_eq!(items.as_slice().unwrap(), expected.as_slice(), "{expr}");
            assert_eq!(items.view().shape(), buf.shape());
            let sum = buf.with_or_copy(|v| v.sum()).unwrap();
            assert_eq!(sum, expected.iter().sum::<f64>());
            assert_eq!(items.into_owned().into_raw_vec_and_offset().0, expected);
        }
    });
}

#[test]
fn read_or_copy_keeps_borrow_conflicts_and_invalid_values() {
    Python::attach(|py| {
        let g = namespace(py);
        // a copy must not bypass the registry: a live write guard still conflicts
        run(
            py,
            &g,
            "rec = np.zeros(4, dtype=[('tag', 'u1'), ('x', 'f8')])",
        );
        let raw = Buffer1::<u8>::get_mut(&eval(&g, "rec.view(np.uint8)")).unwrap();
        let x = Buffer1::<f64>::get(&eval(&g, "rec['x']")).unwrap();
        {
            let _writing = raw.write().unwrap();
            assert!(matches!(
                x.read_or_copy(),
                Err(Error::BorrowConflict { .. })
            ));
            assert!(matches!(
                x.with_or_copy(|v| v.sum()),
                Err(Error::BorrowConflict { .. })
            ));
        }
        assert!(x.read_or_copy().is_ok());

        // invalid values are errors for the view and for the copy
        let aligned =
            Buffer1::<bool>::get(&eval(&g, "np.frombuffer(b'\\x01\\x02', bool)")).unwrap();
        assert!(matches!(
            aligned.read_or_copy(),
            Err(Error::InvalidValue { position: 1, .. })
        ));
        // a strided view that skips the invalid bytes is valid
        let skipping = Buffer1::<bool>::get(&eval(
            &g,
            "np.frombuffer(b'\\x01\\x02\\x00\\x02', bool)[::2]",
        ))
        .unwrap();
        let items = skipping.read_or_copy().unwrap();
        assert!(items.is_view());
        assert_eq!(items.view().to_vec(), [true, false]);
        let pil = Buffer1::<bool>::get(&eval(
            &g,
            "_testbuffer.ndarray([True, False, True], shape=[3], format='?', flags=_testbuffer.ND_PIL)",
        ))
        .unwrap();
        let items = pil.read_or_copy().unwrap();
        assert!(!items.is_view());
        assert_eq!(items.as_slice().unwrap(), [true, false, true]);
    });
}

// ---- aliases -------------------------------------------------------------------------------

#[test]
fn three_d_and_writable_aliases() {
    Python::attach(|py| {
        let g = namespace(py);
        run(
            py,
            &g,
            "cube = np.arange(24, dtype=np.int32).reshape(2, 3, 4)",
        );
        let cube = Buffer3::<i32>::get(&eval(&g, "cube")).unwrap();
        assert_eq!(cube.dim(), (2, 3, 4));
        assert_eq!(cube.item((1, 2, 3)).unwrap(), 23);
        assert!(matches!(
            Buffer3::<i32>::get(&eval(&g, "cube[0]")),
            Err(Error::Dimensions { .. })
        ));

        let out1: BufferMut1<i32> = eval(&g, "cube[0, 0]").extract().unwrap();
        out1.copy_from_slice(&[-1, -2, -3, -4]).unwrap();
        let out2: BufferMut2<i32> = eval(&g, "cube[1]").extract().unwrap();
        out2.with_mut(|mut v| v.fill(7)).unwrap();
        let out3: BufferMut3<i32> = eval(&g, "cube").extract().unwrap();
        assert_eq!(out3.shape(), [2, 3, 4]);
        let outd: BufferMutD<i32> = eval(&g, "cube[0, 1:]").extract().unwrap();
        assert_eq!(outd.ndim(), 2);
        assert_eq!(
            eval(&g, "cube[0, 0].tolist() + cube[1].ravel().tolist()")
                .extract::<Vec<i32>>()
                .unwrap(),
            [vec![-1, -2, -3, -4], vec![7; 12]].concat()
        );
        // the number of dimensions is checked, and writable memory is required
        assert!(matches!(
            eval(&g, "cube").extract::<BufferMut2<i32>>(),
            Err(Error::Dimensions { .. })
        ));
        assert!(matches!(
            eval(&g, "bytes(4)").extract::<BufferMut1<u8>>(),
            Err(Error::ReadOnly { .. })
        ));
    });
}

// ---- AnyBuffer as an argument, re-exports ---------------------------------------------------

#[test]
fn any_buffer_extracts_like_an_argument() {
    Python::attach(|py| {
        let g = namespace(py);
        let any: AnyBuffer = eval(&g, "np.zeros((2, 3), np.float32)").extract().unwrap();
        assert_eq!(any.element_kind(), pybuf::ElementKind::F32);
        assert_eq!(any.shape(), [2, 3]);
        let err = eval(&g, "[1.0]").extract::<AnyBuffer>().unwrap_err();
        assert!(matches!(err, Error::NotABuffer { .. }), "{err}");
    });
}

#[test]
fn half_and_num_complex_are_reexported() {
    Python::attach(|py| {
        let g = namespace(py);
        let h =
            Buffer1::<pybuf::half::f16>::get(&eval(&g, "np.array([1.5, -2], np.float16)")).unwrap();
        assert_eq!(h.item(0).unwrap(), pybuf::half::f16::from_f32(1.5));
        let c = Buffer1::<pybuf::num_complex::Complex<f64>>::get(&eval(&g, "np.array([1+2j])"))
            .unwrap();
        assert_eq!(
            c.item(0).unwrap(),
            pybuf::num_complex::Complex::new(1.0, 2.0)
        );
    });
}

// ---- dispatch! -------------------------------------------------------------------------------

/// The sum of any native integer or float buffer, as f64, through one generic body.
fn sum_any(x: AnyBuffer) -> Result<f64, Error> {
    pybuf::dispatch!(x, |buf: BufferD<T>| buf
        .with_or_copy(|v| v.iter().map(|&e| e as f64).sum::<f64>()))?
}

#[test]
fn dispatch_runs_one_body_per_element_type() {
    Python::attach(|py| {
        let g = namespace(py);
        for dtype in [
            "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32",
            "float64",
        ] {
            let expr = format!("(np.arange(12) - 3).astype('{dtype}').reshape(3, 4)[:, ::-2]");
            let expected: f64 = eval(&g, &format!("float(np.sum({expr}, dtype=np.float64))"))
                .extract()
                .unwrap();
            let any: AnyBuffer = eval(&g, &expr).extract().unwrap();
            assert_eq!(sum_any(any).unwrap(), expected, "{dtype}");
        }
        // other spellings: 'l' (int64 with native size), 'c' (a byte), misaligned data (a copy)
        run(
            py,
            &g,
            "mis = np.frombuffer(bytearray(8 * 3 + 1), 'f8', offset=1); mis[:] = [1.5, 2, -4]",
        );
        for (expr, expected) in [
            ("array.array('l', [1, 2, 3])", "6.0"),
            ("memoryview(b'abc').cast('c')", "float(sum(b'abc'))"),
            ("mis", "float(mis.sum())"),
        ] {
            let expected: f64 = eval(&g, expected).extract().unwrap();
            let any: AnyBuffer = eval(&g, expr).extract().unwrap();
            assert_eq!(sum_any(any).unwrap(), expected, "{expr}");
        }
    });
}

#[test]
fn dispatch_with_a_list_and_a_fixed_ndim() {
    Python::attach(|py| {
        let g = namespace(py);
        let any: AnyBuffer = eval(&g, "np.array([[True, False], [True, True]])")
            .extract()
            .unwrap();
        let count = pybuf::dispatch!(any, [bool, u8], |m: Buffer2<T>| m
            .to_vec()
            .map(|v| { v.iter().filter(|&&x| x != T::default()).count() }))
        .unwrap()
        .unwrap();
        assert_eq!(count, 3);
        // the handle's other checks apply: a 1-D buffer for a Buffer2
        let any: AnyBuffer = eval(&g, "np.zeros(3, np.uint8)").extract().unwrap();
        let err = pybuf::dispatch!(any, [bool, u8], |m: Buffer2<T>| m.len()).unwrap_err();
        assert!(matches!(err, Error::Dimensions { .. }), "{err}");
        // complex and half floats when listed
        let any: AnyBuffer = eval(&g, "np.array([1+2j, 3-1j])").extract().unwrap();
        let total = pybuf::dispatch!(
            any,
            [pybuf::num_complex::Complex<f32>, pybuf::num_complex::Complex<f64>],
            |c: Buffer1<T>| c.to_vec().unwrap().iter().map(|z| (z.re as f64, z.im as f64)).fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
        )
        .unwrap();
        assert_eq!(total, (4.0, 1.0));
    });
}

#[test]
fn dispatch_refuses_other_element_types_clearly() {
    Python::attach(|py| {
        let g = namespace(py);
        for (expr, found) in [
            (
                "np.zeros(3, np.complex128)",
                "got a 1-D buffer of complex128 (format 'Zd') with shape (3,)",
            ),
            (
                "np.zeros(3, '>f8')",
                "got a 1-D buffer of '>f8' (format '>d') with shape (3,)",
            ),
            (
                "np.zeros(2, np.bool_)",
                "got a 1-D buffer of bool (format '?') with shape (2,)",
            ),
            (
                "np.zeros(2, [('a', 'i4')])",
                "got a 1-D buffer of struct {a: int32 @0} (format 'T{i:a:}', itemsize 4)",
            ),
            (
                "np.zeros(2, np.float16)",
                "got a 1-D buffer of float16 (format 'e')",
            ),
        ] {
            let any: AnyBuffer = eval(&g, expr).extract().unwrap();
            let err = sum_any(any).unwrap_err();
            assert!(
                matches!(err, Error::UnsupportedElement { .. }),
                "{expr}: {err}"
            );
            let msg = err.to_string();
            assert!(
                msg.starts_with(
                    "expected a buffer of int8, uint8, int16, uint16, int32, uint32, int64, \
                     uint64, float32, float64, "
                ),
                "{msg}"
            );
            assert!(msg.contains(found), "{expr}: {msg}");
            assert!(err.hint().is_some());
            assert!(PyErr::from(err).is_instance_of::<pyo3::exceptions::PyTypeError>(py));
        }
        // an unparseable format is reported as such
        let any: AnyBuffer = eval(&g, "np.array([None])").extract().unwrap();
        let err = sum_any(any).unwrap_err();
        assert!(matches!(err, Error::UnsupportedElement { .. }), "{err}");
        assert!(err.to_string().contains("format 'O'"), "{err}");
    });
}

/// Empty views used to carry C-order strides with empty axes counted as 1, which ndarray's
/// `map` (and every constructor that copies a view's strides) rejects in debug builds: `gray`
/// of a (0, 5, 3) image panicked.
#[test]
fn empty_views_work_with_ndarray_constructors() {
    Python::attach(|py| {
        let g = namespace(py);
        for expr in [
            "np.zeros((0, 5))",
            "np.zeros((5, 0))",
            "np.zeros((2, 3, 0))[:, :, ::-1]",
        ] {
            let buf = BufferD::<f64>::get_mut(&eval(&g, expr)).unwrap();
            let mapped = buf.with(|v| v.map(|x| x + 1.0)).unwrap();
            assert_eq!(mapped.shape(), buf.shape(), "{expr}");
            assert_eq!(buf.with(|v| v.to_owned()).unwrap().shape(), buf.shape());
            buf.with_mut(|mut v| {
                v.fill(1.0);
                assert_eq!(v.map(|x| x * 2.0).len(), 0);
            })
            .unwrap();
            assert_eq!(buf.read().unwrap().as_slice(), Some(&[][..]));
        }
        let pixels = Buffer2::<[u8; 3]>::get(&eval(&g, "np.zeros((0, 5, 3), np.uint8)")).unwrap();
        let luma = pixels.with_or_copy(|v| v.map(|p| p[0])).unwrap();
        assert_eq!(luma.shape(), [0, 5]);
    });
}
