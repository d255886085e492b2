//! Records, the easy way (issue 15, point 3): numpy's packed dtypes in every slice, sizes in
//! mismatch messages, and records reinterpreted from raw bytes.

mod common;

use common::{eval, namespace, run};
use pybuf::{AnyBuffer, Buffer1, Error};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// numpy's `np.dtype([...])` (align=False) of the issue: 17-byte items.
#[derive(Clone, Copy, Debug, PartialEq, pybuf::Element)]
#[repr(C, packed)]
struct Frame {
    frame: u32,
    score: f64,
    x: u16,
    y: u16,
    label: u8,
}

/// The same fields with C alignment (`align=True`, 24 bytes).
#[derive(Clone, Copy, Debug, PartialEq, pybuf::Element)]
#[repr(C)]
struct AlignedFrame {
    frame: u32,
    score: f64,
    x: u16,
    y: u16,
    label: u8,
}

const FRAMES: &str = "\
dt = np.dtype([('frame', 'u4'), ('score', 'f8'), ('x', 'u2'), ('y', 'u2'), ('label', 'u1')])
base = np.zeros(9, dt)
base['frame'] = np.arange(9) * 1000 + 7
base['score'] = np.linspace(-1, 1, 9)
base['x'] = np.arange(9) * 3
base['y'] = 65535 - np.arange(9)
base['label'] = np.arange(9) % 4
";

/// numpy's records of `expr` as tuples.
fn numpy_frames(g: &Bound<'_, PyDict>, expr: &str) -> Vec<(u32, f64, u16, u16, u8)> {
    eval(
        g,
        &format!("[tuple(r) for r in np.atleast_1d({expr}).tolist()]"),
    )
    .extract()
    .unwrap()
}

fn fields(f: &Frame) -> (u32, f64, u16, u16, u8) {
    (f.frame, f.score, f.x, f.y, f.label)
}

/// Issue 15.3a: numpy writes native-mode formats for 0 or 1 records and strided views of a
/// packed dtype (`T{I:frame:=d:score:@H:x:H:y:B:label:}`, 20 bytes by the native rules, for
/// 17-byte items). pybuf used to pad to 20 and refuse `base[:1]`, `base[:0]` and `base[::4]`
/// with an item-size error while reading `base[:2]`.
#[test]
fn packed_numpy_records_in_every_slice() {
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, FRAMES);
        for expr in [
            "base",
            "base[:2]",
            "base[:1]",
            "base[:0]",
            "base[::4]",
            "base[::-3]",
            "base[5:6]",
            "base.reshape(3, 3)[:, 1]",
        ] {
            let x = eval(&g, expr);
            let format: String = eval(&g, &format!("memoryview({expr}).format"))
                .extract()
                .unwrap();
            let buf =
                Buffer1::<Frame>::get(&x).unwrap_or_else(|e| panic!("{expr} ('{format}'): {e}"));
            assert_eq!(buf.itemsize(), 17);
            let got: Vec<_> = buf.to_vec().unwrap().iter().map(fields).collect();
            assert_eq!(got, numpy_frames(&g, expr), "{expr} ('{format}')");
            // packed records have alignment 1: views work for every slice
            let viewed: Vec<_> = buf.with(|v| v.iter().map(fields).collect()).unwrap();
            assert_eq!(viewed, got, "{expr}");
            // the parsed item is fitted to the exporter's itemsize
            let any = AnyBuffer::get(&x).unwrap();
            assert_eq!(any.item_layout().unwrap().size, 17, "{expr} ('{format}')");
        }
        // the format that needed fitting is the one the issue names
        assert_eq!(
            eval(&g, "memoryview(base[:1]).format")
                .extract::<String>()
                .unwrap(),
            "T{I:frame:=d:score:@H:x:H:y:B:label:}"
        );
        // writes go through the same acquisition
        let one = Buffer1::<Frame>::get_mut(&eval(&g, "base[3:4]")).unwrap();
        one.set_item(
            0,
            Frame {
                frame: 1,
                score: 2.5,
                x: 3,
                y: 4,
                label: 5,
            },
        )
        .unwrap();
        assert_eq!(numpy_frames(&g, "base[3]"), [(1, 2.5, 3, 4, 5)]);
    });
}

#[test]
fn fields_that_do_not_fit_are_still_refused() {
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, FRAMES);
        // numpy's record scalar describes its fields at native offsets (score at 8, label at
        // 20) in a 17-byte item: the fields do not fit, the format is not fitted, and the
        // mismatch is reported with both sizes
        let err = pybuf::Buffer0::<Frame>::get(&eval(&g, "base[0]")).unwrap_err();
        assert!(
            matches!(err, Error::ElementType { .. } | Error::ItemSize { .. }),
            "{err}"
        );
        let msg = err.to_string();
        assert!(msg.contains("itemsize 17"), "{msg}");
    });
}

