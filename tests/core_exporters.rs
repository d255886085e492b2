//! Typed reads of every exporter in CONFORMANCE.md section E, compared with what Python
//! itself reports (`tolist()`, `tobytes()`).

mod common;

use common::{as_bytes, c_bytes, eval, namespace, run};
use ndarray::IxDyn;
use pybuf::{be, le, AnyBuffer, Buffer, Buffer0, Buffer1, Buffer2, BufferD, Element, Error};
use pyo3::prelude::*;

/// Reads `expr` as `BufferD<T>` and checks the copy against Python's C-order bytes, and the
/// shape against numpy's.
fn check_bytes<T: Element>(expr: &str) {
    Python::attach(|py| {
        let g = namespace(py);
        let x = eval(&g, expr);
        let buf = BufferD::<T>::get(&x).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let v = buf.to_vec().unwrap();
        assert_eq!(as_bytes(&v), c_bytes(&g, &x), "{expr}");
        let shape: Vec<usize> = {
            g.set_item("_x", &x).unwrap();
            eval(&g, "list(memoryview(_x).shape)").extract().unwrap()
        };
        assert_eq!(buf.shape(), &shape[..], "{expr}");
    });
}

/// Reads `expr` as `BufferD<T>` and checks values against `np.asarray(x).ravel().tolist()`.
fn check_values<T>(expr: &str)
where
    T: Element + PartialEq + std::fmt::Debug + for<'py> pyo3::conversion::FromPyObjectOwned<'py>,
{
    Python::attach(|py| {
        let g = namespace(py);
        let x = eval(&g, expr);
        let buf = BufferD::<T>::get(&x).unwrap_or_else(|e| panic!("{expr}: {e}"));
        g.set_item("_x", &x).unwrap();
        let expected: Vec<T> = eval(&g, "np.asarray(memoryview(_x)).ravel(order='C').tolist()")
            .extract()
            .unwrap();
        assert_eq!(buf.to_vec().unwrap(), expected, "{expr}");
    });
}

#[test]
fn bytes_and_bytearray() {
    check_values::<u8>("b'hello world'");
    check_values::<u8>("bytearray(range(200))");
    check_values::<u8>("b''");
    Python::attach(|py| {
        let g = namespace(py);
        let b = eval(&g, "b'abc'");
        let buf = Buffer1::<u8>::get(&b).unwrap();
        assert!(buf.is_readonly());
        assert_eq!(buf.format(), "B");
        assert_eq!(buf.read().unwrap().as_slice().unwrap(), b"abc");
        let ba = eval(&g, "bytearray(b'xyz')");
        let buf = Buffer1::<u8>::get_mut(&ba).unwrap();
        assert!(!buf.is_readonly());
    });
}

#[test]
fn memoryview_slices_and_casts() {
    check_values::<u8>("memoryview(bytes(range(50)))[3:40:3]");
    check_values::<u8>("memoryview(bytes(range(50)))[::-2]");
    check_values::<i32>("memoryview(bytearray(range(24))).cast('i')");
    check_values::<i32>("memoryview(bytearray(range(24))).cast('i', (2, 3))");
    check_values::<i16>("memoryview(bytearray(range(24))).cast('h', (3, 2, 2))");
    check_values::<f64>("memoryview(np.arange(12.0).reshape(3, 4))[::2]");
    check_values::<i64>("memoryview(np.arange(24).reshape(2, 3, 4)).cast('B').cast('q')");
    Python::attach(|py| {
        let g = namespace(py);
        let m = eval(&g, "memoryview(bytearray(range(24))).cast('i', (2, 3))");
        let buf = Buffer2::<i32>::get(&m).unwrap();
        assert_eq!(buf.shape(), &[2, 3]);
        assert_eq!(buf.strides(), &[12, 4]);
        let expected: Vec<Vec<i32>> = eval(
            &g,
            "memoryview(bytearray(range(24))).cast('i', (2, 3)).tolist()",
        )
        .extract()
        .unwrap();
        for (i, row) in expected.iter().enumerate() {
            for (j, &value) in row.iter().enumerate() {
                assert_eq!(buf.item((i, j)).unwrap(), value);
            }
        }
    });
}

