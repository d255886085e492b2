//! `[T; N]` elements absorb a trailing axis of length N (issue 15, point 4): H×W×3 images as
//! `Buffer2<[u8; 3]>`, N×3 point clouds as `Buffer1<[f32; 3]>`, with every other check as
//! for any element type.

mod common;

use common::{eval, namespace, run};
use pybuf::{AnyBuffer, Buffer1, Buffer2, Buffer3, BufferD, BufferMut2, Error};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// numpy's pixels of an H×W×3 array, row by row.
fn numpy_pixels(g: &Bound<'_, PyDict>, expr: &str) -> Vec<[u8; 3]> {
    let rows: Vec<Vec<u8>> = eval(g, &format!("np.asarray({expr}).reshape(-1, 3).tolist()"))
        .extract()
        .unwrap();
    rows.into_iter().map(|p| [p[0], p[1], p[2]]).collect()
}

const IMAGE: &str = "img = (np.arange(4 * 5 * 3) * 7 % 256).astype(np.uint8).reshape(4, 5, 3)";

#[test]
fn images_read_as_pixels() {
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, IMAGE);
        for expr in [
            "img",
            "img[::2, ::-1]",
            "img[1:3, 2:]",
            "img[:0]",
            "np.ascontiguousarray(img[:, :, ::-1])",
            "img.reshape(20, 3)[None]",
        ] {
            let buf =
                Buffer2::<[u8; 3]>::get(&eval(&g, expr)).unwrap_or_else(|e| panic!("{expr}: {e}"));
            let shape: Vec<usize> = eval(&g, &format!("list({expr}.shape[:2])"))
                .extract()
                .unwrap();
            assert_eq!(buf.shape(), shape, "{expr}");
            assert_eq!(buf.itemsize(), 3);
            let expected = numpy_pixels(&g, expr);
            assert_eq!(buf.to_vec().unwrap(), expected, "{expr}");
            let viewed: Vec<[u8; 3]> = buf.with(|v| v.iter().copied().collect()).unwrap();
            assert_eq!(viewed, expected, "{expr}");
            if !expected.is_empty() {
                let (r, c) = (shape[0] - 1, shape[1] - 1);
                let last: Vec<u8> = eval(&g, &format!("{expr}[{r}, {c}].tolist()"))
                    .extract()
                    .unwrap();
                assert_eq!(buf.item((r, c)).unwrap().to_vec(), last);
            }
        }
        // the same through AnyBuffer, and with any number of dimensions
        let any = AnyBuffer::get(&eval(&g, "img")).unwrap();
        let typed = any.typed::<[u8; 3], ndarray::Ix2>().unwrap();
        assert_eq!(typed.dim(), (4, 5));
        let dynamic = BufferD::<[u8; 3]>::get(&eval(&g, "img")).unwrap();
        assert_eq!(dynamic.shape(), [4, 5]);
        // one pixel: a 1-D buffer of 3 items is a 0-D buffer of one pixel
        let one = pybuf::Buffer0::<[u8; 3]>::get(&eval(&g, "img[0, 0]")).unwrap();
        assert_eq!(one.item(()).unwrap(), numpy_pixels(&g, "img[0, 0]")[0]);
        // items that already are arrays are read as before
        let direct = Buffer1::<[u8; 3]>::get(&eval(
            &g,
            "_testbuffer.ndarray([(1, 2, 3), (4, 5, 6)], shape=[2], format='3B')",
        ))
        .unwrap();
        assert_eq!(direct.to_vec().unwrap(), [[1, 2, 3], [4, 5, 6]]);
    });
}

