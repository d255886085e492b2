//! numpy's array interface as a source: `__array_interface__` dicts (numpy through a wrapper
//! that exposes only that attribute, Pillow images, hand-written dicts) and
//! `__array_struct__` capsules (numpy through a wrapper). Values are checked against what
//! numpy and Pillow report themselves.

mod common;

use common::{eval, namespace, run};
use pybuf::{
    be, AnyBuffer, Buffer, Buffer0, Buffer1, Buffer2, BufferD, ElementKind, Error, Source,
};
use pyo3::exceptions::{PyBufferError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Wrapper classes that expose one protocol of a numpy array and nothing else.
const WRAPPERS: &str = r#"
class AI:
    """Only __array_interface__ (numpy's own dict)."""
    def __init__(self, a):
        self.a = a
    @property
    def __array_interface__(self):
        return self.a.__array_interface__

class AS:
    """Only __array_struct__ (numpy's own capsule)."""
    def __init__(self, a):
        self.a = a
    @property
    def __array_struct__(self):
        return self.a.__array_struct__

class Dict:
    """A hand-written interface dict; `keep` holds whatever owns the memory."""
    def __init__(self, d, keep=None):
        self.d = d
        self.keep = keep
    @property
    def __array_interface__(self):
        return self.d
"#;

fn setup(py: Python<'_>) -> Bound<'_, PyDict> {
    let g = namespace(py);
    run(py, &g, WRAPPERS);
    run(py, &g, "from PIL import Image");
    g
}

fn refcount(g: &Bound<'_, PyDict>, obj: &Bound<'_, PyAny>) -> isize {
    g.set_item("_r", obj).unwrap();
    // minus the reference the namespace entry holds
    eval(g, "sys.getrefcount(_r)").extract::<isize>().unwrap() - 1
}

fn tolist<T: for<'a, 'py> FromPyObject<'a, 'py>>(g: &Bound<'_, PyDict>, expr: &str) -> Vec<T> {
    eval(g, &format!("np.asarray({expr}).ravel().tolist()"))
        .extract()
        .unwrap()
}

#[test]
fn numpy_through_the_dict_and_the_capsule_reads_like_numpy() {
    Python::attach(|py| {
        let g = setup(py);
        let cases = [
            "np.arange(12, dtype=np.float64).reshape(3, 4)",
            "np.arange(24, dtype=np.float64).reshape(4, 6)[::2, 1::2]",
            "np.arange(12, dtype=np.float64).reshape(3, 4)[::-1, ::-1]",
            "np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4))",
            "np.zeros((0, 4))",
            "np.arange(6, dtype=np.float64).reshape(2, 3).T",
        ];
        for wrap in ["AI", "AS"] {
            for case in cases {
                run(py, &g, &format!("a = {case}\nw = {wrap}(a)"));
                let w = eval(&g, "w");
                let buf = Buffer2::<f64>::get(&w).unwrap_or_else(|e| panic!("{wrap} {case}: {e}"));
                let expected_source = if wrap == "AI" {
                    Source::ArrayInterface
                } else {
                    Source::ArrayStruct
                };
                assert_eq!(buf.source(), expected_source);
                assert_eq!(
                    buf.to_vec().unwrap(),
                    tolist::<f64>(&g, "a"),
                    "{wrap} {case}"
                );
                let shape: Vec<usize> = eval(&g, "list(a.shape)").extract().unwrap();
                let strides: Vec<isize> = eval(&g, "list(a.strides)").extract().unwrap();
                assert_eq!(buf.shape(), shape, "{wrap} {case}");
                if !buf.is_empty() {
                    // (numpy reports zero strides for empty arrays, the interface none)
                    assert_eq!(buf.strides(), strides, "{wrap} {case}");
                }
                assert_eq!(buf.format(), "<d");
                // a zero-copy view agrees, item by item, with Python's indexing
                buf.with(|v| {
                    for ((i, j), &x) in v.indexed_iter() {
                        let expected: f64 =
                            eval(&g, &format!("float(a[{i}, {j}])")).extract().unwrap();
                        assert_eq!(x, expected);
                    }
                })
                .unwrap();
            }
        }
    });
}

#[test]
fn element_types_zero_d_and_strings() {
    Python::attach(|py| {
        let g = setup(py);
        for wrap in ["AI", "AS"] {
            run(
                py,
                &g,
                &format!("w = {wrap}(np.array([True, False, True]))"),
            );
            let b = Buffer1::<bool>::get(&eval(&g, "w")).unwrap();
            assert_eq!(b.to_vec().unwrap(), [true, false, true]);

            run(
                py,
                &g,
                &format!("w = {wrap}(np.arange(5, dtype=np.int32) - 2)"),
            );
            let b = Buffer1::<i32>::get(&eval(&g, "w")).unwrap();
            assert_eq!(b.to_vec().unwrap(), [-2, -1, 0, 1, 2]);

            run(
                py,
                &g,
                &format!("w = {wrap}(np.arange(4, dtype=np.uint16))"),
            );
            assert_eq!(
                Buffer1::<u16>::get(&eval(&g, "w"))
                    .unwrap()
                    .to_vec()
                    .unwrap(),
                [0, 1, 2, 3]
            );

            run(
                py,
                &g,
                &format!("w = {wrap}(np.array([1+2j, 3-4j], dtype=np.complex64))"),
            );
            let b = Buffer1::<num_complex::Complex<f32>>::get(&eval(&g, "w")).unwrap();
            assert_eq!(
                b.to_vec().unwrap(),
                [
                    num_complex::Complex::new(1.0, 2.0),
                    num_complex::Complex::new(3.0, -4.0)
                ]
            );

            run(
                py,
                &g,
                &format!("w = {wrap}(np.array(2.5, dtype=np.float32))"),
            );
            let b = Buffer0::<f32>::get(&eval(&g, "w")).unwrap();
            assert_eq!(b.item(()).unwrap(), 2.5);
            assert_eq!(b.ndim(), 0);
            // and as 1-D, as with buffers
            assert_eq!(
                Buffer1::<f32>::get(&eval(&g, "w"))
                    .unwrap()
                    .to_vec()
                    .unwrap(),
                [2.5]
            );

            run(
                py,
                &g,
                &format!("w = {wrap}(np.array([b'ab', b'cd'], dtype='S2'))"),
            );
            let b = Buffer1::<[u8; 2]>::get(&eval(&g, "w")).unwrap();
            assert_eq!(b.to_vec().unwrap(), [*b"ab", *b"cd"]);

            // kinds with a PEP 3118 code no Rust type reads: refused like their buffer formats
            run(py, &g, &format!("w = {wrap}(np.array(['ab'], dtype='U2'))"));
            let any = AnyBuffer::get(&eval(&g, "w")).unwrap();
            assert_eq!(any.itemsize(), 8);
            assert_eq!(any.format(), "<2w");
            assert!(matches!(any.item_layout(), Err(Error::Format { .. })));
            assert_eq!(any.element_kind(), ElementKind::Other);
        }
    });
}

#[test]
fn big_endian_is_refused_as_f64_and_read_as_be_f64() {
    Python::attach(|py| {
        let g = setup(py);
        for wrap in ["AI", "AS"] {
            run(
                py,
                &g,
                &format!("a = np.array([1.5, -2.0], dtype='>f8')\nw = {wrap}(a)"),
            );
            let w = eval(&g, "w");
            let err = Buffer1::<f64>::get(&w).unwrap_err();
            assert!(matches!(err, Error::ByteOrder { .. }), "{wrap}: {err}");
            assert!(err.to_string().contains("of '>f8' (format '>d')"), "{err}");
            // the advice for the Rust author is in the hint, not in the message (issue 15.5)
            assert!(err.hint().unwrap().contains("pybuf::be::F64"), "{err}");
            let b = Buffer1::<be::F64>::get(&w).unwrap();
            let values: Vec<f64> = b.to_vec().unwrap().iter().map(|x| x.get()).collect();
            assert_eq!(values, tolist::<f64>(&g, "a"));
        }
    });
}

#[derive(Clone, Copy, Debug, PartialEq, pybuf::Element)]
#[repr(C)]
struct Rec {
    id: u32,
    x: f64,
    flag: bool,
}

#[test]
fn records_through_descr_match_a_derived_record() {
    Python::attach(|py| {
        let g = setup(py);
        run(
            py,
            &g,
            "dt = np.dtype([('id', '<u4'), ('x', '<f8'), ('flag', '?')], align=True)\n\
             a = np.array([(1, 0.5, True), (2, -1.5, False)], dtype=dt)",
        );
        let w = eval(&g, "AI(a)");
        let b = Buffer1::<Rec>::get(&w).unwrap();
        assert_eq!(
            b.to_vec().unwrap(),
            [
                Rec {
                    id: 1,
                    x: 0.5,
                    flag: true
                },
                Rec {
                    id: 2,
                    x: -1.5,
                    flag: false
                }
            ]
        );
        assert_eq!(b.format(), "T{<I:id:4x<d:x:<?:flag:7x}");
        // numpy's __array_struct__ of a record array has no usable flags: numpy writes
        // `flags &= NPY_ARR_HAS_DESCR` where it means `|=`, which clears NOTSWAPPED, WRITEABLE
        // and ARR_HAS_DESCR alike. By the protocol that is read-only, byte-swapped void
        // data without a descr, which is what numpy's own consumer makes of it too.
        let err = Buffer1::<Rec>::get(&eval(&g, "AS(a)")).unwrap_err();
        assert!(matches!(err, Error::ElementType { .. }), "{err}");
        assert!(AnyBuffer::get(&eval(&g, "AS(a)")).unwrap().is_readonly());
        // a PyArrayInterface written by hand, with ARR_HAS_DESCR set as the protocol says
        run(
            py,
            &g,
            "class PAI(ctypes.Structure):\n\
             \x20   _fields_ = [('two', ctypes.c_int), ('nd', ctypes.c_int), ('typekind', ctypes.c_char),\n\
             \x20               ('itemsize', ctypes.c_int), ('flags', ctypes.c_int),\n\
             \x20               ('shape', ctypes.POINTER(ctypes.c_ssize_t)),\n\
             \x20               ('strides', ctypes.POINTER(ctypes.c_ssize_t)),\n\
             \x20               ('data', ctypes.c_void_p), ('descr', ctypes.py_object)]\n\
             mk = ctypes.pythonapi.PyCapsule_New\n\
             mk.restype = ctypes.py_object\n\
             mk.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]\n\
             class Hand:\n\
             \x20   def __init__(self, arr):\n\
             \x20       self.shape = (ctypes.c_ssize_t * 1)(len(arr))\n\
             \x20       self.inter = PAI(2, 1, b'V', arr.itemsize, 0x200 | 0x400 | 0x800, self.shape,\n\
             \x20                        None, arr.ctypes.data, arr.dtype.descr)\n\
             \x20       self.arr = arr\n\
             \x20   @property\n\
             \x20   def __array_struct__(self):\n\
             \x20       return mk(ctypes.addressof(self.inter), None, None)\n",
        );
        let hand = eval(&g, "Hand(a)");
        let b = Buffer1::<Rec>::get_mut(&hand).unwrap();
        assert_eq!(b.source(), Source::ArrayStruct);
        assert_eq!(
            b.item(1).unwrap(),
            Rec {
                id: 2,
                x: -1.5,
                flag: false
            }
        );
        b.set_item(
            0,
            Rec {
                id: 9,
                x: 4.0,
                flag: false,
            },
        )
        .unwrap();
        assert_eq!(
            eval(&g, "a[0].tolist()")
                .extract::<(u32, f64, bool)>()
                .unwrap(),
            (9, 4.0, false)
        );
        // a packed record does not match the aligned Rust struct
        run(
            py,
            &g,
            "p = np.array([(1, 0.5, True)], dtype=[('id', '<u4'), ('x', '<f8'), ('flag', '?')])",
        );
        let err = Buffer1::<Rec>::get(&eval(&g, "AI(p)")).unwrap_err();
        assert!(matches!(err, Error::ElementType { .. }), "{err}");
    });
}

#[test]
fn pillow_images_through_the_array_interface() {
    Python::attach(|py| {
        let g = setup(py);
        run(
            py,
            &g,
            "rgb = Image.frombytes('RGB', (4, 3), bytes(range(36)))\n\
             gray = Image.frombytes('L', (5, 2), bytes(range(100, 110)))\n\
             f = Image.new('F', (3, 2))\n\
             for y in range(2):\n\
             \x20   for x in range(3):\n\
             \x20       f.putpixel((x, y), x * 1.25 - y)\n",
        );
        let rgb = Buffer::<u8, ndarray::Ix3>::get(&eval(&g, "rgb")).unwrap();
        assert_eq!(rgb.source(), Source::ArrayInterface);
        assert_eq!(rgb.shape(), [3, 4, 3]);
        for y in 0..3 {
            for x in 0..4 {
                let pixel: (u8, u8, u8) = eval(&g, &format!("rgb.getpixel(({x}, {y}))"))
                    .extract()
                    .unwrap();
                assert_eq!(
                    (
                        rgb.item((y, x, 0)).unwrap(),
                        rgb.item((y, x, 1)).unwrap(),
                        rgb.item((y, x, 2)).unwrap()
                    ),
                    pixel
                );
            }
        }
        let gray = Buffer2::<u8>::get(&eval(&g, "gray")).unwrap();
        assert_eq!(gray.shape(), [2, 5]);
        gray.with(|v| {
            for ((y, x), &p) in v.indexed_iter() {
                let expected: u8 = eval(&g, &format!("gray.getpixel(({x}, {y}))"))
                    .extract()
                    .unwrap();
                assert_eq!(p, expected);
            }
        })
        .unwrap();
        let f = Buffer2::<f32>::get(&eval(&g, "f")).unwrap();
        assert_eq!(f.shape(), [2, 3]);
        f.with(|v| {
            for ((y, x), &p) in v.indexed_iter() {
                let expected: f32 = eval(&g, &format!("f.getpixel(({x}, {y}))"))
                    .extract()
                    .unwrap();
                assert_eq!(p, expected);
            }
        })
        .unwrap();
        // Pillow hands out `bytes`: read-only
        assert!(f.is_readonly());
        let err = Buffer2::<f32>::get_mut(&eval(&g, "f")).unwrap_err();
        assert!(matches!(err, Error::ReadOnly { .. }), "{err}");
        // the wrong element type names what the image holds
        let err = Buffer2::<u8>::get(&eval(&g, "f")).unwrap_err();
        assert!(matches!(err, Error::ElementType { .. }), "{err}");
        assert!(err.to_string().contains("float32"), "{err}");
        assert!(err.to_string().contains("from 'PIL.Image.Image'"), "{err}");
    });
}

#[test]
fn writes_reach_the_array_and_read_only_is_refused() {
    Python::attach(|py| {
        let g = setup(py);
        for wrap in ["AI", "AS"] {
            run(py, &g, &format!("a = np.zeros(4)\nw = {wrap}(a)"));
            let b = Buffer1::<f64>::get_mut(&eval(&g, "w")).unwrap();
            b.set_item(2, 7.5).unwrap();
            b.with_mut(|mut v| v[0] = -1.0).unwrap();
            assert_eq!(tolist::<f64>(&g, "a"), [-1.0, 0.0, 7.5, 0.0]);
            let explicit = if wrap == "AI" {
                Buffer1::<f64>::from_array_interface_mut(&eval(&g, "w"))
            } else {
                Buffer1::<f64>::from_array_struct_mut(&eval(&g, "w"))
            };
            assert!(explicit.is_ok());

            run(
                py,
                &g,
                &format!("r = np.ones(3)\nr.flags.writeable = False\nw = {wrap}(r)"),
            );
            let w = eval(&g, "w");
            let err = Buffer1::<f64>::get_mut(&w).unwrap_err();
            assert!(matches!(err, Error::ReadOnly { .. }), "{wrap}: {err}");
            let b = Buffer1::<f64>::get(&w).unwrap();
            assert!(b.is_readonly());
            assert!(b.set_item(0, 2.0).is_err());
            assert!(b.write().is_err());
        }
    });
}

#[test]
fn a_dict_over_a_bytearray_with_offset_and_strides() {
    Python::attach(|py| {
        let g = setup(py);
        run(
            py,
            &g,
            "ba = bytearray(range(16))\n\
             w = Dict({'version': 3, 'typestr': '|u1', 'shape': (3,), 'strides': (4,), \
                       'data': ba, 'offset': 2})",
        );
        let b = Buffer1::<u8>::get_mut(&eval(&g, "w")).unwrap();
        assert_eq!(b.to_vec().unwrap(), [2, 6, 10]);
        b.set_item(1, 99).unwrap();
        assert_eq!(eval(&g, "ba[6]").extract::<u8>().unwrap(), 99);
        // the bytearray is exported while the handle lives
        let resize = py.run(c"ba.append(1)", Some(&g), None);
        assert!(resize.unwrap_err().is_instance_of::<PyBufferError>(py));
        drop(b);
        common::finish_attached_drops(py);
        run(py, &g, "ba.append(1)");

        // an array that does not fit in its data buffer is refused, whichever end
        for (shape, strides, offset) in [
            ("(5,)", "(4,)", 2),
            ("(2,)", "(-4,)", 2),
            ("(4,)", "None", -1),
        ] {
            run(
                py,
                &g,
                &format!(
                    "w = Dict({{'version': 3, 'typestr': '|u1', 'shape': {shape}, \
                     'strides': {strides}, 'data': bytes(17), 'offset': {offset}}})"
                ),
            );
            let err = Buffer1::<u8>::get(&eval(&g, "w")).unwrap_err();
            assert!(
                matches!(err, Error::InvalidLayout { .. }),
                "{shape} {strides}: {err}"
            );
            assert!(err.to_string().contains("data buffer"), "{err}");
        }
        // empty arrays need no memory
        run(
            py,
            &g,
            "w = Dict({'typestr': '<f8', 'shape': (0, 3), 'data': b''})",
        );
        assert!(Buffer2::<f64>::get(&eval(&g, "w")).unwrap().is_empty());
    });
}

/// Whether an error is the expected variant.
type IsVariant = fn(&Error) -> bool;

#[test]
fn bad_interfaces_are_clear_errors_and_leak_nothing() {
    Python::attach(|py| {
        let g = setup(py);
        run(
            py,
            &g,
            "a = np.arange(4.0)\n\
             addr = a.__array_interface__['data'][0]\n\
             base = {'version': 3, 'typestr': '<f8', 'shape': (4,), 'data': (addr, False)}\n\
             def make(**kw):\n\
             \x20   d = dict(base)\n\
             \x20   d.update(kw)\n\
             \x20   return Dict({k: v for k, v in d.items() if v is not Ellipsis}, keep=a)\n",
        );
        let cases: &[(&str, IsVariant, &str)] = &[
            (
                "make(shape=(-4,))",
                |e| matches!(e, Error::InvalidLayout { .. }),
                "negative length -4 on axis 0",
            ),
            (
                "make(shape=(2**62,))",
                |e| matches!(e, Error::InvalidLayout { .. }),
                "more than isize::MAX bytes",
            ),
            (
                "make(shape=(2**70,))",
                |e| matches!(e, Error::InvalidLayout { .. }),
                "overflows",
            ),
            (
                "make(typestr='<x8')",
                |e| matches!(e, Error::Format { .. }),
                "invalid format '<x8' at position 1",
            ),
            (
                "make(typestr='<f3')",
                |e| matches!(e, Error::Format { .. }),
                "'<f3'",
            ),
            (
                "make(typestr='<M8[ns]')",
                |e| matches!(e, Error::Format { .. }),
                "datetimes",
            ),
            (
                "make(typestr=7)",
                |e| matches!(e, Error::Interchange { .. }),
                "expected 'typestr' as a str, found 7",
            ),
            (
                "make(typestr=...)",
                |e| matches!(e, Error::Interchange { .. }),
                "expected a 'typestr' entry",
            ),
            (
                "make(shape=...)",
                |e| matches!(e, Error::Interchange { .. }),
                "expected a 'shape' entry",
            ),
            (
                "make(shape=[4])",
                |e| matches!(e, Error::Interchange { .. }),
                "'shape' as a tuple",
            ),
            (
                "make(strides=(8, 8))",
                |e| matches!(e, Error::Interchange { .. }),
                "expected 1 strides",
            ),
            (
                "make(mask=np.ones(4, bool))",
                |e| matches!(e, Error::Interchange { .. }),
                "expected no mask",
            ),
            (
                "make(version=2)",
                |e| matches!(e, Error::Interchange { .. }),
                "expected version 3, found 2",
            ),
            (
                "make(offset=8)",
                |e| matches!(e, Error::Interchange { .. }),
                "offset 8",
            ),
            (
                "make(data=(addr,))",
                |e| matches!(e, Error::Interchange { .. }),
                "(address, read-only)",
            ),
            (
                "make(data=[1, 2])",
                |e| matches!(e, Error::Interchange { .. }),
                "found a 'list'",
            ),
            (
                "make(data=(0, False))",
                |e| matches!(e, Error::InvalidLayout { .. }),
                "NULL data pointer",
            ),
            (
                "Dict([1, 2])",
                |e| matches!(e, Error::Interchange { .. }),
                "expected a dict, found a 'list'",
            ),
        ];
        let a = eval(&g, "a");
        let before = refcount(&g, &a);
        for (expr, is_variant, text) in cases {
            let w = eval(&g, expr);
            let w_before = refcount(&g, &w);
            for any in [false, true] {
                let err = if any {
                    AnyBuffer::get(&w).unwrap_err()
                } else {
                    Buffer1::<f64>::get(&w).unwrap_err()
                };
                assert!(is_variant(&err), "{expr}: {err:?}");
                let msg = err.to_string();
                assert!(msg.contains(text), "{expr}: {msg}");
                assert!(msg.contains("'Dict'"), "{expr}: {msg}");
                let pyerr = PyErr::from(err);
                assert!(pyerr.is_instance_of::<PyBufferError>(py), "{expr}: {pyerr}");
                assert!(
                    PyErr::take(py).is_none(),
                    "{expr}: an exception was left set"
                );
            }
            // (a refused view is released like any other: queued on the builds that queue
            // attached drops)
            common::finish_attached_drops(py);
            assert_eq!(refcount(&g, &w), w_before, "{expr}: the wrapper leaked");
        }
        // valid again: the memory of `a`
        let ok = Buffer1::<f64>::get(&eval(&g, "make()")).unwrap();
        assert_eq!(ok.to_vec().unwrap(), [0.0, 1.0, 2.0, 3.0]);
        drop(ok);
        common::finish_attached_drops(py);
        assert_eq!(refcount(&g, &a), before, "a leaked");

        // a property that raises: the producer's refusal, with its exception as the cause
        run(
            py,
            &g,
            "class Raises:\n\
             \x20   @property\n\
             \x20   def __array_interface__(self):\n\
             \x20       raise ValueError('no interface today')\n",
        );
        let err = Buffer1::<f64>::get(&eval(&g, "Raises()")).unwrap_err();
        assert!(matches!(err, Error::Refused { .. }), "{err}");
        assert!(err.to_string().contains("no interface today"), "{err}");
    });
}

#[test]
fn struct_capsules_that_are_not_interfaces() {
    Python::attach(|py| {
        let g = setup(py);
        run(
            py,
            &g,
            "class S:\n\
             \x20   def __init__(self, v):\n\
             \x20       self.v = v\n\
             \x20   @property\n\
             \x20   def __array_struct__(self):\n\
             \x20       return self.v\n\
             mk = ctypes.pythonapi.PyCapsule_New\n\
             mk.restype = ctypes.py_object\n\
             mk.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]\n\
             junk = (ctypes.c_int * 16)(7)\n\
             not_two = S(mk(ctypes.addressof(junk), None, None))\n",
        );
        let err = Buffer1::<f64>::get(&eval(&g, "S(5)")).unwrap_err();
        assert!(matches!(err, Error::Interchange { .. }), "{err}");
        assert!(err.to_string().contains("expected a PyCapsule"), "{err}");
        let err = Buffer1::<f64>::get(&eval(&g, "not_two")).unwrap_err();
        assert!(err.to_string().contains("first field 7"), "{err}");
    });
}

#[test]
fn the_search_order_and_the_final_error() {
    Python::attach(|py| {
        let g = setup(py);
        let err = Buffer1::<f64>::get(&eval(&g, "[1.0, 2.0]")).unwrap_err();
        assert!(matches!(err, Error::NotABuffer { .. }));
        assert_eq!(
            err.to_string(),
            "expected an object supporting the buffer protocol, DLPack or the array interface, \
             got 'list'"
        );
        assert!(PyErr::from(err).is_instance_of::<PyTypeError>(py));
        // a class is not an array, though its instances may be
        let err = AnyBuffer::get(&eval(&g, "AI")).unwrap_err();
        assert!(matches!(err, Error::NotABuffer { .. }), "{err}");
        // the buffer protocol comes first: a numpy array is read through it (or, for a typed
        // handle of a native scalar dtype, through numpy's own struct, which answers the same),
        // never through the protocols it also has
        assert_eq!(
            Buffer1::<f64>::get(&eval(&g, "np.ones(2)"))
                .unwrap()
                .source(),
            Source::Numpy
        );
        assert_eq!(
            AnyBuffer::get(&eval(&g, "np.ones(2)")).unwrap().source(),
            Source::BufferProtocol
        );
        assert!(matches!(
            Buffer1::<f64>::get(&eval(&g, "np.ones(2).astype('>f8')")),
            Err(Error::ByteOrder { .. })
        ));
        // __array_struct__ before __array_interface__
        run(
            py,
            &g,
            "class Both(AS, AI):\n\
             \x20   pass\n",
        );
        let both = eval(&g, "Both(np.arange(3.0))");
        assert_eq!(
            Buffer1::<f64>::get(&both).unwrap().source(),
            Source::ArrayStruct
        );
        // the explicit constructors use one protocol and say which is missing
        assert_eq!(
            Buffer1::<f64>::from_array_interface(&both)
                .unwrap()
                .source(),
            Source::ArrayInterface
        );
        let err = Buffer1::<f64>::from_array_struct(&eval(&g, "AI(np.ones(2))")).unwrap_err();
        assert!(matches!(err, Error::MissingProtocol { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "expected an object supporting the array interface (__array_struct__), got 'AI'"
        );
        assert!(PyErr::from(err).is_instance_of::<PyTypeError>(py));
        // explicit constructors work on objects that also have the buffer protocol
        let a = eval(&g, "np.arange(3.0)");
        assert_eq!(
            AnyBuffer::from_array_interface(&a).unwrap().source(),
            Source::ArrayInterface
        );
        assert_eq!(
            AnyBuffer::from_array_struct(&a).unwrap().source(),
            Source::ArrayStruct
        );
    });
}

#[test]
fn downstream_views_copies_borrows_and_threads() {
    Python::attach(|py| {
        let g = setup(py);
        run(py, &g, "a = np.arange(8.0)\nw = AI(a)");
        let w = eval(&g, "w");
        let a = eval(&g, "a");
        let (w_before, a_before) = (refcount(&g, &w), refcount(&g, &a));

        let via_interface = Buffer1::<f64>::get_mut(&w).unwrap();
        let via_buffer = Buffer1::<f64>::get_mut(&a).unwrap();
        // one address space: a live write guard from one source blocks the other
        let guard = via_interface.write().unwrap();
        let err = via_buffer.read().unwrap_err();
        assert!(matches!(err, Error::BorrowConflict { .. }), "{err}");
        assert!(via_buffer.to_vec().is_err());
        drop(guard);
        assert_eq!(via_buffer.to_vec().unwrap(), tolist::<f64>(&g, "a"));

        // AnyBuffer: dispatch and retype
        let any = AnyBuffer::get(&w).unwrap();
        assert_eq!(any.source(), Source::ArrayInterface);
        assert_eq!(any.element_kind(), ElementKind::F64);
        assert_eq!(any.format(), "<d");
        let typed: BufferD<f64> = any.typed().unwrap();
        assert_eq!(typed.source(), Source::ArrayInterface);
        assert_eq!(
            typed
                .to_array()
                .unwrap()
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            tolist::<f64>(&g, "a")
        );

        // Send + Sync: read from a worker while detached, drop there (queued, then flushed)
        let sum = py.detach(|| {
            std::thread::scope(|s| {
                s.spawn(|| via_interface.with(|v| v.sum()).unwrap())
                    .join()
                    .unwrap()
            })
        });
        assert_eq!(sum, 28.0);
        py.detach(move || {
            std::thread::spawn(move || {
                drop(via_interface);
                drop(typed);
            })
            .join()
            .unwrap()
        });
        pybuf::flush_releases(py);
        drop(via_buffer);
        common::finish_attached_drops(py);
        assert_eq!(
            refcount(&g, &w),
            w_before,
            "the wrapper's reference was not returned"
        );
        assert_eq!(
            refcount(&g, &a),
            a_before,
            "the array's reference was not returned"
        );
        // nothing pins the array now: it can be resized
        run(py, &g, "del w\na.resize(16, refcheck=False)");
    });
}
