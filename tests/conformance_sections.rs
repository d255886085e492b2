//! CONFORMANCE.md sections A-E as tests, one per checklist line, named after it (`a_`, `b_`,
//! ... prefixes). Lines that other files already cover well are referenced, not repeated:
//!
//! - A "read/writable requests": `core_errors::read_only`, `core_writes::every_write_path_refuses_read_only_memory`
//!   (numpy `writeable=False` is added here);
//! - A "exporters that ignore request flags": `core_writes::exporters_that_ignore_the_writable_request_are_caught`
//!   and `conformance_testbuffer::staticarray_*`;
//! - A "NULL strides", "ndim == 0": `core_exporters::ctypes_arrays_have_null_strides_and_little_endian_formats`,
//!   `core_exporters::zero_dimensional_buffers_read_as_buffer0`;
//! - A "exporter refusal", "suboffset exporters", "ndim up to 64": `core_errors::exporter_refusal_keeps_the_cause`,
//!   `core_errors::invalid_layouts_ndim_64_and_65` and the `_testbuffer` grid;
//! - A "PEP 688 classes" and D "bytearray resize", "many threads", "finalization": the release
//!   tests (`tests/release*.rs`);
//! - B "misaligned data", "self-overlapping writable layouts", "zero strides":
//!   `core_errors::layout_limits_for_views`, `core_writes::broadcast_arrays_are_readable_but_never_mutably_viewed`,
//!   `core_exporters::misaligned_and_odd_strides_refuse_views_but_copy`;
//! - B "element addressing", "copy out in C and F order", "suboffsets": the `_testbuffer` grid;
//! - C "numpy bool byte neither 0 nor 1": `core_errors::invalid_bool_bytes_are_never_read_as_bool`;
//! - E "`_testbuffer.ndarray` across its flag grid": `conformance_testbuffer::testbuffer_grid`.

mod common;

use common::{as_bytes, c_bytes, eval, namespace, run};
use ndarray::Order;
use pybuf::format::parse;
use pybuf::{be, AnyBuffer, Buffer1, Buffer2, BufferD, Element, Error};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Reads `x` as `BufferD<T>` and compares the copies with Python's own bytes in C and F order.
fn same_bytes<T: Element>(g: &Bound<'_, PyDict>, x: &Bound<'_, PyAny>, what: &str) {
    let buf = BufferD::<T>::get(x).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        as_bytes(&buf.to_vec().unwrap()),
        c_bytes(g, x),
        "{what}: C order"
    );
    g.set_item("_x", x).unwrap();
    let f: Vec<u8> = eval(g, "memoryview(_x).tobytes(order='F')")
        .extract()
        .unwrap();
    assert_eq!(
        as_bytes(&buf.to_vec_in(Order::F).unwrap()),
        f,
        "{what}: F order"
    );
}

// ---------------------------------------------------------------------------------------
// A. Requests and exporter behaviour

#[test]
fn a_writable_request_on_read_only_numpy_array() {
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, "ro = np.arange(6.0)\nro.flags.writeable = False\n");
        let ro = eval(&g, "ro");
        let err = Buffer1::<f64>::get_mut(&ro).unwrap_err();
        assert!(matches!(err, Error::ReadOnly { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "expected a writable buffer, got a read-only buffer from 'numpy.ndarray'"
        );
        // the exporter's own traceback is not what the user sees
        let e = PyErr::from(err);
        assert!(e.is_instance_of::<pyo3::exceptions::PyBufferError>(py));
        // and the read request on the same array works, as does a read on a writable one
        assert_eq!(Buffer1::<f64>::get(&ro).unwrap().len(), 6);
        let rw = eval(&g, "np.arange(6.0)");
        assert!(!Buffer1::<f64>::get(&rw).unwrap().is_readonly());
    });
}