/// Issue 15.3b: record mismatches name both item sizes; ctypes `_pack_` arrays (format 'B')
/// report their itemsize.
#[test]
fn record_mismatch_messages_give_sizes() {
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, FRAMES);
        run(
            py,
            &g,
            "aligned = np.zeros(3, np.dtype(dt.descr, align=True))",
        );
        let err = Buffer1::<Frame>::get(&eval(&g, "aligned")).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::ElementType { .. }), "{msg}");
        assert!(
            msg.starts_with(
                "expected a 1-D buffer of Frame (format 'T{<I:frame:<d:score:<H:x:<H:y:B:label:}', \
                 itemsize 17), got a 1-D buffer of struct {frame: uint32 @0, score: float64 @8, "
            ),
            "{msg}"
        );
        assert!(msg.contains("itemsize 24) with shape (3,)"), "{msg}");
        assert_eq!(eval(&g, "aligned.itemsize").extract::<usize>().unwrap(), 24);

        // and the other way round
        let err = Buffer1::<AlignedFrame>::get(&eval(&g, "base")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("itemsize 24), got"), "{msg}");
        assert!(msg.contains("itemsize 17) with shape (9,)"), "{msg}");

        // scalar mismatches stay short: no sizes
        let err = Buffer1::<f64>::get(&eval(&g, "np.zeros(2, np.float32)")).unwrap_err();
        assert!(!err.to_string().contains("itemsize"), "{err}");
        // ctypes describes a _pack_ structure as 'B' (before CPython 3.12) with the structure's itemsize
        run(
            py,
            &g,
            "class P(ctypes.Structure):\n    _pack_ = 1\n    _fields_ = [('frame', ctypes.c_uint32), ('score', ctypes.c_double), ('x', ctypes.c_uint16), ('y', ctypes.c_uint16), ('label', ctypes.c_uint8)]\np = (P * 2)()\np[1].frame = 9\np[1].score = -0.5\np[1].label = 3\n",
        );
        let m_itemsize: usize = eval(&g, "memoryview(p).itemsize").extract().unwrap();
        let m_format: String = eval(&g, "memoryview(p).format").extract().unwrap();
        if m_format != "B" {
            // CPython 3.12+ describes _pack_ structures field by field: they read as records
            assert_eq!(Buffer1::<Frame>::get(&eval(&g, "p")).unwrap().len(), 2);
            return;
        }
        let err = Buffer1::<Frame>::get(&eval(&g, "p")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!(
                "got a 1-D buffer of uint8 (format '{m_format}', itemsize {m_itemsize})"
            )),
            "{msg}"
        );
        assert!(msg.contains("Frame (format '"), "{msg}");
        assert!(msg.contains("itemsize 17)"), "{msg}");
        assert!(msg.ends_with("from 'P_Array_2'"), "{msg}");
    });
}

