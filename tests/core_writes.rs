//! Writes through `set_item`, `copy_from_slice` and `with_mut` are visible from Python, and
//! every write path refuses read-only memory.

mod common;

use common::{eval, namespace, run};
use pybuf::{Buffer1, Buffer2, BufferD, Error};
use pyo3::prelude::*;

#[test]
fn set_item_copy_from_slice_and_with_mut_are_visible_from_python() {
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, "a = np.zeros((3, 4))\nt = a.T[::-1]\n");
        let a = Buffer2::<f64>::get_mut(&eval(&g, "a")).unwrap();
        a.set_item((1, 2), 7.5).unwrap();
        assert_eq!(eval(&g, "a[1, 2]").extract::<f64>().unwrap(), 7.5);

        let data: Vec<f64> = (0..12).map(f64::from).collect();
        a.copy_from_slice(&data).unwrap();
        assert_eq!(
            eval(&g, "a.ravel().tolist()")
                .extract::<Vec<f64>>()
                .unwrap(),
            data
        );

        a.with_mut(|mut v| v.row_mut(0).fill(-1.0)).unwrap();
        assert_eq!(
            eval(&g, "a[0].tolist()").extract::<Vec<f64>>().unwrap(),
            vec![-1.0; 4]
        );
        drop(a);

        // a transposed, reversed view: writes land where numpy says
        let t = Buffer2::<f64>::get_mut(&eval(&g, "t")).unwrap();
        assert_eq!(t.shape(), &[4, 3]);
        t.set_item((0, 2), 100.0).unwrap();
        assert_eq!(eval(&g, "t[0, 2]").extract::<f64>().unwrap(), 100.0);
        let src: Vec<f64> = (0..12).map(|x| x as f64 * 10.0).collect();
        t.copy_from_slice(&src).unwrap();
        assert_eq!(
            eval(&g, "t.ravel(order='C').tolist()")
                .extract::<Vec<f64>>()
                .unwrap(),
            src
        );
        t.with_mut(|mut v| v[[3, 0]] = 0.5).unwrap();
        assert_eq!(eval(&g, "t[3, 0]").extract::<f64>().unwrap(), 0.5);
        // Fortran-order copy in
        t.copy_from_slice_in(&src, ndarray::Order::F).unwrap();
        assert_eq!(
            eval(&g, "t.ravel(order='F').tolist()")
                .extract::<Vec<f64>>()
                .unwrap(),
            src
        );

        // through a write guard's mutable slice
        let b = eval(&g, "bytearray(4)");
        let buf = Buffer1::<u8>::get_mut(&b).unwrap();
        buf.write()
            .unwrap()
            .as_slice_mut()
            .unwrap()
            .copy_from_slice(b"rust");
        assert_eq!(b.extract::<Vec<u8>>().unwrap(), b"rust");
    });
}

#[test]
fn every_write_path_refuses_read_only_memory() {
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, "ro = np.arange(4.0)\nro.flags.writeable = False\n");
        for expr in ["b'abcd'", "ro", "memoryview(bytearray(4)).toreadonly()"] {
            let x = eval(&g, expr);
            assert!(
                matches!(
                    BufferD::<u8>::get_mut(&x),
                    Err(Error::ReadOnly { .. }) | Err(Error::ElementType { .. })
                ),
                "{expr}"
            );
        }
        let ro = eval(&g, "ro");
        let err = Buffer1::<f64>::get_mut(&ro).unwrap_err();
        assert!(matches!(err, Error::ReadOnly { .. }));
        assert!(
            err.to_string().contains("expected a writable buffer"),
            "{err}"
        );

        // a read request succeeds, and every write path then refuses
        let buf = Buffer1::<f64>::get(&ro).unwrap();
        assert!(matches!(buf.set_item(0, 1.0), Err(Error::ReadOnly { .. })));
        assert!(matches!(
            buf.copy_from_slice(&[0.0; 4]),
            Err(Error::ReadOnly { .. })
        ));
        assert!(matches!(buf.with_mut(|_| ()), Err(Error::ReadOnly { .. })));
        assert!(matches!(buf.write(), Err(Error::ReadOnly { .. })));
        assert_eq!(
            eval(&g, "ro.tolist()").extract::<Vec<f64>>().unwrap(),
            vec![0.0, 1.0, 2.0, 3.0]
        );

        let b = eval(&g, "b'abcd'");
        let buf = Buffer1::<u8>::get(&b).unwrap();
        assert!(matches!(buf.set_item(0, 1), Err(Error::ReadOnly { .. })));
        assert!(matches!(
            buf.copy_from_slice(b"wxyz"),
            Err(Error::ReadOnly { .. })
        ));
        assert_eq!(b.extract::<Vec<u8>>().unwrap(), b"abcd");
    });
}

