//! The numpy fast source (`pybuf::Source::Numpy`) gives exactly what the buffer protocol gives
//! for every dtype and layout it takes, and leaves everything else to the buffer protocol.
//!
//! Each case acquires the same array twice: with `Buffer::get(a)` and through the buffer
//! protocol only (`Buffer::from_buffer_protocol(a)`), and compares the source, shape, strides, format, read-only flag, contiguity,
//! values, view availability and errors, for read and writable requests.

mod common;

use common::{eval, namespace, run};
use ndarray::IxDyn;
use pybuf::{Buffer, Buffer1, Element, Source};
use pyo3::prelude::*;
use pyo3::types::PyDict;

const CASES: &str = r#"
def _base(dt, *shape):
    n = int(np.prod(shape))
    v = np.arange(n) % 3 == 1 if np.dtype(dt) == np.bool_ else np.arange(n) * 3 + 1
    return v.astype(dt).reshape(shape)

def _readonly(a):
    a.flags.writeable = False
    return a

def _misaligned(dt, n):
    size = np.dtype(dt).itemsize
    return np.frombuffer(bytearray(n * size + 1), dt, offset=1)

def _swapped(dt, n):
    a = _base(dt, n)
    return a.byteswap().view(a.dtype.newbyteorder())

def cases(dt):
    return [
        ("C 3-D", _base(dt, 2, 3, 4)),
        ("F 3-D", np.asfortranarray(_base(dt, 2, 3, 4))),
        ("steps", _base(dt, 4, 6)[::2, ::-3]),
        ("reversed", _base(dt, 24)[::-1]),
        ("transposed", _base(dt, 4, 6).T),
        ("0-d", _base(dt, 1).reshape(())),
        ("row", _base(dt, 1, 6)),
        ("strided row", _base(dt, 1, 6)[:, ::2]),
        ("empty", np.zeros((3, 0, 2), dt)),
        ("broadcast_to", np.broadcast_to(_base(dt, 4), (3, 4))),
        ("broadcast_arrays", np.broadcast_arrays(_base(dt, 4), _base(dt, 3, 1))[0]),
        ("read-only", _readonly(_base(dt, 8))),
        ("misaligned", _misaligned(dt, 5)),
        ("byte-swapped", _swapped(dt, 5)),
    ]

def direct(a, writable):
    # numpy's export rewrites the strides of contiguous arrays with an axis of length < 2:
    # those go through the buffer protocol
    canonical = not ((a.flags.c_contiguous or a.flags.f_contiguous) and min(a.shape, default=2) < 2)
    return (type(a) is np.ndarray and a.flags.aligned and a.dtype.isnative and canonical
            and (not writable or (a.flags.writeable and not _warns(a))))

def _warns(a):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            a.flags.writeable = True
            return False
        except Exception:
            return True
"#;