#[test]
fn point_clouds_read_as_arrays() {
    Python::attach(|py| {
        let g = namespace(py);
        run(
            py,
            &g,
            "pts = (np.arange(18, dtype=np.float32) * 0.5 - 3).reshape(6, 3)",
        );
        let buf = Buffer1::<[f32; 3]>::get(&eval(&g, "pts")).unwrap();
        assert_eq!(buf.len(), 6);
        let rows: Vec<Vec<f32>> = eval(&g, "pts.tolist()").extract().unwrap();
        let got = buf
            .with(|v| v.iter().map(|p| p.to_vec()).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(got, rows);
        // strided rows, any order
        let every_other = Buffer1::<[f32; 3]>::get(&eval(&g, "pts[::-2]")).unwrap();
        let rows: Vec<Vec<f32>> = eval(&g, "pts[::-2].tolist()").extract().unwrap();
        let got: Vec<Vec<f32>> = every_other
            .to_vec()
            .unwrap()
            .iter()
            .map(|p| p.to_vec())
            .collect();
        assert_eq!(got, rows);
        // ctypes and memoryview exporters too
        let c = Buffer1::<[f64; 2]>::get(&eval(
            &g,
            "((ctypes.c_double * 2) * 3)((1, 2), (3, 4), (5, 6))",
        ))
        .unwrap();
        assert_eq!(c.to_vec().unwrap(), [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]);
        let m = Buffer1::<[u16; 2]>::get(&eval(
            &g,
            "memoryview(np.arange(6, dtype=np.uint16).tobytes()).cast('H', (3, 2))",
        ))
        .unwrap();
        assert_eq!(m.to_vec().unwrap(), [[0, 1], [2, 3], [4, 5]]);
    });
}

#[test]
fn layouts_and_alignment_are_checked_as_for_any_element() {
    Python::attach(|py| {
        let g = namespace(py);
        // misaligned float32 points: no view, a copy
        run(py, &g, "mis = np.frombuffer(bytearray(4 * 6 + 1), np.float32, offset=1).reshape(2, 3)\nmis[...] = [[1, 2, 3], [4, 5, 6]]");
        let mis = Buffer1::<[f32; 3]>::get(&eval(&g, "mis")).unwrap();
        assert!(matches!(
            mis.read(),
            Err(Error::Misaligned { align: 4, .. })
        ));
        let items = mis.read_or_copy().unwrap();
        assert!(!items.is_view());
        assert_eq!(
            items.as_slice().unwrap(),
            [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
        );
        // a pixel stride that is not a multiple of 3 bytes: copies only
        run(
            py,
            &g,
            "wide = np.zeros((2, 4, 4), np.uint8); wide[..., :3] = np.arange(24).reshape(2, 4, 3)",
        );
        let rgb_of_rgba = Buffer2::<[u8; 3]>::get(&eval(&g, "wide[..., :3]")).unwrap();
        assert!(matches!(
            rgb_of_rgba.read(),
            Err(Error::StrideNotMultiple {
                axis: 0,
                stride: 16,
                itemsize: 3
            })
        ));
        assert_eq!(
            rgb_of_rgba.to_vec().unwrap(),
            numpy_pixels(&g, "wide[..., :3]")
        );
        // suboffsets on the leading axes are followed by copies
        let pil = Buffer2::<[u8; 3]>::get(&eval(
            &g,
            "_testbuffer.ndarray(list(range(24)), shape=[2, 4, 3], format='B', flags=_testbuffer.ND_PIL)",
        ))
        .unwrap();
        assert!(matches!(pil.read(), Err(Error::Suboffsets)));
        let expected: Vec<Vec<u8>> = eval(&g, "[p for row in memoryview(_testbuffer.ndarray(list(range(24)), shape=[2, 4, 3], format='B', flags=_testbuffer.ND_PIL)).tolist() for p in row]").extract().unwrap();
        let got: Vec<Vec<u8>> = pil.to_vec().unwrap().iter().map(|p| p.to_vec()).collect();
        assert_eq!(got, expected);
    });
}

#[test]
fn a_trailing_axis_that_does_not_fit_says_why() {
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, IMAGE);
        // RGBA is not RGB
        let err = Buffer2::<[u8; 3]>::get(&eval(&g, "np.zeros((2, 2, 4), np.uint8)")).unwrap_err();
        assert!(
            matches!(
                err,
                Error::TrailingAxis {
                    length: 4,
                    expected_length: 3,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "expected a 2-D buffer of (3,) uint8 ([u8; 3], format '(3)B', itemsize 3) or a 3-D \
             buffer of uint8 whose last axis has length 3 and is contiguous, got a 3-D buffer of \
             uint8 (format 'B') with shape (2, 2, 4) from 'numpy.ndarray' whose last axis has \
             length 4 and byte stride 1 (expected length 3 and byte stride 1)"
        );
        assert!(PyErr::from(err).is_instance_of::<pyo3::exceptions::PyTypeError>(py));
        // BGR as a negative stride, and planar (channels-first) memory seen channels-last
        for (expr, stride) in [
            ("img[..., ::-1]", -1isize),
            (
                "np.ascontiguousarray(img.transpose(2, 0, 1)).transpose(1, 2, 0)",
                20,
            ),
        ] {
            let err = Buffer2::<[u8; 3]>::get(&eval(&g, expr)).unwrap_err();
            match &err {
                Error::TrailingAxis {
                    length: 3,
                    stride: s,
                    expected_stride: 1,
                    ..
                } => assert_eq!(*s, stride, "{expr}"),
                other => panic!("{expr}: {other}"),
            }
            assert!(
                err.to_string().contains(&format!(
                    "length 3 and byte stride {stride} (expected length 3 and byte stride 1)"
                )),
                "{err}"
            );
        }
        // one dimension short: the message names both ways to be right
        let err = Buffer2::<[u8; 3]>::get(&eval(&g, "np.zeros((4, 5), np.uint8)")).unwrap_err();
        assert!(
            matches!(err, Error::ElementType { .. } | Error::Dimensions { .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("or a 3-D buffer of uint8 whose last axis has length 3"),
            "{err}"
        );
        let err =
            Buffer1::<[f32; 3]>::get(&eval(&g, "np.zeros((2, 3, 3), np.float32)")).unwrap_err();
        assert!(matches!(err, Error::Dimensions { .. }), "{err}");
        // other element types are other element types
        let err = Buffer2::<[u8; 3]>::get(&eval(&g, "np.zeros((2, 2, 3), np.int8)")).unwrap_err();
        assert!(matches!(err, Error::ElementType { .. }), "{err}");
        let err = Buffer1::<[f64; 3]>::get(&eval(&g, "np.zeros((2, 3), '>f8')")).unwrap_err();
        assert!(matches!(err, Error::ByteOrder { .. }), "{err}");
    });
}

#[test]
fn writes_and_borrows_see_the_whole_pixel() {
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, IMAGE);
        let out: BufferMut2<[u8; 3]> = eval(&g, "img").extract().unwrap();
        out.with_mut(|mut v| v[(1, 2)] = [1, 2, 3]).unwrap();
        out.set_item((0, 0), [9, 8, 7]).unwrap();
        assert_eq!(
            eval(&g, "img[1, 2].tolist() + img[0, 0].tolist()")
                .extract::<Vec<u8>>()
                .unwrap(),
            [1, 2, 3, 9, 8, 7]
        );
        // a pixel view and a byte view of the same image conflict; disjoint rows do not
        let pixels = Buffer2::<[u8; 3]>::get(&eval(&g, "img[:2]")).unwrap();
        let bytes = Buffer3::<u8>::get_mut(&eval(&g, "img[1:]")).unwrap();
        let other_rows = Buffer3::<u8>::get_mut(&eval(&g, "img[2:]")).unwrap();
        let reading = pixels.read().unwrap();
        assert!(matches!(bytes.write(), Err(Error::BorrowConflict { .. })));
        assert!(other_rows.write().is_ok());
        drop(reading);
        assert!(bytes.write().is_ok());
        // the last channel only: a write that must not touch the other two
        let blue = Buffer2::<u8>::get_mut(&eval(&g, "img[..., 2]")).unwrap();
        let _w = blue.write().unwrap();
        assert!(matches!(pixels.read(), Err(Error::BorrowConflict { .. })));
    });
}