#[test]
fn exporters_that_ignore_the_writable_request_are_caught() {
    Python::attach(|py| {
        let g = namespace(py);
        // staticarray ignores request flags and always exports read-only memory
        let s = eval(&g, "_testbuffer.staticarray()");
        // (PyObject_GetBuffer with PyBUF_WRITABLE succeeds, readonly comes back set)
        assert!(matches!(
            Buffer1::<u8>::get_mut(&s),
            Err(Error::ReadOnly { .. })
        ));
        let buf = Buffer1::<u8>::get(&s).unwrap();
        assert!(buf.is_readonly());
        assert!(matches!(buf.set_item(0, 1), Err(Error::ReadOnly { .. })));
        assert_eq!(buf.to_vec().unwrap(), (0..12).collect::<Vec<u8>>());
    });
}

#[test]
fn broadcast_arrays_are_readable_but_never_mutably_viewed() {
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, "base = np.arange(3.0)\nbc = np.broadcast_to(base, (4, 3))\nbcw = as_strided(base, (4, 3), (0, 8))\n");
        let bc = Buffer2::<f64>::get(&eval(&g, "bc")).unwrap();
        assert_eq!(bc.strides(), &[0, 8]);
        assert_eq!(
            bc.to_vec().unwrap(),
            eval(&g, "bc.ravel().tolist()")
                .extract::<Vec<f64>>()
                .unwrap()
        );
        assert_eq!(bc.with(|v| v.sum()).unwrap(), 12.0);
        // as_strided keeps the base writable: still no mutable view of overlapping items
        let w = Buffer2::<f64>::get_mut(&eval(&g, "bcw")).unwrap();
        assert!(matches!(w.write(), Err(Error::SelfOverlapping { .. })));
        assert!(matches!(
            w.with_mut(|_| ()),
            Err(Error::SelfOverlapping { .. })
        ));
        // element-wise writes are fine (they go through raw pointers, one item at a time)
        w.set_item((3, 1), 9.0).unwrap();
        assert_eq!(eval(&g, "base[1]").extract::<f64>().unwrap(), 9.0);
    });
}

#[test]
fn bool_buffers_are_validated_for_read_and_write_guards() {
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, "flags = np.array([True, False, True])\nbad = np.frombuffer(bytearray(b'\\x01\\x02'), dtype=bool)\n");
        let flags = Buffer1::<bool>::get_mut(&eval(&g, "flags")).unwrap();
        assert_eq!(flags.with(|v| v.iter().filter(|&&b| b).count()).unwrap(), 2);
        flags.with_mut(|mut v| v.mapv_inplace(|b| !b)).unwrap();
        assert_eq!(
            eval(&g, "flags.tolist()").extract::<Vec<bool>>().unwrap(),
            vec![false, true, false]
        );
        let bad = Buffer1::<bool>::get_mut(&eval(&g, "bad")).unwrap();
        assert!(matches!(
            bad.write(),
            Err(Error::InvalidValue { position: 1, .. })
        ));
        assert!(matches!(
            bad.read(),
            Err(Error::InvalidValue { position: 1, .. })
        ));
        // and the failed guards left no borrow behind
        bad.set_item(1, true).unwrap();
        assert_eq!(bad.with(|v| v.to_vec()).unwrap(), vec![true, true]);
    });
}