/// Compares every case of `dtype` read as `T`; returns how many acquisitions took the numpy
/// source.
fn compare<T: Element + PartialEq + std::fmt::Debug>(g: &Bound<'_, PyDict>, dtype: &str) -> usize {
    let mut direct_count = 0;
    let cases = eval(g, &format!("cases({dtype})"));
    for case in cases.try_iter().unwrap() {
        let (name, a): (String, Bound<'_, PyAny>) = case.unwrap().extract().unwrap();
        for writable in [false, true] {
            let what = format!("{dtype} {name} writable={writable}");
            let direct: bool = g
                .get_item("direct")
                .unwrap()
                .unwrap()
                .call1((&a, writable))
                .unwrap()
                .extract()
                .unwrap();
            let (x, y) = if writable {
                (
                    Buffer::<T, IxDyn>::get_mut(&a),
                    Buffer::<T, IxDyn>::from_buffer_protocol_mut(&a),
                )
            } else {
                (
                    Buffer::<T, IxDyn>::get(&a),
                    Buffer::<T, IxDyn>::from_buffer_protocol(&a),
                )
            };
            match (x, y) {
                (Ok(x), Ok(y)) => {
                    let expected = if direct {
                        Source::Numpy
                    } else {
                        Source::BufferProtocol
                    };
                    assert_eq!(x.source(), expected, "{what}");
                    direct_count += usize::from(direct);
                    assert_eq!(y.source(), Source::BufferProtocol, "{what}");
                    assert_eq!(x.shape(), y.shape(), "{what}");
                    assert_eq!(x.strides(), y.strides(), "{what}");
                    assert_eq!(x.format(), y.format(), "{what}");
                    assert_eq!(x.is_readonly(), y.is_readonly(), "{what}");
                    assert_eq!(x.itemsize(), y.itemsize(), "{what}");
                    assert_eq!(x.is_c_contiguous(), y.is_c_contiguous(), "{what}");
                    assert_eq!(x.is_f_contiguous(), y.is_f_contiguous(), "{what}");
                    assert_eq!(x.to_vec().unwrap(), y.to_vec().unwrap(), "{what}");
                    assert_eq!(
                        x.read().map(drop).map_err(|e| e.to_string()),
                        y.read().map(drop).map_err(|e| e.to_string()),
                        "{what}"
                    );
                }
                (Err(e), Err(f)) => {
                    assert_eq!(e.to_string(), f.to_string(), "{what}");
                }
                (x, y) => panic!("{what}: {x:?} vs {y:?}"),
            }
        }
    }
    direct_count
}

#[test]
fn every_dtype_and_layout_reads_as_through_the_buffer_protocol() {
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, CASES);
        assert!(compare::<bool>(&g, "'?'") >= 12, "'?'");
        assert!(compare::<i8>(&g, "'i1'") >= 12, "'i1'");
        assert!(compare::<u8>(&g, "'u1'") >= 12, "'u1'");
        assert!(compare::<i16>(&g, "'i2'") >= 12, "'i2'");
        assert!(compare::<u16>(&g, "'u2'") >= 12, "'u2'");
        assert!(compare::<i32>(&g, "'i4'") >= 12, "'i4'");
        assert!(compare::<u32>(&g, "'u4'") >= 12, "'u4'");
        assert!(compare::<i64>(&g, "'i8'") >= 12, "'i8'");
        assert!(compare::<i64>(&g, "np.longlong") >= 12, "np.longlong");
        assert!(compare::<u64>(&g, "'u8'") >= 12, "'u8'");
        assert!(compare::<u64>(&g, "np.ulonglong") >= 12, "np.ulonglong");
        assert!(compare::<half::f16>(&g, "'f2'") >= 12, "'f2'");
        assert!(compare::<f32>(&g, "'f4'") >= 12, "'f4'");
        assert!(compare::<f64>(&g, "'f8'") >= 12, "'f8'");
        assert!(
            compare::<num_complex::Complex<f32>>(&g, "'c8'") >= 12,
            "'c8'"
        );
        assert!(
            compare::<num_complex::Complex<f64>>(&g, "'c16'") >= 12,
            "'c16'"
        );
        // a dtype that is not the element type: the buffer protocol's error, word for word
        assert_eq!(compare::<f32>(&g, "'f8'"), 0);
        assert_eq!(compare::<u8>(&g, "'i1'"), 0);
    });
}

#[test]
fn subclasses_and_other_dtypes_go_through_the_buffer_protocol() {
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, "class Sub(np.ndarray): pass\n");
        let sub = eval(&g, "np.arange(4.0).view(Sub)");
        assert_eq!(
            Buffer1::<f64>::get(&sub).unwrap().source(),
            Source::BufferProtocol
        );
        let rec = eval(&g, "np.zeros(3, dtype=[('a', 'i4'), ('b', 'i4')])");
        let any = pybuf::AnyBuffer::get(&rec).unwrap();
        assert_eq!(any.source(), Source::BufferProtocol);
        let plain = eval(&g, "np.arange(4.0)");
        assert_eq!(Buffer1::<f64>::get(&plain).unwrap().source(), Source::Numpy);
    });
}

#[test]
fn the_handle_keeps_the_array_and_its_own_layout() {
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, "a = np.arange(12.0)\n");
        let buf = Buffer::<f64, IxDyn>::get(&eval(&g, "a")).unwrap();
        assert_eq!(buf.source(), Source::Numpy);
        let before = eval(&g, "sys.getrefcount(a)").extract::<isize>().unwrap();
        // reshaping in place replaces numpy's shape arrays; the handle copied its layout
        run(py, &g, "a.shape = (3, 4)\n");
        assert_eq!(buf.shape(), [12]);
        // the handle holds a reference: the data stays alive without `a`
        run(py, &g, "del a\nimport gc; gc.collect()\n");
        assert_eq!(
            buf.to_vec().unwrap(),
            (0..12).map(f64::from).collect::<Vec<_>>()
        );
        let b = Buffer1::<f64>::get(&eval(&g, "np.arange(3.0)")).unwrap();
        let obj = b.obj(py);
        let count = eval(&g, "sys.getrefcount")
            .call1((&obj,))
            .unwrap()
            .extract::<isize>()
            .unwrap();
        drop(b);
        common::finish_attached_drops(py);
        let after = eval(&g, "sys.getrefcount")
            .call1((&obj,))
            .unwrap()
            .extract::<isize>()
            .unwrap();
        assert_eq!(
            after,
            count - 1,
            "dropping the handle gives its reference back"
        );
        assert!(before >= 2);
        assert_eq!(pybuf::pending_releases(), 0);
    });
}