#[test]
fn a_null_format_shape_and_strides() {
    Python::attach(|py| {
        let g = namespace(py);
        // ctypes exports NULL strides even when asked for them; pybuf derives C strides
        let m = eval(&g, "((ctypes.c_short * 3) * 2)((1, 2, 3), (4, 5, 6))");
        let buf = Buffer2::<i16>::get(&m).unwrap();
        assert_eq!(buf.strides(), &[6, 2]);
        assert!(buf.is_c_contiguous());
        assert_eq!(buf.item((1, 0)).unwrap(), 4);
        same_bytes::<i16>(&g, &m, "ctypes 2-D");
        // bytes and mmap export format 'B'
        let b = AnyBuffer::get(&eval(&g, "b'xyz'")).unwrap();
        assert_eq!(b.format(), "B");
        assert_eq!(b.shape(), &[3]);
    });
}

// ---------------------------------------------------------------------------------------
// B. Layouts

#[test]
fn b_c_and_fortran_order_ndim_0_to_6_and_transposes() {
    Python::attach(|py| {
        let g = namespace(py);
        for ndim in 0..=6usize {
            let shape: Vec<usize> = (0..ndim).map(|k| 2 + k % 2).collect();
            g.set_item("_shape", shape.clone()).unwrap();
            for order in ["C", "F"] {
                g.set_item("_order", order).unwrap();
                let a = eval(
                    &g,
                    "np.arange(np.prod(_shape, dtype=int), dtype=np.int32).reshape(_shape, order=_order)",
                );
                same_bytes::<i32>(&g, &a, &format!("ndim {ndim} order {order}"));
                let t = eval(&g, "np.arange(np.prod(_shape, dtype=int), dtype=np.int32).reshape(_shape, order=_order).T");
                same_bytes::<i32>(&g, &t, &format!("ndim {ndim} order {order} transposed"));
                let any = AnyBuffer::get(&a).unwrap();
                g.set_item("_a", &a).unwrap();
                let (c, f): (bool, bool) = eval(
                    &g,
                    "(memoryview(_a).c_contiguous, memoryview(_a).f_contiguous)",
                )
                .extract()
                .unwrap();
                assert_eq!((any.is_c_contiguous(), any.is_f_contiguous()), (c, f));
            }
        }
    });
}

#[test]
fn b_slices_with_steps_minus_5_to_4_and_buf_not_at_start() {
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, "base1 = np.arange(23, dtype=np.int16) * 3 - 7\nbase2 = np.arange(7 * 9, dtype=np.float64).reshape(7, 9)\n");
        for step in (-5isize..=4).filter(|&s| s != 0) {
            for start in [None, Some(1usize), Some(5)] {
                let st = start.map_or(String::new(), |s| s.to_string());
                let e1 = format!("base1[{st}::{step}]");
                let x = eval(&g, &e1);
                same_bytes::<i16>(&g, &x, &e1);
                let buf = Buffer1::<i16>::get(&x).unwrap();
                let expected: Vec<i16> = eval(&g, &format!("{e1}.tolist()")).extract().unwrap();
                for (i, &v) in expected.iter().enumerate() {
                    assert_eq!(buf.item(i).unwrap(), v, "{e1}[{i}]");
                }
                if !expected.is_empty() {
                    // the view reads the same values, whichever way the strides point
                    let viewed: Vec<i16> = buf.read().unwrap().view().iter().copied().collect();
                    assert_eq!(viewed, expected, "{e1}");
                }
                for step2 in [-3isize, -1, 2] {
                    let e2 = format!("base2[{st}::{step}, ::{step2}]");
                    same_bytes::<f64>(&g, &eval(&g, &e2), &e2);
                }
            }
        }
    });
}