#[test]
fn array_module_every_typecode() {
    check_values::<i8>("array.array('b', [-128, -1, 0, 1, 127])");
    check_values::<u8>("array.array('B', [0, 1, 255])");
    check_values::<i16>("array.array('h', [-32768, 0, 32767])");
    check_values::<u16>("array.array('H', [0, 65535])");
    check_values::<i32>("array.array('i', [-2**31, 0, 2**31 - 1])");
    check_values::<u32>("array.array('I', [0, 2**32 - 1])");
    check_values::<i64>("array.array('l', [-2**63, 0, 2**63 - 1])");
    check_values::<u64>("array.array('L', [0, 2**64 - 1])");
    check_values::<i64>("array.array('q', [-2**63, 5])");
    check_values::<u64>("array.array('Q', [2**64 - 1, 5])");
    check_values::<f32>("array.array('f', [1.5, -0.25])");
    check_values::<f64>("array.array('d', [1.5, -0.25, 1e300])");
    // 'l' and 'q' are both i64 with native size on LP64; isize reads 'n'-sized data too
    check_values::<isize>("array.array('l', [-3, 4])");
    check_values::<usize>("array.array('L', [3, 4])");
}

#[test]
fn mmap_buffers() {
    Python::attach(|py| {
        let g = namespace(py);
        run(
            py,
            &g,
            "mm = mmap.mmap(-1, 16)\nmm.write(bytes(range(16)))\n",
        );
        let mm = eval(&g, "mm");
        let buf = Buffer1::<u8>::get_mut(&mm).unwrap();
        assert_eq!(buf.to_vec().unwrap(), (0..16).collect::<Vec<u8>>());
        buf.set_item(3, 99).unwrap();
        drop(buf);
        assert_eq!(eval(&g, "mm[3]").extract::<u8>().unwrap(), 99);
        // a mapping cannot be closed while the buffer is held; it can after release
        let buf = Buffer1::<u8>::get(&mm).unwrap();
        assert!(py.run(c"mm.close()", Some(&g), None).is_err());
        drop(buf);
        common::finish_attached_drops(py);
        run(py, &g, "mm.close()");
    });
}

#[test]
fn ctypes_arrays_have_null_strides_and_little_endian_formats() {
    Python::attach(|py| {
        let g = namespace(py);
        let a = eval(&g, "(ctypes.c_double * 4)(1.5, 2.5, -3.0, 1e-300)");
        let buf = Buffer1::<f64>::get(&a).unwrap();
        assert_eq!(buf.format(), "<d");
        assert_eq!(buf.strides(), &[8]);
        assert_eq!(buf.to_vec().unwrap(), vec![1.5, 2.5, -3.0, 1e-300]);
        assert_eq!(buf.read().unwrap().as_slice().unwrap()[3], 1e-300);

        let m = eval(&g, "((ctypes.c_int * 3) * 2)((1, 2, 3), (4, 5, 6))");
        let buf = Buffer2::<i32>::get(&m).unwrap();
        assert_eq!(buf.shape(), &[2, 3]);
        assert_eq!(buf.strides(), &[12, 4]);
        assert_eq!(buf.to_vec().unwrap(), vec![1, 2, 3, 4, 5, 6]);

        // c_long is '<q' on LP64: standard size 8, so i64; explicit little-endian le:: types too
        let l = eval(&g, "(ctypes.c_long * 2)(-5, 7)");
        assert_eq!(
            Buffer1::<i64>::get(&l).unwrap().to_vec().unwrap(),
            vec![-5, 7]
        );
        let v: Vec<i64> = Buffer1::<le::I64>::get(&l)
            .unwrap()
            .to_vec()
            .unwrap()
            .iter()
            .map(|x| x.get())
            .collect();
        assert_eq!(v, vec![-5, 7]);
        let b = eval(&g, "(ctypes.c_bool * 3)(True, False, True)");
        assert_eq!(
            Buffer1::<bool>::get(&b).unwrap().to_vec().unwrap(),
            vec![true, false, true]
        );
    });
}