/// Issue 15.3c: records read from raw bytes, as `np.frombuffer(data, dtype)` does.
#[test]
fn reinterpret_bytes_as_records() {
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, FRAMES);
        run(
            py,
            &g,
            "raw = base.tobytes()\n\
             mm = mmap.mmap(-1, len(raw)); mm[:] = raw\n\
             shifted = memoryview(b'x' + raw)[1:]\n",
        );
        for expr in [
            "raw",
            "bytearray(raw)",
            "mm",
            "shifted",
            "memoryview(raw).cast('B', (9, 17))",
            "np.frombuffer(raw, np.uint8)",
        ] {
            let records = AnyBuffer::get(&eval(&g, expr))
                .unwrap()
                .reinterpret::<Frame>()
                .unwrap_or_else(|e| panic!("{expr}: {e}"));
            assert_eq!(records.len(), 9, "{expr}");
            let items = records.read_or_copy().unwrap();
            let got: Vec<_> = items.view().iter().map(fields).collect();
            assert_eq!(
                got,
                numpy_frames(&g, &format!("np.frombuffer({expr}, dt)")),
                "{expr}"
            );
        }

        // aligned records at an odd address: no view, a copy
        run(py, &g, "araw = np.zeros(4, np.dtype(dt.descr, align=True)); araw['score'] = [1, 2, 3, 4]\nodd = memoryview(b'x' + araw.tobytes())[1:]");
        let odd = AnyBuffer::get(&eval(&g, "odd"))
            .unwrap()
            .reinterpret::<AlignedFrame>()
            .unwrap();
        assert!(matches!(odd.read(), Err(Error::Misaligned { .. })));
        let items = odd.read_or_copy().unwrap();
        assert!(!items.is_view());
        let scores: Vec<f64> = items.view().iter().map(|r| r.score).collect();
        assert_eq!(scores, [1.0, 2.0, 3.0, 4.0]);

        // writable memory: records written through the reinterpretation land in the bytes
        let buf = AnyBuffer::get_mut(&eval(&g, "mm"))
            .unwrap()
            .reinterpret::<Frame>()
            .unwrap();
        let mut first = buf.item(0).unwrap();
        first.label = 99;
        buf.set_item(0, first).unwrap();
        assert_eq!(numpy_frames(&g, "np.frombuffer(mm, dt)[0]")[0].4, 99);
        // read-only memory stays read-only
        let ro = AnyBuffer::get(&eval(&g, "raw"))
            .unwrap()
            .reinterpret::<Frame>()
            .unwrap();
        assert!(matches!(ro.set_item(0, first), Err(Error::ReadOnly { .. })));

        // ctypes _pack_ arrays: their format does not describe the records, their bytes do
        run(
            py,
            &g,
            "class P(ctypes.Structure):\n    _pack_ = 1\n    _fields_ = [('frame', ctypes.c_uint32), ('score', ctypes.c_double), ('x', ctypes.c_uint16), ('y', ctypes.c_uint16), ('label', ctypes.c_uint8)]\np = (P * 2)()\np[1].frame = 9\np[1].score = -0.5\np[1].label = 3\n",
        );
        let p = AnyBuffer::get(&eval(&g, "p"))
            .unwrap()
            .reinterpret::<Frame>()
            .unwrap();
        let got: Vec<_> = p.to_vec().unwrap().iter().map(fields).collect();
        assert_eq!(got, numpy_frames(&g, "np.frombuffer(bytes(p), dt)"));
    });
}

#[test]
fn reinterpret_checks_contiguity_length_and_values() {
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, FRAMES);
        // a length that is not a multiple of the record size (numpy: "buffer size must be a
        // multiple of element size")
        let err = AnyBuffer::get(&eval(&g, "base.tobytes()[:-1]"))
            .unwrap()
            .reinterpret::<Frame>()
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::ByteLength {
                    len: 152,
                    element_size: 17,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "expected a length in bytes that is a multiple of 17 (the size of Frame), got 152 \
             bytes from 'bytes'"
        );
        run(
            py,
            &g,
            "try:\n    np.frombuffer(base.tobytes()[:-1], dt)\n    numpy_refuses = False\nexcept ValueError:\n    numpy_refuses = True\n",
        );
        assert!(eval(&g, "numpy_refuses").extract::<bool>().unwrap());
        assert!(PyErr::from(err).is_instance_of::<pyo3::exceptions::PyValueError>(py));

        // not C-contiguous
        let err = AnyBuffer::get(&eval(&g, "np.arange(12, dtype=np.uint8).reshape(3, 4).T"))
            .unwrap()
            .reinterpret::<[u8; 2]>()
            .unwrap_err();
        assert!(matches!(err, Error::NotContiguous { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "expected a C-contiguous buffer (its bytes back to back), got shape (4, 3) with \
             byte strides [1, 4] from 'numpy.ndarray'"
        );
        assert!(PyErr::from(err).is_instance_of::<pyo3::exceptions::PyBufferError>(py));

        // zero-size elements cannot count bytes
        let err = AnyBuffer::get(&eval(&g, "b''"))
            .unwrap()
            .reinterpret::<[u8; 0]>()
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::ByteLength {
                    element_size: 0,
                    ..
                }
            ),
            "{err}"
        );

        // empty input, 0-d input
        let empty = AnyBuffer::get(&eval(&g, "b''"))
            .unwrap()
            .reinterpret::<Frame>()
            .unwrap();
        assert!(empty.is_empty());
        let scalar = AnyBuffer::get(&eval(&g, "np.float64(1.5)"))
            .unwrap()
            .reinterpret::<[u8; 8]>()
            .unwrap();
        assert_eq!(scalar.item(0).unwrap(), 1.5f64.to_ne_bytes());

        // item validity is checked as for every buffer
        #[derive(Clone, Copy, Debug, pybuf::Element)]
        #[repr(C)]
        struct Flagged {
            on: bool,
            level: u8,
        }
        let bad = AnyBuffer::get(&eval(&g, "bytes([1, 7, 2, 8])"))
            .unwrap()
            .reinterpret::<Flagged>()
            .unwrap();
        assert_eq!(bad.item(0).unwrap().level, 7);
        assert!(matches!(bad.item(1), Err(Error::InvalidValue { .. })));
        assert!(matches!(
            bad.read(),
            Err(Error::InvalidValue { position: 1, .. })
        ));
    });
}
