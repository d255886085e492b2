//! `pybuf::Bool`: numpy bool masks with any byte, and guards held while Python code writes the
//! memory on the same thread (issue 12, point 5). Runs under valgrind in CI.

mod common;

use common::{eval, namespace, run};
use pybuf::{export, Bool, Buffer1, Buffer2, Error};
use pyo3::prelude::*;

/// numpy's truth value of every item: `[bool(v) for v in a]`.
fn numpy_truth(g: &Bound<'_, pyo3::types::PyDict>, expr: &str) -> Vec<bool> {
    eval(g, &format!("[bool(v) for v in ({expr}).ravel()]"))
        .extract()
        .unwrap()
}

#[test]
fn reads_every_byte_as_numpy_does() {
    Python::attach(|py| {
        let g = namespace(py);
        run(
            py,
            &g,
            "a = np.frombuffer(bytes([0, 1, 2, 255, 0, 128]), dtype=bool).reshape(2, 3)",
        );
        let a = eval(&g, "a");
        // Rust's bool refuses the bytes 2, 255 and 128
        assert!(matches!(
            pybuf::BufferD::<bool>::get(&a).unwrap().to_vec(),
            Err(Error::InvalidValue { .. })
        ));
        let buf = Buffer2::<Bool>::get(&a).unwrap();
        let expected = numpy_truth(&g, "a");
        let copied: Vec<bool> = buf.to_vec().unwrap().into_iter().map(bool::from).collect();
        assert_eq!(copied, expected);
        let guard = buf.read().unwrap();
        let viewed: Vec<bool> = guard.view().iter().map(|b| b.get()).collect();
        assert_eq!(viewed, expected);
        // the bytes are kept as they are
        let bytes: Vec<u8> = guard
            .as_slice()
            .unwrap()
            .iter()
            .map(|b| b.to_byte())
            .collect();
        assert_eq!(bytes, [0, 1, 2, 255, 0, 128]);
        assert_eq!(
            eval(&g, "int(np.count_nonzero(a))")
                .extract::<usize>()
                .unwrap(),
            guard.view().iter().filter(|b| b.get()).count()
        );
    });
}

#[test]
fn accepted_wherever_bool_is() {
    Python::attach(|py| {
        let g = namespace(py);
        for expr in [
            "np.array([True, False, True])",
            "(ctypes.c_bool * 3)(True, False, True)",
            "memoryview(bytes([1, 0, 1])).cast('?')",
            "_testbuffer.ndarray([True, False, True], shape=[3], format='?')",
            "_testbuffer.ndarray([True, False, True], shape=[3], format='<?')",
        ] {
            let x = eval(&g, expr);
            let buf = Buffer1::<Bool>::get(&x).unwrap_or_else(|e| panic!("{expr}: {e}"));
            let values: Vec<bool> = buf.to_vec().unwrap().into_iter().map(bool::from).collect();
            let expected: Vec<bool> = eval(
                &g,
                &format!("[b != 0 for b in memoryview({expr}).tobytes()]"),
            )
            .extract()
            .unwrap();
            assert_eq!(values, expected, "{expr}");
        }
        // other formats are refused, as for bool
        let err = Buffer1::<Bool>::get(&eval(&g, "np.zeros(3, np.uint8)")).unwrap_err();
        assert!(matches!(err, Error::ElementType { .. }), "{err}");
    });
}

#[test]
fn writes_store_zero_or_one() {
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, "m = np.zeros(4, dtype=bool)");
        let buf = Buffer1::<Bool>::get_mut(&eval(&g, "m")).unwrap();
        buf.copy_from_slice(&[true.into(), false.into(), Bool::TRUE, Bool::new(true)])
            .unwrap();
        buf.with_mut(|mut v| v[1] = !v[1]).unwrap();
        assert_eq!(
            eval(&g, "m.view(np.uint8).tolist()")
                .extract::<Vec<u8>>()
                .unwrap(),
            [1, 1, 1, 1]
        );
        assert_eq!(
            eval(&g, "m.tolist()").extract::<Vec<bool>>().unwrap(),
            [true; 4]
        );
    });
}

/// Issue 12.5: `Buffer1::<bool>` under a guard while `py.run` writes a 2 made a live `&[bool]`
/// hold an invalid value. With `Bool`, a view taken after the Python code ran reads what
/// numpy reads (and valgrind sees nothing).
#[test]
fn guard_held_while_python_writes_on_the_same_thread() {
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, "a = np.array([True, False, True])");
        let buf = Buffer1::<Bool>::get(&eval(&g, "a")).unwrap();
        let guard = buf.read().unwrap();
        assert!(guard.view()[0].get());
        // Python code running while the guard lives (no view of it is in use meanwhile)
        run(py, &g, "a.view(np.uint8)[0] = 2\na.view(np.uint8)[1] = 255");
        let view = guard.view();
        let after: Vec<bool> = view.iter().map(|b| b.get()).collect();
        assert_eq!(after, numpy_truth(&g, "a"));
        assert_eq!(after, [true, true, true]);
        assert_eq!(view[0].to_byte(), 2);
        assert_eq!(view[1].to_byte(), 255);
        // branching on the values takes the arm numpy's truth value says
        let arms: Vec<&str> = view
            .iter()
            .map(|b| match b.get() {
                true => "true",
                false => "false",
            })
            .collect();
        assert_eq!(arms, ["true"; 3]);
        drop(guard);
        // the same memory read as bool is refused now, instead of holding a 2
        let as_bool = Buffer1::<bool>::get(&eval(&g, "a")).unwrap();
        assert!(matches!(
            as_bool.read(),
            Err(Error::InvalidValue { position: 0, .. })
        ));
    });
}

#[test]
fn element_kind_and_export() {
    Python::attach(|py| {
        let g = namespace(py);
        let any = pybuf::AnyBuffer::get(&eval(&g, "np.array([True, False])")).unwrap();
        assert_eq!(any.element_kind(), pybuf::ElementKind::Bool);
        let typed = any.typed::<Bool, ndarray::Ix1>().unwrap();
        assert_eq!(typed.to_vec().unwrap(), [Bool::TRUE, Bool::FALSE]);

        // exported with format '?', read by numpy as bool
        let exported = export::from_vec(py, vec![Bool::TRUE, Bool::FALSE, Bool::TRUE]).unwrap();
        g.set_item("e", exported).unwrap();
        assert_eq!(
            eval(&g, "memoryview(e).format")
                .extract::<String>()
                .unwrap(),
            "?"
        );
        assert_eq!(
            eval(&g, "str(np.asarray(e).dtype)")
                .extract::<String>()
                .unwrap(),
            "bool"
        );
        assert_eq!(
            eval(&g, "np.asarray(e).tolist()")
                .extract::<Vec<bool>>()
                .unwrap(),
            [true, false, true]
        );
    });
}