#[test]
fn b_zero_size_dimensions_in_every_position() {
    Python::attach(|py| {
        let g = namespace(py);
        for shape in [
            "(0,)",
            "(0, 3)",
            "(3, 0)",
            "(2, 0, 3)",
            "(0, 0)",
            "(1, 0, 1)",
            "(2, 3, 0)",
        ] {
            for expr in [
                format!("np.zeros({shape}, dtype=np.float32)"),
                format!("as_strided(np.zeros(4, dtype=np.float32), {shape}, (-4,) * len({shape}))"),
                format!(
                    "as_strided(np.zeros(4, dtype=np.float32), {shape}, (1 << 40,) * len({shape}))"
                ),
            ] {
                let x = eval(&g, &expr);
                let buf = BufferD::<f32>::get(&x).unwrap_or_else(|e| panic!("{expr}: {e}"));
                assert!(buf.is_empty(), "{expr}");
                assert!(buf.is_c_contiguous() && buf.is_f_contiguous(), "{expr}");
                assert_eq!(buf.to_vec().unwrap(), Vec::<f32>::new(), "{expr}");
                assert_eq!(buf.read().unwrap().view().len(), 0, "{expr}");
                let w = BufferD::<f32>::get_mut(&x).unwrap();
                w.copy_from_slice(&[]).unwrap();
                assert_eq!(w.write().unwrap().view_mut().len(), 0, "{expr}");
            }
        }
    });
}

#[test]
fn b_precise_contiguity_1_12_1_and_7_0_7() {
    Python::attach(|py| {
        let g = namespace(py);
        for expr in [
            "np.zeros((1, 12, 1))",
            "as_strided(np.zeros(12), (1, 12, 1), (999, 8, -5))",
            "np.zeros((7, 0, 7))",
            "as_strided(np.zeros(1), (7, 0, 7), (3, 5, 7))",
            "_testbuffer.ndarray(list(range(12)), shape=[1, 12, 1], format='d')",
            "_testbuffer.ndarray([0], shape=[7, 0, 7], format='d')",
        ] {
            let x = eval(&g, expr);
            let any = AnyBuffer::get(&x).unwrap();
            assert!(any.is_c_contiguous(), "{expr}: C");
            assert!(any.is_f_contiguous(), "{expr}: F");
            g.set_item("_x", &x).unwrap();
            let (c, f): (bool, bool) = eval(
                &g,
                "(_testbuffer.is_contiguous(_x, 'C'), _testbuffer.is_contiguous(_x, 'F'))",
            )
            .extract()
            .unwrap();
            assert!(c && f, "CPython agrees for {expr}");
            if !any.is_empty() {
                // C-contiguous means a zero-copy slice
                let buf = BufferD::<f64>::get(&x).unwrap();
                assert_eq!(buf.read().unwrap().as_slice().unwrap().len(), 12);
            }
        }
    });
}

#[test]
fn b_byte_strides_not_a_multiple_of_the_item_size_structured_fields() {
    Python::attach(|py| {
        let g = namespace(py);
        run(
            py,
            &g,
            "rec = np.zeros(5, dtype=[('a', 'i1'), ('b', '<f8'), ('c', '<i2')])\n\
             rec['b'] = np.arange(5) * 1.5\nrec['c'] = -np.arange(5)\n",
        );
        let b = eval(&g, "rec['b']");
        let buf = Buffer1::<f64>::get(&b).unwrap();
        assert_eq!(buf.strides(), &[11]);
        assert_eq!(buf.to_vec().unwrap(), [0.0, 1.5, 3.0, 4.5, 6.0]);
        assert!(matches!(
            buf.read(),
            Err(Error::StrideNotMultiple { stride: 11, .. }) | Err(Error::Misaligned { .. })
        ));
        let c = Buffer1::<i16>::get_mut(&eval(&g, "rec['c']")).unwrap();
        c.copy_from_slice(&[10, 11, 12, 13, 14]).unwrap();
        assert_eq!(
            eval(&g, "rec['c'].tolist()").extract::<Vec<i16>>().unwrap(),
            [10, 11, 12, 13, 14]
        );
        // the neighbouring fields are untouched
        assert_eq!(
            eval(&g, "rec['b'].tolist()").extract::<Vec<f64>>().unwrap(),
            [0.0, 1.5, 3.0, 4.5, 6.0]
        );
        same_bytes::<f64>(
            &g,
            &eval(&g, "as_strided(np.arange(5.0), (3,), (12,))"),
            "as_strided (3,) (12,)",
        );
    });
}

// ---------------------------------------------------------------------------------------
// C. Formats

