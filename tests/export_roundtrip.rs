//! Round trip: a pybuf `Buffer` of an exported object reads the same memory, without a copy;
//! records with padding; freeing when the last reference and the last view are gone.

mod common;

use ndarray::{s, Array2, ShapeBuilder};
use pybuf::export;
use pybuf::format::{Field, ItemKind, ItemLayout, Scalar, ScalarKind};
use pybuf::{Buffer2, Element};
use pyo3::prelude::*;

#[test]
fn a_buffer_of_an_export_reads_the_same_memory() {
    Python::attach(|py| {
        let arr = Array2::from_shape_vec((4, 6).f(), (0..24).map(f64::from).collect())
            .unwrap()
            .slice_move(s![..;-1, 1..;2]);
        let expected = arr.clone();
        let x = export::from_array_mut(py, arr).unwrap();
        let buf = Buffer2::<f64>::get_mut(x.bind(py).as_any()).unwrap();
        // SAFETY: only compared as an address.
        assert_eq!(unsafe { buf.as_ptr() }, x.as_ptr(), "no copy");
        assert_eq!(buf.to_array().unwrap(), expected);
        buf.set_item([0, 0], -1.0).unwrap();
        assert_eq!(x.view_count(), 1);
        drop(buf);
        if !common::attached_drops_release_at_once(py) {
            // Stable ABI on CPython 3.11: the drop is queued, the view still counted.
            assert_eq!(x.view_count(), 1);
            assert!(pybuf::pending_releases() > 0);
            common::finish_attached_drops(py);
        }
        assert_eq!(x.view_count(), 0);
        let back = x.try_into_inner().unwrap();
        assert_eq!(back[[0, 0]], -1.0);
    });
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
struct Rec {
    a: i32,
    b: f64,
}

// SAFETY: `Rec` is `#[repr(C)]`: an i32 at 0, 4 padding bytes, an f64 at 8; size 16, align 8;
// every bit pattern of its fields is valid.
unsafe impl Element for Rec {
    fn layout() -> ItemLayout {
        ItemLayout {
            size: 16,
            align: 8,
            kind: ItemKind::Struct(vec![
                Field {
                    name: Some("a".into()),
                    offset: 0,
                    layout: ItemLayout::scalar(Scalar::native(ScalarKind::I32), 4),
                },
                Field {
                    name: Some("b".into()),
                    offset: 8,
                    layout: ItemLayout::scalar(Scalar::native(ScalarKind::F64), 8),
                },
            ]),
        }
    }
}

#[test]
fn records_export_with_field_names_and_zeroed_padding() {
    Python::attach(|py| {
        let x = export::from_vec(py, vec![Rec { a: 1, b: 2.5 }, Rec { a: -3, b: 1e10 }]).unwrap();
        let locals = pyo3::types::PyDict::new(py);
        locals.set_item("x", x.bind(py)).unwrap();
        locals.set_item("np", py.import("numpy").unwrap()).unwrap();
        py.run(
            c"a = np.asarray(x)\n\
              names = list(a.dtype.names)\n\
              offsets = [a.dtype.fields[n][1] for n in names]\n\
              itemsize = a.dtype.itemsize\n\
              values = [tuple(r) for r in a.tolist()]\n\
              raw = bytes(x)\n\
              del a\n",
            Some(&locals),
            None,
        )
        .unwrap();
        let get = |n: &str| locals.get_item(n).unwrap().unwrap();
        assert_eq!(get("names").extract::<Vec<String>>().unwrap(), ["a", "b"]);
        assert_eq!(get("offsets").extract::<Vec<usize>>().unwrap(), [0, 8]);
        assert_eq!(get("itemsize").extract::<usize>().unwrap(), 16);
        assert_eq!(
            get("values").extract::<Vec<(i32, f64)>>().unwrap(),
            [(1, 2.5), (-3, 1e10)]
        );
        let raw: Vec<u8> = get("raw").extract().unwrap();
        assert_eq!(raw.len(), 32);
        assert_eq!(&raw[4..8], &[0; 4], "padding of item 0 zeroed");
        assert_eq!(&raw[20..24], &[0; 4], "padding of item 1 zeroed");
    });
}

#[cfg(feature = "bytes")]
#[test]
fn bytes_are_freed_after_the_last_reference_and_view() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    struct Owner(Vec<u8>, Arc<AtomicBool>);
    impl AsRef<[u8]> for Owner {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }
    impl Drop for Owner {
        fn drop(&mut self) {
            self.1.store(true, Ordering::SeqCst);
        }
    }

    let freed = Arc::new(AtomicBool::new(false));
    Python::attach(|py| {
        let data = bytes::Bytes::from_owner(Owner(b"abc".to_vec(), freed.clone()));
        let x = export::from_bytes(py, data).unwrap();
        let mv = py
            .import("builtins")
            .unwrap()
            .getattr("memoryview")
            .unwrap()
            .call1((&x,))
            .unwrap();
        assert_eq!(
            mv.call_method0("tobytes")
                .unwrap()
                .extract::<Vec<u8>>()
                .unwrap(),
            b"abc"
        );
        drop(x); // the Rust handle is gone, Python's view keeps the data
        assert!(!freed.load(Ordering::SeqCst));
        mv.call_method0("release").unwrap();
        drop(mv);
        assert!(freed.load(Ordering::SeqCst), "freed with the last view");
    });
}
