//! Issue 4's guarantees, end to end through `Buffer` handles of real exporters: aliasing is
//! refused, interleaved views are not, guards work with the interpreter lock released.

mod common;

use common::{eval, namespace, run};
use pybuf::{Access, Buffer1, Buffer2, Error};
use pyo3::prelude::*;

#[test]
fn two_handles_of_one_bytearray_cannot_both_write() {
    Python::attach(|py| {
        let g = namespace(py);
        let b = eval(&g, "bytearray(16)");
        let first = Buffer1::<u8>::get_mut(&b).unwrap();
        let second = Buffer1::<u8>::get_mut(&b).unwrap();
        let guard = first.write().unwrap();
        let err = second.write().unwrap_err();
        assert!(matches!(
            err,
            Error::BorrowConflict {
                requested: Access::Exclusive,
                held: Access::Exclusive
            }
        ));
        assert_eq!(
            err.to_string(),
            "cannot take a write (exclusive) borrow: the memory is already under a live \
             write (exclusive) borrow"
        );
        assert_eq!(PyErr::from(err).get_type(py).name().unwrap(), "BufferError");
        // reads, copies and item access through the other handle conflict too
        assert!(matches!(second.read(), Err(Error::BorrowConflict { .. })));
        assert!(matches!(second.to_vec(), Err(Error::BorrowConflict { .. })));
        assert!(matches!(second.item(3), Err(Error::BorrowConflict { .. })));
        assert!(matches!(
            second.set_item(3, 1),
            Err(Error::BorrowConflict { .. })
        ));
        drop(guard);
        // after the first guard is gone, the second handle writes
        second.write().unwrap().as_slice_mut().unwrap()[0] = 7;
        assert_eq!(b.extract::<Vec<u8>>().unwrap()[0], 7);
    });
}

#[test]
fn shared_borrows_coexist_and_block_writers() {
    Python::attach(|py| {
        let g = namespace(py);
        let a = eval(&g, "np.arange(10.0)");
        let h1 = Buffer1::<f64>::get_mut(&a).unwrap();
        let h2 = Buffer1::<f64>::get_mut(&a).unwrap();
        let r1 = h1.read().unwrap();
        let r2 = h2.read().unwrap();
        assert_eq!(r1.view().sum(), r2.view().sum());
        assert_eq!(
            h2.to_vec().unwrap().len(),
            10,
            "copies are shared borrows too"
        );
        let err = h1.write().unwrap_err();
        assert!(matches!(
            err,
            Error::BorrowConflict {
                requested: Access::Exclusive,
                held: Access::Shared
            }
        ));
        assert!(matches!(
            h2.copy_from_slice(&[0.0; 10]),
            Err(Error::BorrowConflict { .. })
        ));
        drop((r1, r2));
        h1.copy_from_slice(&[1.0; 10]).unwrap();
    });
}

#[test]
fn interleaved_views_can_be_written_at_the_same_time() {
    Python::attach(|py| {
        let g = namespace(py);
        run(
            py,
            &g,
            "base = np.zeros(12)\neven = base[::2]\nodd = base[1::2]\nm = np.zeros((4, 4))\n",
        );
        let even = Buffer1::<f64>::get_mut(&eval(&g, "even")).unwrap();
        let odd = Buffer1::<f64>::get_mut(&eval(&g, "odd")).unwrap();
        let mut we = even.write().unwrap();
        let mut wo = odd.write().unwrap();
        we.view_mut().fill(1.0);
        wo.view_mut().fill(2.0);
        drop((we, wo));
        assert_eq!(
            eval(&g, "base.tolist()").extract::<Vec<f64>>().unwrap(),
            [1.0, 2.0].repeat(6)
        );
        // disjoint columns and rows of one matrix
        let c0 = Buffer1::<f64>::get_mut(&eval(&g, "m[:, 0]")).unwrap();
        let c3 = Buffer1::<f64>::get_mut(&eval(&g, "m[:, 3]")).unwrap();
        let r1 = Buffer2::<f64>::get_mut(&eval(&g, "m[1:3, 1:3]")).unwrap();
        let (_a, _b, _c) = (
            c0.write().unwrap(),
            c3.write().unwrap(),
            r1.write().unwrap(),
        );
        // ... but a column and a row that cross do conflict
        let row = Buffer1::<f64>::get_mut(&eval(&g, "m[2, :]")).unwrap();
        assert!(matches!(row.write(), Err(Error::BorrowConflict { .. })));
    });
}

#[test]
fn overlapping_numpy_slices_conflict_and_disjoint_ones_do_not() {
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, "x = np.arange(20.0)\n");
        let a = Buffer1::<f64>::get_mut(&eval(&g, "x[2:10]")).unwrap();
        let b = Buffer1::<f64>::get_mut(&eval(&g, "x[8:15]")).unwrap();
        let c = Buffer1::<f64>::get_mut(&eval(&g, "x[10:20]")).unwrap();
        let _wa = a.write().unwrap();
        assert!(matches!(b.read(), Err(Error::BorrowConflict { .. })));
        assert!(c.write().is_ok());
        // the same memory through another exporter (a memoryview of the numpy array)
        let m = Buffer1::<f64>::get(&eval(&g, "memoryview(x)[5:6]")).unwrap();
        assert!(matches!(m.read(), Err(Error::BorrowConflict { .. })));
    });
}

#[test]
fn broadcast_arrays_refuse_write() {
    Python::attach(|py| {
        let g = namespace(py);
        let w =
            Buffer2::<f64>::get_mut(&eval(&g, "as_strided(np.zeros(3), (5, 3), (0, 8))")).unwrap();
        assert!(matches!(w.write(), Err(Error::SelfOverlapping { .. })));
        let r = Buffer2::<f64>::get(&eval(&g, "np.broadcast_to(np.arange(3.0), (5, 3))")).unwrap();
        assert_eq!(r.read().unwrap().view().sum(), 15.0);
    });
}

#[test]
fn guards_work_with_the_interpreter_lock_released() {
    Python::attach(|py| {
        let g = namespace(py);
        run(
            py,
            &g,
            "m = np.arange(4000.0).reshape(40, 100)\nout = np.zeros(40)\n",
        );
        let m = Buffer2::<f64>::get(&eval(&g, "m")).unwrap();
        let out = Buffer1::<f64>::get_mut(&eval(&g, "out")).unwrap();
        py.detach(|| {
            let input = m.read().unwrap();
            let mut output = out.write().unwrap();
            let view = input.view();
            let mut sums = output.view_mut();
            // four threads, each summing its own rows into its own part of the output
            std::thread::scope(|s| {
                for (rows, mut dst) in view
                    .axis_chunks_iter(ndarray::Axis(0), 10)
                    .zip(sums.axis_chunks_iter_mut(ndarray::Axis(0), 10))
                {
                    s.spawn(move || {
                        for (row, d) in rows.rows().into_iter().zip(dst.iter_mut()) {
                            *d = row.sum();
                        }
                    });
                }
            });
        });
        let expected: Vec<f64> = eval(&g, "m.sum(axis=1).tolist()").extract().unwrap();
        assert_eq!(
            eval(&g, "out.tolist()").extract::<Vec<f64>>().unwrap(),
            expected
        );
    });
}