/// Items for `struct` code `code` with prefix `prefix`, built by Python.
const FORMAT_HELPERS: &str = r#"
def sample(fmt, n=5):
    code = fmt[-1]
    bits = 8 * struct.calcsize(fmt)
    if code == '?': return [bool(x % 2) for x in range(n)]
    if code == 'c': return [bytes([65 + x]) for x in range(n)]
    if code in 'efd': return [x * 0.5 - 1 for x in range(n)]
    if code in 'bhilqn': return [(-1) ** x * ((1 << (bits - 1)) - 1 - x) for x in range(n)]
    return [(1 << bits) - 1 - x for x in range(n)]
"#;

#[test]
fn c_every_native_code_with_every_prefix() {
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, FORMAT_HELPERS);
        let mut checked = 0;
        for code in "?cbBhHiIlLqQnNefdP".chars() {
            for prefix in ["", "@", "=", "<", ">", "!"] {
                let fmt = format!("{prefix}{code}");
                g.set_item("_fmt", &fmt).unwrap();
                let native_only = "nNP".contains(code);
                if native_only && !matches!(prefix, "" | "@") {
                    // struct itself refuses these
                    assert!(eval(&g, "lambda: struct.calcsize(_fmt)").call0().is_err());
                    if code == 'P' {
                        // ... but ctypes exports pointers as '<P' (c_void_p, pointer fields),
                        // so the parser accepts a pointer of native size without alignment
                        let item = parse(&fmt).unwrap_or_else(|e| panic!("{fmt}: {e}"));
                        assert_eq!(item.size, std::mem::size_of::<usize>(), "{fmt}");
                        assert_eq!(item.align, 1, "{fmt}");
                    } else {
                        assert!(parse(&fmt).is_err(), "{fmt} parsed");
                    }
                    continue;
                }
                let x = eval(
                    &g,
                    "_testbuffer.ndarray(sample(_fmt), shape=[5], format=_fmt, flags=_testbuffer.ND_WRITABLE)",
                );
                let size: usize = eval(&g, "struct.calcsize(_fmt)").extract().unwrap();
                let any = AnyBuffer::get(&x).unwrap();
                let item = any.item_layout().unwrap_or_else(|e| panic!("{fmt}: {e}"));
                assert_eq!(item.size, size, "{fmt}: size");
                assert_eq!(any.to_bytes(Order::C).unwrap(), c_bytes(&g, &x), "{fmt}");
                // standard sizes with = < > !, native with @ or none
                let std_size = !matches!(prefix, "" | "@");
                if code == 'l' || code == 'L' {
                    assert_eq!(size, if std_size { 4 } else { 8 }, "{fmt}");
                }
                let big = matches!(prefix, ">" | "!");
                let typed_ok = match (code, std_size, big) {
                    ('?', _, _) => BufferD::<bool>::get(&x).is_ok(),
                    ('b', _, _) => BufferD::<i8>::get(&x).is_ok(),
                    ('B' | 'c', _, _) => BufferD::<u8>::get(&x).is_ok(),
                    ('h', _, false) => BufferD::<i16>::get(&x).is_ok(),
                    ('h', _, true) => BufferD::<be::I16>::get(&x).is_ok(),
                    ('H', _, false) => BufferD::<u16>::get(&x).is_ok(),
                    ('H', _, true) => BufferD::<be::U16>::get(&x).is_ok(),
                    ('i', _, false) | ('l', true, false) => BufferD::<i32>::get(&x).is_ok(),
                    ('i', _, true) | ('l', true, true) => BufferD::<be::I32>::get(&x).is_ok(),
                    ('I', _, false) | ('L', true, false) => BufferD::<u32>::get(&x).is_ok(),
                    ('I', _, true) | ('L', true, true) => BufferD::<be::U32>::get(&x).is_ok(),
                    ('q', _, false) | ('l', false, _) => BufferD::<i64>::get(&x).is_ok(),
                    ('q', _, true) => BufferD::<be::I64>::get(&x).is_ok(),
                    ('Q', _, false) | ('L', false, _) => BufferD::<u64>::get(&x).is_ok(),
                    ('Q', _, true) => BufferD::<be::U64>::get(&x).is_ok(),
                    ('n', _, _) => BufferD::<isize>::get(&x).is_ok(),
                    ('N' | 'P', _, _) => BufferD::<usize>::get(&x).is_ok(),
                    ('e', _, false) => BufferD::<half::f16>::get(&x).is_ok(),
                    ('e', _, true) => AnyBuffer::get(&x).is_ok(),
                    ('f', _, false) => BufferD::<f32>::get(&x).is_ok(),
                    ('f', _, true) => BufferD::<be::F32>::get(&x).is_ok(),
                    ('d', _, false) => BufferD::<f64>::get(&x).is_ok(),
                    ('d', _, true) => BufferD::<be::F64>::get(&x).is_ok(),
                    _ => unreachable!("{fmt}"),
                };
                assert!(typed_ok, "{fmt}: the matching element type was refused");
                // multi-byte codes in the other byte order are refused as native types
                if big && "hHiIlLqQfd".contains(code) {
                    let err = match code {
                        'h' => BufferD::<i16>::get(&x).err(),
                        'H' => BufferD::<u16>::get(&x).err(),
                        'i' | 'l' => BufferD::<i32>::get(&x).err(),
                        'I' | 'L' => BufferD::<u32>::get(&x).err(),
                        'q' => BufferD::<i64>::get(&x).err(),
                        'Q' => BufferD::<u64>::get(&x).err(),
                        'f' => BufferD::<f32>::get(&x).err(),
                        _ => BufferD::<f64>::get(&x).err(),
                    };
                    assert!(
                        matches!(err, Some(Error::ByteOrder { .. })),
                        "{fmt}: {err:?}"
                    );
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 15 * 6 + 3 * 2);
    });
}