#[test]
fn zero_dimensional_buffers_read_as_buffer0() {
    Python::attach(|py| {
        let g = namespace(py);
        for (expr, value) in [
            ("np.array(2.5)", 2.5),
            ("np.float64(1.5)", 1.5),
            ("ctypes.c_double(-4.25)", -4.25),
        ] {
            let x = eval(&g, expr);
            let buf = Buffer0::<f64>::get(&x).unwrap_or_else(|e| panic!("{expr}: {e}"));
            assert_eq!(buf.ndim(), 0, "{expr}");
            assert_eq!(buf.len(), 1, "{expr}");
            assert_eq!(buf.item(()).unwrap(), value, "{expr}");
            assert_eq!(buf.to_vec().unwrap(), vec![value], "{expr}");
            assert_eq!(buf.read().unwrap().view().into_scalar(), &value, "{expr}");
            // Buffer1 accepts a 0-d exporter as shape [1]
            let one = Buffer1::<f64>::get(&x).unwrap();
            assert_eq!(one.shape(), &[1]);
            assert_eq!(one.item(0).unwrap(), value);
        }
        let l = eval(&g, "ctypes.c_int32(-7)");
        assert_eq!(Buffer0::<i32>::get(&l).unwrap().item(()).unwrap(), -7);
        // numpy scalars are read-only
        let s = eval(&g, "np.int16(3)");
        assert!(matches!(
            Buffer0::<i16>::get_mut(&s),
            Err(Error::ReadOnly { .. })
        ));
    });
}

#[test]
fn numpy_every_dtype() {
    check_values::<bool>("np.array([True, False, True])");
    check_values::<i8>("np.arange(-5, 5, dtype=np.int8)");
    check_values::<u8>("np.arange(250, 256, dtype=np.uint8)");
    check_values::<i16>("np.arange(-3, 3, dtype=np.int16).reshape(2, 3)");
    check_values::<u16>("np.arange(6, dtype=np.uint16)");
    check_values::<i32>("np.arange(-6, 6, dtype=np.int32).reshape(2, 2, 3)");
    check_values::<u32>("np.arange(6, dtype=np.uint32)");
    check_values::<i64>("np.arange(-6, 6, dtype=np.int64)");
    check_values::<u64>("np.array([0, 2**64 - 1], dtype=np.uint64)");
    check_values::<f32>("np.linspace(-1, 1, 7, dtype=np.float32)");
    check_values::<f64>("np.linspace(-1, 1, 7)");
    check_bytes::<half::f16>("np.linspace(-1, 1, 7, dtype=np.float16)");
    check_bytes::<num_complex::Complex<f32>>(
        "(np.arange(6) + 1j * np.arange(6)).astype(np.complex64)",
    );
    check_bytes::<num_complex::Complex<f64>>("(np.arange(6) - 2j).reshape(2, 3)");
    check_bytes::<[f64; 3]>(
        "_testbuffer.ndarray([(1.0, 2.0, 3.0), (4.5, 5.5, 6.5)], shape=[2], format='3d')",
    );
    check_bytes::<[[i16; 2]; 2]>(
        "_testbuffer.ndarray([(1, 2, 3, 4), (5, 6, 7, 8)], shape=[2], format='4h')",
    );
    check_bytes::<[u8; 5]>("np.array([b'hello', b'world'], dtype='S5')");
    Python::attach(|py| {
        let g = namespace(py);
        let c = eval(&g, "np.array([1+2j, 3-4j])");
        let v = Buffer1::<num_complex::Complex<f64>>::get(&c)
            .unwrap()
            .to_vec()
            .unwrap();
        assert_eq!(
            v,
            vec![
                num_complex::Complex::new(1.0, 2.0),
                num_complex::Complex::new(3.0, -4.0)
            ]
        );
        let h = eval(&g, "np.array([0.5, -2.0], dtype=np.float16)");
        let v = Buffer1::<half::f16>::get(&h).unwrap().to_vec().unwrap();
        assert_eq!(v, vec![half::f16::from_f32(0.5), half::f16::from_f32(-2.0)]);
    });
}

