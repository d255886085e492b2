//! Every error variant: when it happens, that its message names what was expected and what
//! was found, and which Python exception it becomes.

mod common;

use common::{eval, namespace, run};
use pybuf::{AnyBuffer, Buffer0, Buffer1, Buffer2, BufferD, Error};
use pyo3::exceptions::{PyBufferError, PyIndexError, PyTypeError, PyValueError};
use pyo3::prelude::*;

fn python_type(py: Python<'_>, err: Error) -> String {
    let e: PyErr = err.into();
    e.get_type(py).name().unwrap().to_string()
}

#[test]
fn not_a_buffer() {
    Python::attach(|py| {
        let g = namespace(py);
        let err = Buffer1::<u8>::get(&eval(&g, "12345")).unwrap_err();
        assert!(matches!(err, Error::NotABuffer { .. }));
        assert_eq!(
            err.to_string(),
            "expected an object supporting the buffer protocol, DLPack or the array interface, \
             got 'int'"
        );
        assert!(PyErr::from(err).is_instance_of::<PyTypeError>(py));
    });
}

#[test]
fn exporter_refusal_keeps_the_cause() {
    Python::attach(|py| {
        let g = namespace(py);
        let x = eval(&g, "_testbuffer.ndarray([1, 2, 3], shape=[3], format='B', flags=_testbuffer.ND_GETBUF_FAIL)");
        let err = Buffer1::<u8>::get(&x).unwrap_err();
        assert!(matches!(
            err,
            Error::Refused {
                writable: false,
                ..
            }
        ));
        let msg = err.to_string();
        assert!(
            msg.contains("'ndarray' refused a read-only buffer request"),
            "{msg}"
        );
        assert!(
            msg.contains("ND_GETBUF_FAIL: forced test exception"),
            "{msg}"
        );
        let e: PyErr = err.into();
        assert!(e.is_instance_of::<PyBufferError>(py));
        let cause = e.cause(py).expect("the exporter's exception is the cause");
        assert!(cause.to_string().contains("forced test exception"));
        // a PIL exporter refuses requests without PyBUF_INDIRECT; pybuf always sends it
        let pil = eval(&g, "_testbuffer.ndarray(list(range(6)), shape=[2, 3], format='B', flags=_testbuffer.ND_PIL)");
        assert!(Buffer2::<u8>::get(&pil).is_ok());
    });
}

#[test]
fn read_only() {
    Python::attach(|py| {
        let g = namespace(py);
        let err = Buffer1::<u8>::get_mut(&eval(&g, "b'abc'")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "expected a writable buffer, got a read-only buffer from 'bytes'"
        );
        assert_eq!(python_type(py, err), "BufferError");
    });
}

#[test]
fn invalid_or_unsupported_format() {
    Python::attach(|py| {
        let g = namespace(py);
        // object arrays export 'O', which no element type can be read as
        let err = BufferD::<u64>::get(&eval(&g, "np.array([None, 1])")).unwrap_err();
        assert!(matches!(err, Error::Format { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("'numpy.ndarray' exported an invalid format"),
            "{msg}"
        );
        assert!(msg.contains("'O'"), "{msg}");
        assert_eq!(python_type(py, err), "BufferError");
        // AnyBuffer still inspects it, and reports the format error when asked for types
        let any = AnyBuffer::get(&eval(&g, "np.array([None, 1])")).unwrap();
        assert_eq!(any.format(), "O");
        assert!(any.item_layout().is_err());
        assert!(matches!(
            any.typed::<u64, ndarray::IxDyn>(),
            Err(Error::Format { .. })
        ));
    });
}

#[test]
fn element_type_mismatch_names_both_sides() {
    Python::attach(|py| {
        let g = namespace(py);
        let x = eval(&g, "np.ones((2, 3, 4), dtype=np.float32)");
        let err = Buffer2::<f64>::get(&x).unwrap_err();
        assert!(matches!(err, Error::ElementType { .. }));
        assert_eq!(
            err.to_string(),
            "expected a 2-D buffer of float64 (f64, format 'd'), got a 3-D buffer of float32 \
             (format 'f') with shape (2, 3, 4) from 'numpy.ndarray'"
        );
        assert!(PyErr::from(err).is_instance_of::<PyTypeError>(py));
        // signedness and width are part of the type; 'l' with standard size is 4 bytes
        assert!(matches!(
            Buffer1::<u32>::get(&eval(&g, "array.array('i', [1])")),
            Err(Error::ElementType { .. })
        ));
        assert!(matches!(
            Buffer1::<i64>::get(&eval(&g, "np.zeros(1, '<i4')")),
            Err(Error::ElementType { .. })
        ));
    });
}

#[test]
fn byte_order_mismatch() {
    Python::attach(|py| {
        let g = namespace(py);
        let err = Buffer1::<i32>::get(&eval(&g, "np.arange(3, dtype='>i4')")).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::ByteOrder { .. }));
        assert_eq!(
            msg,
            "expected a 1-D buffer of int32 (i32, format 'i'), got a 1-D buffer of '>i4' \
             (format '>i') with shape (3,) from 'numpy.ndarray': the byte order differs \
             (big-endian data, little-endian expected)"
        );
        // advice for the Rust author is not in the message Python users see
        assert!(!msg.contains("pybuf::"), "{msg}");
        assert!(
            err.hint().unwrap().contains("pybuf::be::F64"),
            "{:?}",
            err.hint()
        );
        assert_eq!(python_type(py, err), "TypeError");
    });
}