#[test]
fn c_repeat_counts_compound_items_and_padding() {
    Python::attach(|py| {
        let g = namespace(py);
        // every size is what `struct.calcsize` says
        for fmt in [
            "1d",
            "d",
            "3i",
            "0c",
            "l x d x",
            "@ixxd",
            "<ixxd",
            "=Qq",
            ">Qq",
            "Lf5s",
            "< 10p 9p d",
            "2h",
            "4s",
            "?3x",
            "!2H",
        ] {
            g.set_item("_fmt", fmt).unwrap();
            let size: usize = eval(&g, "struct.calcsize(_fmt)").extract().unwrap();
            let item = parse(fmt).unwrap_or_else(|e| panic!("{fmt}: {e}"));
            assert_eq!(item.size, size, "{fmt}");
        }
        assert_eq!(parse("@ixxd").unwrap().size, 16);
        assert_eq!(parse("<ixxd").unwrap().size, 14);
        assert_eq!(parse("1d").unwrap(), parse("d").unwrap());
        // '3i' is one item of three i32; an exporter of such items reads as [i32; 3]
        let x = eval(
            &g,
            "_testbuffer.ndarray([(1, 2, 3), (4, 5, 6)], shape=[2], format='3i')",
        );
        let buf = Buffer1::<[i32; 3]>::get(&x).unwrap();
        assert_eq!(buf.to_vec().unwrap(), [[1, 2, 3], [4, 5, 6]]);
        // compound items read as raw bytes through AnyBuffer, equal to struct's packing
        for (fmt, items) in [
            ("ixxd", "[(1, 2.5), (-3, 1e300)]"),
            ("<ixxd", "[(1, 2.5), (-3, 1e300)]"),
            ("=Qq", "[(2**64 - 1, -2**63), (0, 5)]"),
            (">Qq", "[(2**64 - 1, -2**63), (0, 5)]"),
            ("Lf5s", "[(7, 0.5, b'hello'), (8, -0.5, b'x')]"),
        ] {
            g.set_item("_fmt", fmt).unwrap();
            let x = eval(
                &g,
                &format!("_testbuffer.ndarray({items}, shape=[2], format=_fmt)"),
            );
            let any = AnyBuffer::get(&x).unwrap();
            assert_eq!(any.to_bytes(Order::C).unwrap(), c_bytes(&g, &x), "{fmt}");
            let expected: Vec<u8> = eval(
                &g,
                &format!("b''.join(struct.pack(_fmt, *v) for v in {items})"),
            )
            .extract()
            .unwrap();
            assert_eq!(any.to_bytes(Order::C).unwrap(), expected, "{fmt}");
        }
    });
}

