//! The array interface of exports and numpy results from Rust: what keeps the memory while a
//! numpy array built from `__array_interface__` lives, `Exported::to_numpy`, and the error
//! when numpy is missing.

mod common;

use common::{eval, namespace, run};
use ndarray::{s, Array2};
use pybuf::export;
use pybuf::Error;
use pyo3::prelude::*;

const INTERFACE_ONLY: &str =
    "class Interface:\n    def __init__(self, d):\n        self.__array_interface__ = d\n";

fn iota(n: usize) -> Vec<f64> {
    (0..n).map(|i| i as f64).collect()
}

#[test]
fn rust_cannot_take_the_data_while_an_interface_array_lives() {
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, INTERFACE_ONLY);
        let x = export::from_vec_mut(py, iota(5)).unwrap();
        g.set_item("x", &x).unwrap();
        // numpy keeps a reference to the dict's `data` object (the pin), not to `x`
        run(
            py,
            &g,
            "a = np.asarray(Interface(x.__array_interface__))\na[4] = 40.0",
        );
        assert_eq!(x.view_count(), 1);
        assert!(matches!(
            x.try_into_inner(),
            Err(Error::ViewsAlive { count: 1 })
        ));
        // nor may Rust read a writable export that a consumer can write
        assert!(matches!(
            x.with_inner(|_| ()),
            Err(Error::BorrowConflict { .. })
        ));
        // dropping every other reference to `x` changes nothing: the pin holds the memory
        g.del_item("x").unwrap();
        assert_eq!(
            eval(&g, "a.tolist()").extract::<Vec<f64>>().unwrap(),
            [0.0, 1.0, 2.0, 3.0, 40.0]
        );
        run(py, &g, "del a");
        assert_eq!(x.view_count(), 0);
        assert_eq!(x.try_into_inner().unwrap(), [0.0, 1.0, 2.0, 3.0, 40.0]);
    });
}

#[test]
fn an_unused_interface_dict_pins_until_it_is_dropped() {
    Python::attach(|py| {
        let x = export::from_vec(py, iota(3)).unwrap();
        let dict = x.bind(py).getattr("__array_interface__").unwrap();
        assert_eq!(x.view_count(), 1);
        assert!(x.try_into_inner().is_err());
        drop(dict);
        assert_eq!(x.view_count(), 0);
        assert!(x.try_into_inner().is_ok());
        // taken: no more interface
        let err = x.bind(py).getattr("__array_interface__").unwrap_err();
        assert_eq!(err.value(py).to_string(), Error::ExportTaken.to_string());
    });
}

#[test]
fn hidden_bools_are_never_writable_through_the_pin() {
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, INTERFACE_ONLY);
        let bools = Array2::from_shape_fn((4, 4), |(i, j)| (i + j) % 2 == 0);
        // every other row: the rows in between are hidden from Python but inside the span
        let x = export::from_array_mut(py, bools.slice_move(s![..;2, ..])).unwrap();
        g.set_item("x", &x).unwrap();
        run(
            py,
            &g,
            "d = x.__array_interface__\n\
             a = np.asarray(Interface(d))\n\
             pin_readonly = memoryview(d['data']).readonly\n\
             ok = a.tolist() == np.asarray(x).tolist() and not a.flags.writeable\n\
             del a, d\n",
        );
        assert!(eval(&g, "pin_readonly and ok").extract::<bool>().unwrap());
        // floats have no invalid values: writable through the pin even with hidden elements
        let f = export::from_array_mut(
            py,
            Array2::from_shape_vec((4, 4), iota(16))
                .unwrap()
                .slice_move(s![..;2, ..]),
        )
        .unwrap();
        g.set_item("f", &f).unwrap();
        run(
            py,
            &g,
            "a = np.asarray(Interface(f.__array_interface__))\na[1, 1] = -5.0\ndel a",
        );
        assert_eq!(
            f.try_into_inner().unwrap().into_raw_vec_and_offset().0[9],
            -5.0
        );
    });
}