#[test]
fn testbuffer_ndarray_basic() {
    check_values::<i64>("_testbuffer.ndarray(list(range(12)), shape=[3, 4], format='l')");
    check_values::<u8>("_testbuffer.ndarray(list(range(12)), shape=[3, 4], format='B', flags=_testbuffer.ND_FORTRAN)");
    check_values::<i16>("_testbuffer.ndarray(list(range(12)), shape=[12], format='h')[::-3]");
    Python::attach(|py| {
        let g = namespace(py);
        // PIL-style suboffsets: copies follow them, views refuse them
        let x = eval(
            &g,
            "_testbuffer.ndarray(list(range(12)), shape=[3, 4], format='B', flags=_testbuffer.ND_PIL)",
        );
        let buf = Buffer2::<u8>::get(&x).unwrap();
        assert!(buf.suboffsets().is_some());
        let expected: Vec<Vec<u8>> = eval(&g, "_testbuffer.ndarray(list(range(12)), shape=[3, 4], format='B', flags=_testbuffer.ND_PIL).tolist()").extract().unwrap();
        assert_eq!(buf.to_vec().unwrap(), expected.concat());
        assert_eq!(buf.item((2, 1)).unwrap(), expected[2][1]);
        assert!(matches!(buf.read(), Err(Error::Suboffsets)));
    });
}

#[test]
fn big_endian_is_refused_as_native_and_read_through_byte_order_types() {
    Python::attach(|py| {
        let g = namespace(py);
        let x = eval(&g, "np.array([1.5, -2.0, 1e300], dtype='>f8')");
        let err = Buffer1::<f64>::get(&x).unwrap_err();
        assert!(matches!(err, Error::ByteOrder { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("f64") && msg.contains("'>d'") && msg.contains("big-endian"),
            "{msg}"
        );
        let b = Buffer1::<be::F64>::get(&x).unwrap();
        let v: Vec<f64> = b.to_vec().unwrap().iter().map(|x| x.get()).collect();
        assert_eq!(v, vec![1.5, -2.0, 1e300]);
        // zero-copy too: be::F64 has alignment 1
        let view_sum: f64 = b.with(|v| v.iter().map(|x| x.get()).sum()).unwrap();
        assert_eq!(view_sum, 1.5 - 2.0 + 1e300);
        // and explicit little-endian '<d' is plain f64 here
        let y = eval(&g, "np.array([1.0, 2.0], dtype='<f8')");
        assert_eq!(
            Buffer1::<f64>::get(&y).unwrap().to_vec().unwrap(),
            vec![1.0, 2.0]
        );
        let z = eval(
            &g,
            "memoryview(struct.pack('<2d', 1.0, 2.0)).cast('B').cast('d')",
        );
        assert_eq!(
            Buffer1::<f64>::get(&z).unwrap().to_vec().unwrap(),
            vec![1.0, 2.0]
        );
    });
}

#[test]
fn misaligned_and_odd_strides_refuse_views_but_copy() {
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, "raw = bytearray(25)\nmis = np.frombuffer(raw, 'f8', offset=1)\nmis[:] = [1.5, 2.5, 3.5]\n");
        let x = eval(&g, "mis");
        let buf = Buffer1::<f64>::get(&x).unwrap();
        assert_eq!(buf.format(), "=d");
        assert!(matches!(
            buf.read(),
            Err(Error::Misaligned { align: 8, .. })
        ));
        assert_eq!(buf.to_vec().unwrap(), vec![1.5, 2.5, 3.5]);
        assert_eq!(buf.item(1).unwrap(), 2.5);
        // the unaligned element types view it without a copy
        let u = Buffer1::<le::F64>::get(&x).unwrap();
        assert_eq!(u.with(|v| v[2].get()).unwrap(), 3.5);
        let u = Buffer1::<zerocopy::Unalign<f64>>::get(&x).unwrap();
        assert_eq!(u.with(|v| v[0].get()).unwrap(), 1.5);

        let odd = eval(&g, "as_strided(np.arange(5.0), (3,), (12,))");
        let buf = Buffer1::<f64>::get(&odd).unwrap();
        assert!(matches!(
            buf.read(),
            Err(Error::StrideNotMultiple {
                axis: 0,
                stride: 12,
                itemsize: 8
            })
        ));
        assert_eq!(as_bytes(&buf.to_vec().unwrap()), c_bytes(&g, &odd));
    });
}