#[test]
fn c_struct_formats_numpy_ctypes_big_endian_and_packed() {
    Python::attach(|py| {
        let g = namespace(py);
        run(
            py,
            &g,
            "class S(ctypes.Structure):\n    _fields_ = [('a', ctypes.c_char), ('b', ctypes.c_int), ('c', ctypes.c_double * 3)]\n\
             class B(ctypes.BigEndianStructure):\n    _fields_ = [('x', ctypes.c_longlong), ('y', ctypes.c_double)]\n\
             class P(ctypes.Structure):\n    _pack_ = 1\n    _fields_ = [('a', ctypes.c_char), ('b', ctypes.c_int)]\n\
             structs = [np.zeros(3, dtype=[('a', '<i4'), ('b', '<f8')]),\n\
                        np.zeros(3, dtype=np.dtype([('a', '<i4'), ('b', '<f8')], align=True)),\n\
                        (S * 2)(), (B * 2)(), (P * 3)(), S(), B()]\n\
             structs[0]['a'] = [1, 2, 3]; structs[0]['b'] = [0.5, 1.5, 2.5]\n\
             structs[2][1].b = 7; structs[3][0].y = 2.5; structs[4][2].b = -1\n",
        );
        let n: usize = eval(&g, "len(structs)").extract().unwrap();
        for k in 0..n {
            let x = eval(&g, &format!("structs[{k}]"));
            g.set_item("_x", &x).unwrap();
            let (format, itemsize): (String, usize) =
                eval(&g, "(memoryview(_x).format, memoryview(_x).itemsize)")
                    .extract()
                    .unwrap();
            let any = AnyBuffer::get(&x).unwrap();
            assert_eq!(any.format(), format);
            // raw bytes are always available, whatever the format says
            assert_eq!(any.to_bytes(Order::C).unwrap(), c_bytes(&g, &x), "{format}");
            match any.item_layout() {
                Ok(item) => assert_eq!(item.size, itemsize, "{format}"),
                Err(Error::ItemSize {
                    format_size,
                    itemsize: reported,
                    ..
                }) => {
                    // Python 3.11's ctypes describes padded structures without their padding
                    // ('T{<c:a:<i:b:(3)<d:c:}' for 32-byte items) and packed ones as 'B': the
                    // format's own size is then the sum of the fields' sizes (or 1 for 'B'),
                    // which must be what pybuf reports against the exporter's itemsize
                    let fields_size: usize = eval(
                        &g,
                        "(lambda t: struct.calcsize('B') if memoryview(_x).format == 'B' else \
                         sum(ctypes.sizeof(f[1]) for f in t._fields_))\
                         (getattr(_x, '_type_', type(_x)))",
                    )
                    .extract()
                    .unwrap();
                    assert_eq!(*format_size, fields_size, "{format}");
                    assert_eq!(*reported, itemsize as isize, "{format}");
                    assert!(!format.contains('x'), "{format}: padded, yet refused");
                }
                Err(e) => panic!("{format}: {e}"),
            }
        }
        // numpy's and big-endian ctypes' formats are consistent and parse to their itemsize
        for k in [0usize, 1, 3, 6] {
            let x = eval(&g, &format!("structs[{k}]"));
            let any = AnyBuffer::get(&x).unwrap();
            assert_eq!(
                any.item_layout().map(|i| i.size).ok(),
                Some(any.itemsize()),
                "{}",
                any.format()
            );
        }
    });
}