#[test]
fn to_numpy_shares_the_memory() {
    Python::attach(|py| {
        let g = namespace(py);
        let x =
            export::from_array_mut(py, Array2::from_shape_vec((2, 3), iota(6)).unwrap()).unwrap();
        let a = x.to_numpy(py).unwrap();
        g.set_item("a", &a).unwrap();
        g.set_item("x", &x).unwrap();
        assert!(eval(
            &g,
            "type(a) is np.ndarray and a.flags.writeable and a.shape == (2, 3)"
        )
        .extract::<bool>()
        .unwrap());
        assert!(eval(&g, "np.shares_memory(a, x)")
            .extract::<bool>()
            .unwrap());
        run(py, &g, "a[1, 2] = 50.0");
        drop(a);
        g.del_item("a").unwrap();
        assert_eq!(x.view_count(), 0);
        assert_eq!(x.try_into_inner().unwrap()[[1, 2]], 50.0);

        let r = export::from_vec(py, vec![1u16, 2, 3]).unwrap();
        let a = r.to_numpy(py).unwrap();
        assert!(!a
            .getattr("flags")
            .unwrap()
            .getattr("writeable")
            .unwrap()
            .extract::<bool>()
            .unwrap());
        assert_eq!(
            a.getattr("dtype").unwrap().str().unwrap().to_cow().unwrap(),
            "uint16"
        );
    });
}

#[test]
fn to_numpy_without_numpy_is_a_clear_error() {
    Python::attach(|py| {
        let g = namespace(py);
        let x = export::from_vec(py, iota(2)).unwrap();
        // what a missing numpy looks like to `import numpy`
        run(
            py,
            &g,
            "saved = sys.modules['numpy']\nsys.modules['numpy'] = None",
        );
        let err = x.to_numpy(py).unwrap_err();
        run(py, &g, "sys.modules['numpy'] = saved");
        assert!(matches!(err, Error::NumpyUnavailable { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.starts_with("expected numpy to be importable (to return a numpy.ndarray), got")
                && message.contains("numpy"),
            "{message}"
        );
        let py_err = PyErr::from(err);
        assert!(py_err.is_instance_of::<pyo3::exceptions::PyImportError>(py));
        assert!(py_err
            .cause(py)
            .is_some_and(|c| c.is_instance_of::<pyo3::exceptions::PyImportError>(py)));
        assert!(x.to_numpy(py).is_ok(), "numpy is back");
    });
}

#[derive(Clone, Copy, pybuf::Element)]
#[repr(C)]
struct Particle {
    id: u32,
    pos: [f32; 3],
    alive: bool,
}

#[test]
fn the_pin_shows_no_uninitialized_padding_even_of_hidden_records() {
    const N: usize = 6;
    let size = std::mem::size_of::<Particle>();
    assert_eq!(size, 20); // 3 bytes of padding after `alive`
    let mut records: Vec<Particle> = Vec::with_capacity(N);
    let base = records.as_mut_ptr();
    // SAFETY: (test) the capacity holds N records; every byte is set to 0xAA first (so the
    // padding holds a recognizable pattern instead of being uninitialized), then every field
    // is written with a valid value before `set_len`.
    unsafe {
        std::ptr::write_bytes(base.cast::<u8>(), 0xAA, N * size);
        for i in 0..N {
            let p = base.add(i);
            std::ptr::addr_of_mut!((*p).id).write(i as u32);
            std::ptr::addr_of_mut!((*p).pos).write([i as f32; 3]);
            std::ptr::addr_of_mut!((*p).alive).write(i % 2 == 0);
        }
        records.set_len(N);
    }
    Python::attach(|py| {
        let g = namespace(py);
        // every other record: records 1, 3, 5 are hidden but inside the pin's span
        let strided = ndarray::Array1::from_vec(records).slice_move(s![..;2]);
        let x = export::from_array(py, strided).unwrap();
        g.set_item("x", &x).unwrap();
        let raw: Vec<u8> = eval(&g, "bytes(memoryview(x.__array_interface__['data']))")
            .extract()
            .unwrap();
        assert_eq!(raw.len(), (N - 1) * size);
        for (i, record) in raw.chunks(size).enumerate() {
            assert_eq!(&record[17..20], &[0, 0, 0], "padding of record {i}");
            assert_eq!(record[0] as usize, i, "record {i}");
        }
    });
}