#[test]
fn any_buffer_inspects_and_dispatches() {
    Python::attach(|py| {
        let g = namespace(py);
        let x = eval(&g, "np.arange(6, dtype=np.int32).reshape(2, 3)[:, ::2]");
        let any = AnyBuffer::get(&x).unwrap();
        assert_eq!(any.shape(), &[2, 2]);
        assert_eq!(any.strides(), &[12, 8]);
        assert_eq!(any.itemsize(), 4);
        assert_eq!(any.element_kind(), pybuf::ElementKind::I32);
        assert!(!any.is_c_contiguous());
        assert!(any.alignment() >= 4);
        assert_eq!(any.to_bytes(ndarray::Order::C).unwrap(), c_bytes(&g, &x));
        let typed: Buffer<i32, IxDyn> = any.typed().unwrap();
        assert_eq!(typed.to_vec().unwrap(), vec![0, 2, 3, 5]);

        let any = AnyBuffer::get(&eval(&g, "np.zeros(3, '>i4')")).unwrap();
        assert_eq!(any.element_kind(), pybuf::ElementKind::Other);
        assert!(matches!(
            any.typed::<i32, ndarray::Ix1>(),
            Err(Error::ByteOrder { .. })
        ));
    });
}

#[test]
fn numpy_structs_without_trailing_padding_in_their_format_are_read() {
    #[derive(Clone, Copy, Debug, PartialEq, pybuf::Element)]
    #[repr(C)]
    struct Rec {
        a: f64,
        b: be::I32,
    }
    Python::attach(|py| {
        let g = namespace(py);
        run(
            py,
            &g,
            "dt = np.dtype([('a', 'f8'), ('b', '>i4')], align=True)\n\
             r = np.array([(1.5, 7), (-2.0, -9)], dtype=dt)\n",
        );
        let r = eval(&g, "r");
        let format: String = eval(&g, "memoryview(r).format").extract().unwrap();
        let itemsize: usize = eval(&g, "r.itemsize").extract().unwrap();
        // numpy leaves the 4 trailing padding bytes out of the format
        assert_eq!(pybuf::format::parse(&format).unwrap().size, 12, "{format}");
        assert_eq!(itemsize, 16);
        let any = AnyBuffer::get(&r).unwrap();
        assert_eq!(any.item_layout().unwrap().size, 16);
        let v = Buffer1::<Rec>::get(&r).unwrap().to_vec().unwrap();
        let a: Vec<f64> = eval(&g, "r['a'].tolist()").extract().unwrap();
        let b: Vec<i32> = eval(&g, "r['b'].tolist()").extract().unwrap();
        assert_eq!(v.iter().map(|x| x.a).collect::<Vec<_>>(), a);
        assert_eq!(v.iter().map(|x| x.b.get()).collect::<Vec<_>>(), b);
    });
}