#[test]
fn c_ctypes_codes_are_explicit_little_endian_standard_size() {
    Python::attach(|py| {
        let g = namespace(py);
        for (expr, format) in [
            ("(ctypes.c_double * 2)(1.5, -2)", "<d"),
            ("(ctypes.c_long * 2)(-1, 2)", "<q"),
            ("(ctypes.c_bool * 2)(True, False)", "<?"),
            ("(ctypes.c_int * 2)(3, 4)", "<i"),
            ("(ctypes.c_uint16 * 2)(3, 4)", "<H"),
        ] {
            let x = eval(&g, expr);
            assert_eq!(AnyBuffer::get(&x).unwrap().format(), format, "{expr}");
        }
        same_bytes::<f64>(&g, &eval(&g, "(ctypes.c_double * 2)(1.5, -2)"), "c_double");
        same_bytes::<i64>(&g, &eval(&g, "(ctypes.c_long * 2)(-1, 2)"), "c_long");
        same_bytes::<bool>(&g, &eval(&g, "(ctypes.c_bool * 2)(True, False)"), "c_bool");
        same_bytes::<i32>(&g, &eval(&g, "(ctypes.c_int * 2)(3, 4)"), "c_int");
        same_bytes::<u16>(&g, &eval(&g, "(ctypes.c_uint16 * 2)(3, 4)"), "c_uint16");
    });
}

#[test]
fn c_numpy_complex_half_bool_and_byte_swapped() {
    Python::attach(|py| {
        let g = namespace(py);
        for (expr, format) in [
            ("np.array([1 + 2j], dtype=np.complex64)", "Zf"),
            ("np.array([1 + 2j], dtype=np.complex128)", "Zd"),
            ("np.array([0.5], dtype=np.float16)", "e"),
            ("np.array([True])", "?"),
            ("np.array([1.0], dtype='>f8')", ">d"),
        ] {
            assert_eq!(
                AnyBuffer::get(&eval(&g, expr)).unwrap().format(),
                format,
                "{expr}"
            );
        }
        let swapped = eval(&g, "np.arange(4.0).astype('>f8')");
        let err = Buffer1::<f64>::get(&swapped).unwrap_err();
        assert!(matches!(err, Error::ByteOrder { .. }), "{err}");
        let buf = Buffer1::<be::F64>::get(&swapped).unwrap();
        let values: Vec<f64> = buf.to_vec().unwrap().iter().map(|v| v.get()).collect();
        assert_eq!(values, [0.0, 1.0, 2.0, 3.0]);
    });
}

#[test]
fn c_invalid_formats_give_a_format_error_never_a_panic() {
    for bad in [
        "",
        "@#$",
        "T{",
        "T{i:a:",
        "}",
        "(3",
        "(3,)",
        "3",
        "xT{}",
        "Z",
        "Zq",
        "T{i}",
        ":a:",
        "<>d",
        "(2,-1)i",
        "99999999999999999999999d",
        "(99999999999,99999999999)d",
        "\u{e9}",
    ] {
        let r = std::panic::catch_unwind(|| parse(bad));
        match r {
            Ok(Ok(item)) if bad.is_empty() => panic!("empty format parsed as {item:?}"),
            Ok(_) => {}
            Err(_) => panic!("parse({bad:?}) panicked"),
        }
    }
    for bad in ["", "@#$", "T{", "T{i:a:"] {
        assert!(parse(bad).is_err(), "{bad:?} parsed");
    }
    // through an exporter: array's 'u' (wchar_t) and numpy's object arrays
    Python::attach(|py| {
        let g = namespace(py);
        for expr in [
            "array.array('u', 'ab')",
            "np.array([None])",
            "np.array(['ab'])",
        ] {
            let x = eval(&g, expr);
            match BufferD::<u32>::get(&x) {
                Err(Error::Format { .. } | Error::ElementType { .. }) => {}
                Err(e) => panic!("{expr}: unexpected error {e}"),
                Ok(b) => panic!("{expr}: read as u32 with format {}", b.format()),
            }
        }
    });
}

// ---------------------------------------------------------------------------------------
// D. Lifetime