/// Issue 15.5: with `be::F64` on native data the message said "expected ... be::F64 (format
/// '>d') in native (little-endian) byte order".
#[test]
fn byte_order_mismatch_names_the_element_byte_order() {
    Python::attach(|py| {
        let g = namespace(py);
        let err = Buffer1::<pybuf::be::F64>::get(&eval(&g, "np.zeros(2)")).unwrap_err();
        let msg = err.to_string();
        assert_eq!(
            msg,
            "expected a 1-D buffer of '>f8' (be::F64, format '>d'), got a 1-D buffer of float64 \
             (format 'd') with shape (2,) from 'numpy.ndarray': the byte order differs \
             (little-endian data, big-endian expected)"
        );
        assert!(!msg.contains("native"), "{msg}");
        assert!(
            err.hint().unwrap().contains("plain Rust types"),
            "{:?}",
            err.hint()
        );
        // numpy's own name of the data's dtype leads the description
        let numpy_str: String = eval(&g, "np.dtype('>f8').str").extract().unwrap();
        let err = Buffer1::<f64>::get(&eval(&g, "np.zeros(2, '>f8')")).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("buffer of '{numpy_str}'")),
            "{err}"
        );
    });
}

#[test]
fn itemsize_disagreeing_with_the_format() {
    Python::attach(|py| {
        let g = namespace(py);
        // a ctypes Union exports format 'B' with the union's itemsize
        run(py, &g, "class U(ctypes.Union):\n    _fields_ = [('a', ctypes.c_int), ('b', ctypes.c_double)]\nu = (U * 2)()\n");
        let err = Buffer1::<u8>::get(&eval(&g, "u")).unwrap_err();
        assert!(
            matches!(
                err,
                Error::ItemSize {
                    format_size: 1,
                    itemsize: 8,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "format 'B' describes 1-byte items, but the exporter reported itemsize 8"
        );
        assert_eq!(python_type(py, err), "BufferError");
    });
}

#[test]
fn wrong_number_of_dimensions() {
    Python::attach(|py| {
        let g = namespace(py);
        let err = Buffer1::<f64>::get(&eval(&g, "np.zeros((2, 3))")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "expected a 1-D buffer of float64 (f64, format 'd'), got a 2-D buffer of float64 \
             (format 'd') with shape (2, 3) from 'numpy.ndarray'"
        );
        assert_eq!(python_type(py, err), "TypeError");
        let err = Buffer0::<f64>::get(&eval(&g, "np.zeros(1)")).unwrap_err();
        assert!(err.to_string().contains("expected a 0-D buffer"), "{err}");
        let err = Buffer2::<f64>::get(&eval(&g, "np.float64(1.0)")).unwrap_err();
        assert!(
            err.to_string().contains("with shape () (a scalar)"),
            "{err}"
        );
    });
}

#[test]
fn invalid_layouts_ndim_64_and_65() {
    Python::attach(|py| {
        let g = namespace(py);
        let x = eval(&g, "_testbuffer.ndarray([7], shape=[1] * 64, format='B')");
        let buf = BufferD::<u8>::get(&x).unwrap();
        assert_eq!(buf.ndim(), 64);
        assert_eq!(buf.to_vec().unwrap(), vec![7]);
        let x = eval(&g, "_testbuffer.ndarray([7], shape=[1] * 65, format='B')");
        let err = BufferD::<u8>::get(&x).unwrap_err();
        assert!(matches!(err, Error::InvalidLayout { .. }), "{err}");
        assert!(
            err.to_string().contains("65 dimensions, more than the 64"),
            "{err}"
        );
        assert_eq!(python_type(py, err), "BufferError");
        // an impossible ndim is reported as sent, never as a made-up shape (issue 17.6: it
        // used to be a Dimensions error describing "a 0-D buffer ... with shape ()")
        let err = Buffer2::<u8>::get(&x).unwrap_err();
        assert!(matches!(err, Error::InvalidLayout { .. }), "{err}");
        assert!(
            err.to_string().contains("65 dimensions, more than the 64"),
            "{err}"
        );
    });
}

#[test]
fn layout_limits_for_views() {
    Python::attach(|py| {
        let g = namespace(py);
        let mis =
            Buffer1::<f64>::get(&eval(&g, "np.frombuffer(bytearray(25), 'f8', offset=1)")).unwrap();
        let err = mis.read().unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("expected float64 (f64) items aligned to 8 bytes, found address 0x"),
            "{msg}"
        );
        assert!(msg.ends_with("a zero-copy view of misaligned data is impossible"));
        assert!(err.hint().unwrap().contains("read_or_copy()"));
        assert_eq!(python_type(py, err), "BufferError");

        let odd = Buffer1::<f64>::get(&eval(&g, "as_strided(np.zeros(5), (3,), (12,))")).unwrap();
        assert_eq!(
            odd.read().unwrap_err().to_string(),
            "expected byte strides that are multiples of the item size 8, found stride 12 on \
             axis 0; a zero-copy view is impossible"
        );

        let pil = Buffer2::<u8>::get(&eval(&g, "_testbuffer.ndarray(list(range(6)), shape=[2, 3], format='B', flags=_testbuffer.ND_PIL)")).unwrap();
        assert!(pil
            .read()
            .unwrap_err()
            .to_string()
            .contains("found one with suboffsets"));

        let bc = Buffer1::<f64>::get_mut(&eval(&g, "as_strided(np.zeros(3), (4,), (0,))")).unwrap();
        let err = bc.write().unwrap_err();
        assert_eq!(
            err.to_string(),
            "expected non-overlapping elements for a mutable view, found shape (4,) with byte \
             strides [0], whose elements share memory"
        );
        assert_eq!(python_type(py, err), "BufferError");
    });
}

#[test]
fn index_out_of_bounds() {
    Python::attach(|py| {
        let g = namespace(py);
        let buf = Buffer2::<f64>::get_mut(&eval(&g, "np.zeros((2, 3))")).unwrap();
        let err = buf.item((2, 0)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "index (2, 0) is out of bounds for shape (2, 3)"
        );
        assert!(PyErr::from(err).is_instance_of::<PyIndexError>(py));
        assert!(matches!(
            buf.set_item((0, 3), 1.0),
            Err(Error::IndexOutOfBounds { .. })
        ));
        let d = BufferD::<f64>::get(&eval(&g, "np.zeros((2, 3))")).unwrap();
        let err = d.item(ndarray::IxDyn(&[1])).unwrap_err();
        assert!(
            err.to_string().contains("out of bounds for shape (2, 3)"),
            "{err}"
        );
    });
}

#[test]
fn length_mismatch_in_copies() {
    Python::attach(|py| {
        let g = namespace(py);
        let buf = Buffer1::<f64>::get_mut(&eval(&g, "np.zeros(3)")).unwrap();
        let err = buf.copy_from_slice(&[1.0, 2.0]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "expected a slice of 3 elements (the buffer's length), got 2"
        );
        assert!(PyErr::from(err).is_instance_of::<PyValueError>(py));
        let mut four = [0.0; 4];
        assert!(matches!(
            buf.copy_to_slice(&mut four),
            Err(Error::LengthMismatch {
                expected: 3,
                found: 4
            })
        ));
    });
}

#[test]
fn invalid_bool_bytes_are_never_read_as_bool() {
    Python::attach(|py| {
        let g = namespace(py);
        let x = eval(&g, "np.frombuffer(b'\\x01\\x00\\x02', dtype=bool)");
        let buf = Buffer1::<bool>::get(&x).unwrap();
        let err = buf.to_vec().unwrap_err();
        assert_eq!(
            err.to_string(),
            "expected a valid bool, found bytes [2] at element 2"
        );
        assert!(matches!(
            buf.read(),
            Err(Error::InvalidValue { position: 2, .. })
        ));
        assert!(matches!(buf.item(2), Err(Error::InvalidValue { .. })));
        assert!(buf.item(0).unwrap());
        let mut dst = [false; 3];
        assert!(buf.copy_to_slice(&mut dst).is_err());
        assert_eq!(dst, [false; 3], "nothing invalid lands in the destination");
        assert!(PyErr::from(err).is_instance_of::<PyValueError>(py));
        // the raw bytes stay readable as u8
        let raw = Buffer1::<u8>::get(&eval(
            &g,
            "np.frombuffer(b'\\x01\\x00\\x02', dtype=bool).view(np.uint8)",
        ))
        .unwrap();
        assert_eq!(raw.to_vec().unwrap(), vec![1, 0, 2]);
    });
}

#[test]
fn errors_convert_through_pyfunction_style_extraction() {
    Python::attach(|py| {
        let g = namespace(py);
        let x = eval(&g, "np.zeros(3, dtype=np.int8)");
        let err = x.extract::<Buffer1<f64>>().unwrap_err();
        assert!(matches!(err, Error::ElementType { .. }));
        let ok = x.extract::<Buffer1<i8>>().unwrap();
        assert_eq!(ok.len(), 3);
    });
}

/// Issue 15.5: messages speak to Python callers (numpy's names first, the Rust type in
/// parentheses); advice for the Rust author is in `Error::hint()`, never in the message.
#[test]
fn messages_for_python_users_and_hints_for_rust_authors() {
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, "class U(ctypes.Union):\n    _fields_ = [('a', ctypes.c_int), ('b', ctypes.c_double)]\n");
        let errors: Vec<(Error, &str)> = vec![
            (
                Buffer1::<f32>::get(&eval(&g, "np.zeros(2, '>f4')")).unwrap_err(),
                "pybuf::be",
            ),
            (
                Buffer1::<f64>::get(&eval(&g, "np.frombuffer(bytearray(25), 'f8', offset=1)"))
                    .unwrap()
                    .read()
                    .unwrap_err(),
                "read_or_copy()",
            ),
            (
                Buffer1::<f64>::get(&eval(&g, "as_strided(np.zeros(5), (3,), (12,))"))
                    .unwrap()
                    .read()
                    .unwrap_err(),
                "read_or_copy()",
            ),
            (
                Buffer2::<u8>::get(&eval(&g, "_testbuffer.ndarray(list(range(6)), shape=[2, 3], format='B', flags=_testbuffer.ND_PIL)"))
                    .unwrap()
                    .read()
                    .unwrap_err(),
                "read_or_copy()",
            ),
            (
                Buffer1::<bool>::get(&eval(&g, "np.frombuffer(b'\\x02', bool)"))
                    .unwrap()
                    .to_vec()
                    .unwrap_err(),
                "pybuf::Bool",
            ),
            (
                Buffer1::<u8>::get(&eval(&g, "(U * 2)()")).unwrap_err(),
                "reinterpret",
            ),
        ];
        for (err, advice) in errors {
            let msg = err.to_string();
            for rust_only in ["pybuf::", "to_vec()", "read_or_copy", "copies it"] {
                assert!(!msg.contains(rust_only), "{rust_only:?} in {msg:?}");
            }
            let hint = err.hint().unwrap_or_default();
            assert!(
                hint.contains(advice),
                "{advice:?} not in the hint {hint:?} of {msg:?}"
            );
        }
        // a padded record refuses mutable views; how to write it is advice for Rust authors
        #[derive(Clone, Copy, pybuf::Element)]
        #[repr(C)]
        struct Padded {
            a: u8,
            b: u32,
        }
        let padded = Buffer1::<Padded>::get_mut(&eval(
            &g,
            "np.zeros(2, np.dtype([('a', 'u1'), ('b', 'u4')], align=True))",
        ))
        .unwrap();
        let err = padded.write().unwrap_err();
        assert!(matches!(err, Error::PaddedElement { .. }), "{err}");
        assert!(
            err.to_string().ends_with("with padding at bytes 1..4"),
            "{err}"
        );
        assert!(err.hint().unwrap().contains("set_item"));
        // errors without advice have no hint
        assert!(Buffer1::<u8>::get(&eval(&g, "12"))
            .unwrap_err()
            .hint()
            .is_none());
        // numpy names lead, Rust names follow in parentheses
        let err = Buffer1::<u8>::get(&eval(&g, "np.zeros(2, np.int16)")).unwrap_err();
        assert!(
            err.to_string().starts_with("expected a 1-D buffer of uint8 (u8, format 'B'), got a 1-D buffer of int16 (format 'h')"),
            "{err}"
        );
        #[cfg(feature = "complex")]
        {
            let err =
                Buffer1::<num_complex::Complex<f32>>::get(&eval(&g, "np.zeros(2)")).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("expected a 1-D buffer of complex64 (Complex<f32>, format 'Zf')"),
                "{err}"
            );
        }
    });
}
