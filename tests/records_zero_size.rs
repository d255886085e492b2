//! Records and arrays of zero-size `bool` arrays (numpy sub-array fields with a 0 in their
//! shape): every safe access works and none panics (`to_vec` panicked in
//! `chunks_exact(0)` before).

mod common;

use common::{eval, namespace, run};
use pybuf::{Buffer1, Element, Error};
use pyo3::prelude::*;

/// numpy `np.dtype([('z', '?', (2, 0))])`: itemsize 0.
#[derive(Clone, Copy, Debug, PartialEq, pybuf::Element)]
#[repr(C)]
struct Z {
    z: [[bool; 0]; 2],
}

/// numpy `np.dtype([('z', '?', (2, 0)), ('b', '?')])`: itemsize 1.
#[derive(Clone, Copy, Debug, PartialEq, pybuf::Element)]
#[repr(C)]
struct ZB {
    z: [[bool; 0]; 2],
    b: bool,
}

#[test]
fn zero_size_bool_record_reads_and_writes() {
    const { assert!(!Z::ALWAYS_VALID && !Z::HAS_PADDING) };
    assert!(Z::is_valid(&[]));
    assert!(<[[bool; 0]; 2]>::is_valid(&[]));
    assert!(<[[bool; 0]; 0]>::is_valid(&[]));
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, "a = np.zeros(3, np.dtype([('z', '?', (2, 0))]))\n");
        let a = eval(&g, "a");
        let (format, itemsize): (String, usize) =
            eval(&g, "(memoryview(a).format, memoryview(a).itemsize)")
                .extract()
                .unwrap();
        assert_eq!((format.as_str(), itemsize), ("T{(2,0)?:z:}", 0));

        let buf = Buffer1::<Z>::get_mut(&a).unwrap();
        assert_eq!(buf.len(), 3);
        let empty = Z { z: [[], []] };
        assert_eq!(buf.to_vec().unwrap(), [empty; 3]);
        assert_eq!(buf.to_array().unwrap().len(), 3);
        assert_eq!(buf.item(2).unwrap(), empty);
        let mut out = [empty; 3];
        buf.copy_to_slice(&mut out).unwrap();
        assert_eq!(buf.read().unwrap().view().len(), 3);
        assert_eq!(buf.with(|v| v.len()).unwrap(), 3);
        buf.set_item(1, empty).unwrap();
        buf.copy_from_slice(&[empty; 3]).unwrap();
        buf.with_mut(|mut v| v[0] = empty).unwrap();
        assert_eq!(buf.write().unwrap().as_slice_mut().unwrap().len(), 3);
        let bytes: Vec<u8> = eval(&g, "a.tobytes()").extract().unwrap();
        assert!(bytes.is_empty());
    });
}

#[test]
fn zero_size_field_next_to_a_bool_is_validated() {
    Python::attach(|py| {
        let g = namespace(py);
        run(
            py,
            &g,
            "a = np.ones(3, np.dtype([('z', '?', (2, 0)), ('b', '?')]))\n\
             a.view(np.uint8)[1] = 2\n",
        );
        let a = eval(&g, "a");
        let buf = Buffer1::<ZB>::get(&a).unwrap();
        let err = buf.to_vec().unwrap_err();
        assert!(
            matches!(&err, Error::InvalidValue { position: 1, bytes, .. } if bytes == &[2]),
            "{err:?}"
        );
        assert!(matches!(buf.read(), Err(Error::InvalidValue { .. })));
        assert_eq!(
            buf.item(0).unwrap(),
            ZB {
                z: [[], []],
                b: true
            }
        );
        run(py, &g, "a.view(np.uint8)[1] = 0\n");
        let b: Vec<bool> = eval(&g, "a['b'].tolist()").extract().unwrap();
        let got: Vec<bool> = buf.to_vec().unwrap().iter().map(|r| r.b).collect();
        assert_eq!(got, b);
    });
}