#[test]
fn d_overlapping_mutable_borrows_conflict_interleaved_views_do_not() {
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, "a = np.arange(10.0)\n");
        let a1 = Buffer1::<f64>::get_mut(&eval(&g, "a")).unwrap();
        let a2 = Buffer1::<f64>::get_mut(&eval(&g, "a[3:7]")).unwrap();
        {
            let _w = a1.write().unwrap();
            assert!(matches!(a2.write(), Err(Error::BorrowConflict { .. })));
            assert!(matches!(a2.read(), Err(Error::BorrowConflict { .. })));
            assert!(matches!(a2.to_vec(), Err(Error::BorrowConflict { .. })));
        }
        let even = Buffer1::<f64>::get_mut(&eval(&g, "a[::2]")).unwrap();
        let odd = Buffer1::<f64>::get_mut(&eval(&g, "a[1::2]")).unwrap();
        let mut we = even.write().unwrap();
        let mut wo = odd.write().unwrap();
        we.view_mut().fill(1.0);
        wo.view_mut().fill(2.0);
        drop((we, wo));
        assert_eq!(
            eval(&g, "a.tolist()").extract::<Vec<f64>>().unwrap(),
            [1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0]
        );
        // the same through reversed and interleaved 2-D views
        run(py, &g, "m = np.zeros((4, 6))\n");
        let left = Buffer2::<f64>::get_mut(&eval(&g, "m[::-1, 0::3]")).unwrap();
        let right = Buffer2::<f64>::get_mut(&eval(&g, "m[:, 1::3]")).unwrap();
        let both = Buffer2::<f64>::get_mut(&eval(&g, "m[:, ::2]")).unwrap();
        let _l = left.write().unwrap();
        let _r = right.write().unwrap();
        assert!(matches!(both.write(), Err(Error::BorrowConflict { .. })));
    });
}

// ---------------------------------------------------------------------------------------
// E. Exporters

#[test]
fn e_memoryview_slices_and_casts_of_every_exporter() {
    Python::attach(|py| {
        let g = namespace(py);
        run(
            py,
            &g,
            "mm = mmap.mmap(-1, 64)\nmm.write(bytes(range(64)))\n\
             sources = [b'0123456789abcdef' * 4, bytearray(range(64)), array.array('B', range(64)),\n\
                        mm, (ctypes.c_uint8 * 64)(*range(64)), np.arange(64, dtype=np.uint8),\n\
                        _testbuffer.ndarray(list(range(64)), shape=[64], format='B')]\n\
             VIEWS = ['m', 'm[5:50:3]', 'm[::-1]', 'm.cast(\"B\")[::-7]', 'm.cast(\"B\").cast(\"i\")',\n\
                      'm.cast(\"B\").cast(\"h\", (4, 8))', 'm.cast(\"B\").cast(\"d\", (2, 2, 2))',\n\
                      'm.cast(\"B\").cast(\"i\")[::-3]']\n\
             views = []\n\
             for k, s in enumerate(sources):\n\
             \x20   for v in VIEWS:\n\
             \x20       try:\n\
             \x20           views.append((f'{type(s).__name__}: {v}', eval(v, {'m': memoryview(s)})))\n\
             \x20       except (TypeError, ValueError):\n\
             \x20           pass  # Python itself cannot build this view (ctypes' '<B' does not cast)\n",
        );
        let views: Vec<(String, Bound<'_, PyAny>)> = eval(&g, "views").extract().unwrap();
        assert!(views.len() >= 6 * 8 + 3, "only {} views", views.len());
        for (what, x) in &views {
            let any = AnyBuffer::get(x).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(any.to_bytes(Order::C).unwrap(), c_bytes(&g, x), "{what}");
            match any.format() {
                "B" | "<B" => same_bytes::<u8>(&g, x, what),
                "i" => same_bytes::<i32>(&g, x, what),
                "h" => same_bytes::<i16>(&g, x, what),
                "d" => same_bytes::<f64>(&g, x, what),
                other => panic!("{what}: unexpected format {other}"),
            }
        }
    });
}

#[test]
fn e_array_array_every_typecode_writable() {
    Python::attach(|py| {
        let g = namespace(py);
        for code in "bBhHiIlLqQfd".chars() {
            g.set_item("_c", code.to_string()).unwrap();
            let x = eval(&g, "array.array(_c, range(1, 6))");
            let any = AnyBuffer::get_mut(&x).unwrap();
            assert!(!any.is_readonly());
            assert_eq!(any.format(), code.to_string());
            assert_eq!(any.to_bytes(Order::C).unwrap(), c_bytes(&g, &x), "{code}");
        }
    });
}
