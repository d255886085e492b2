//! Records with padding written into Python's memory: no safe write path stores Rust's
//! uninitialized padding bytes there. `set_item` and `copy_from_slice(_in)` store the fields
//! only, so the buffer's padding bytes keep what they held (checked with Python's own
//! `tobytes()` after filling the memory with 0xAB); mutable views of padded records are
//! refused with `Error::PaddedElement`. Run under valgrind in CI (`.ci/run`): before the fix,
//! Rust's uninitialized padding reached the arrays and was then compared here.
//!
//! The values written are made from bytes whose padding positions hold 0xCD, so that a write
//! that copies whole values is likely to leave something other than 0xAB there even without
//! valgrind (what lands there is unspecified: with the whole-value copies of before, these
//! tests failed with stale stack bytes in the padding).
// lists of byte ranges with one range are meant as such
#![allow(clippy::single_range_in_vec_init)]

mod common;

use common::{eval, namespace, run};
use ndarray::Order;
use pybuf::format::{ItemLayout, Scalar, ScalarKind};
use pybuf::{Buffer1, Buffer2, BufferD, Element, Error};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// 3 padding bytes after `a` (numpy `align=True`, C).
#[derive(Clone, Copy, Debug, PartialEq, pybuf::Element)]
#[repr(C)]
struct Rec {
    a: u8,
    b: u32,
}

/// 3 trailing padding bytes: what ctypes writes correctly on every CPython (before 3.12 it
/// leaves out the padding *between* fields, which then cannot match).
#[derive(Clone, Copy, Debug, PartialEq, pybuf::Element)]
#[repr(C)]
struct Tail {
    a: u32,
    b: u8,
}

/// Padding inside its fields, `x` (1..4) and each element of `y` (9..12, 17..20), and its
/// own 2 trailing bytes (26..28).
#[derive(Clone, Copy, Debug, PartialEq, pybuf::Element)]
#[repr(C)]
struct Outer {
    x: Rec,
    y: [Rec; 2],
    c: u16,
}

/// No padding: mutable views stay allowed.
#[derive(Clone, Copy, Debug, PartialEq, pybuf::Element)]
#[repr(C)]
#[pybuf(no_padding)]
struct Dense {
    a: u32,
    b: [u16; 2],
}

/// Bytes to values: the padding positions of `image` may reach the value (in practice), so a
/// whole-value copy would carry them.
fn from_image<T: Element>(image: &[u8]) -> T {
    assert_eq!(image.len(), std::mem::size_of::<T>());
    // SAFETY: `image` is `size_of::<T>()` initialized bytes and every field type here accepts
    // every bit pattern (integers).
    unsafe { std::ptr::read_unaligned(image.as_ptr().cast::<T>()) }
}

fn rec(a: u8, b: u32) -> Rec {
    let mut image = [0xCD; 8];
    image[0] = a;
    image[4..].copy_from_slice(&b.to_ne_bytes());
    from_image(&image)
}

fn tail(a: u32, b: u8) -> Tail {
    let mut image = [0xCD; 8];
    image[..4].copy_from_slice(&a.to_ne_bytes());
    image[4] = b;
    from_image(&image)
}

fn outer(k: u32) -> Outer {
    let r = |i: u32| rec(k as u8 + i as u8, k * 1000 + i);
    Outer {
        x: r(0),
        y: [r(1), r(2)],
        c: k as u16,
    }
}

/// `memoryview(x).tobytes()`: Python's bytes of `x` in C order.
fn py_bytes(g: &Bound<'_, PyDict>, x: &Bound<'_, PyAny>) -> Vec<u8> {
    common::c_bytes(g, x)
}

/// Checks that every byte in `padding` (relative to each item of `size` bytes) is 0xAB.
fn assert_padding_kept(bytes: &[u8], size: usize, padding: &[std::ops::Range<usize>], what: &str) {
    assert_eq!(bytes.len() % size, 0);
    for (i, item) in bytes.chunks_exact(size).enumerate() {
        for r in padding {
            assert!(
                item[r.clone()].iter().all(|&b| b == 0xAB),
                "{what}: item {i} padding {r:?} is {:?} (whole item {item:?})",
                &item[r.clone()]
            );
        }
    }
}

#[test]
fn numpy_aligned_record_every_write_path_keeps_padding() {
    Python::attach(|py| {
        let g = namespace(py);
        run(
            py,
            &g,
            "dt = np.dtype([('a', 'u1'), ('b', 'u4')], align=True)\n\
             assert dt.itemsize == 8\n\
             a = np.frombuffer(bytearray(b'\\xab' * 8 * 12), dtype=dt).reshape(3, 4)\n",
        );
        let a = eval(&g, "a");
        assert_eq!(Rec::layout().padding_ranges(), [1..4]);

        // set_item, one item
        let buf = Buffer2::<Rec>::get_mut(&a).unwrap();
        buf.set_item((1, 2), rec(7, 70_000)).unwrap();
        let bytes = py_bytes(&g, &a);
        assert_padding_kept(&bytes, 8, &[1..4], "set_item");
        let ab: (u8, u32) = eval(&g, "(int(a['a'][1, 2]), int(a['b'][1, 2]))")
            .extract()
            .unwrap();
        assert_eq!(ab, (7, 70_000));

        // copy_from_slice, C order, contiguous
        let values: Vec<Rec> = (0..12).map(|i| rec(i as u8, i * 11)).collect();
        buf.copy_from_slice(&values).unwrap();
        assert_padding_kept(&py_bytes(&g, &a), 8, &[1..4], "copy_from_slice");
        let a_col: Vec<u32> = eval(&g, "a['b'].ravel().tolist()").extract().unwrap();
        assert_eq!(a_col, (0..12).map(|i| i * 11).collect::<Vec<u32>>());

        // copy_from_slice_in, Fortran order, through a strided view
        let strided = eval(&g, "a[::2, ::-2]");
        let sbuf = Buffer2::<Rec>::get_mut(&strided).unwrap();
        let values: Vec<Rec> = (0..4).map(|i| rec(100 + i as u8, 5_000 + i)).collect();
        sbuf.copy_from_slice_in(&values, Order::F).unwrap();
        assert_padding_kept(&py_bytes(&g, &a), 8, &[1..4], "copy_from_slice_in(F)");
        let b_f: Vec<u32> = eval(&g, "a[::2, ::-2]['b'].ravel(order='F').tolist()")
            .extract()
            .unwrap();
        assert_eq!(b_f, [5_000, 5_001, 5_002, 5_003]);

        // reading padded records keeps working
        let read = buf.to_vec().unwrap();
        let py_a: Vec<u8> = eval(&g, "a['a'].ravel().tolist()").extract().unwrap();
        let py_b: Vec<u32> = eval(&g, "a['b'].ravel().tolist()").extract().unwrap();
        let got: Vec<(u8, u32)> = read.iter().map(|r| (r.a, r.b)).collect();
        let want: Vec<(u8, u32)> = py_a.into_iter().zip(py_b).collect();
        assert_eq!(got, want);
        assert_eq!(
            buf.read().unwrap().view()[[1, 2]],
            buf.item((1, 2)).unwrap()
        );
        assert_eq!(buf.with(|v| v.len()).unwrap(), 12);
    });
}

#[test]
fn numpy_nested_record_with_padding_inside_fields() {
    Python::attach(|py| {
        let g = namespace(py);
        run(
            py,
            &g,
            "inner = np.dtype([('a', 'u1'), ('b', 'u4')], align=True)\n\
             dt = np.dtype([('x', inner), ('y', inner, (2,)), ('c', 'u2')], align=True)\n\
             assert dt.itemsize == 28, dt.itemsize\n\
             a = np.frombuffer(bytearray(b'\\xab' * 28 * 5), dtype=dt)\n",
        );
        let padding = Outer::layout().padding_ranges();
        assert_eq!(padding, [1..4, 9..12, 17..20, 26..28]);
        let a = eval(&g, "a");
        let buf = Buffer1::<Outer>::get_mut(&a).unwrap();
        buf.set_item(4, outer(9)).unwrap();
        let values: Vec<Outer> = (0..2).map(outer).collect();
        let even = eval(&g, "a[::2][:2]");
        Buffer1::<Outer>::get_mut(&even)
            .unwrap()
            .copy_from_slice(&values)
            .unwrap();
        assert_padding_kept(&py_bytes(&g, &a), 28, &padding, "nested");
        let c: Vec<u16> = eval(&g, "a['c'].tolist()").extract().unwrap();
        assert_eq!(c, [0, 0xABAB, 1, 0xABAB, 9]);
        let yb: Vec<u32> = eval(&g, "a['y']['b'][4].tolist()").extract().unwrap();
        assert_eq!(yb, [9001, 9002]);
        assert_eq!(buf.item(4).unwrap(), outer(9));
    });
}

#[test]
fn ctypes_structure_array_keeps_padding() {
    Python::attach(|py| {
        let g = namespace(py);
        run(
            py,
            &g,
            "class S(ctypes.Structure):\n    _fields_ = [('a', ctypes.c_uint32), ('b', ctypes.c_uint8)]\n\
             assert ctypes.sizeof(S) == 8\n\
             arr = (S * 6)()\n\
             ctypes.memset(arr, 0xAB, ctypes.sizeof(arr))\n",
        );
        assert_eq!(Tail::layout().padding_ranges(), [5..8]);
        let arr = eval(&g, "arr");
        let buf = Buffer1::<Tail>::get_mut(&arr).unwrap();
        buf.set_item(5, tail(123_456, 9)).unwrap();
        let values: Vec<Tail> = (0..6).map(|i| tail(i * 3, i as u8)).collect();
        let first = eval(&g, "memoryview(arr)[:5]");
        Buffer1::<Tail>::get_mut(&first)
            .unwrap()
            .copy_from_slice(&values[..5])
            .unwrap();
        // Python's own bytes of the array, and of each structure
        let bytes: Vec<u8> = eval(&g, "memoryview(arr).tobytes()").extract().unwrap();
        assert_padding_kept(&bytes, 8, &[5..8], "ctypes");
        let each: Vec<u8> = eval(&g, "b''.join(bytes(s) for s in arr)")
            .extract()
            .unwrap();
        assert_eq!(each, bytes);
        let fields: Vec<(u32, u8)> = eval(&g, "[(s.a, s.b) for s in arr]").extract().unwrap();
        assert_eq!(
            fields,
            [(0, 0), (3, 1), (6, 2), (9, 3), (12, 4), (123_456, 9)]
        );
        assert_eq!(buf.to_vec().unwrap()[5], tail(123_456, 9));
    });
}

#[test]
fn suboffset_buffer_keeps_padding() {
    // _testbuffer packs items with `struct`, which writes zeros for 'x': the padding must
    // stay zero through the PIL-style (suboffsets) path of copy_from_slice and set_item.
    Python::attach(|py| {
        let g = namespace(py);
        run(
            py,
            &g,
            "from _testbuffer import ndarray, ND_WRITABLE, ND_PIL\n\
             nd = ndarray([(i, 10 * i) for i in range(6)], shape=[2, 3], format='B3xI', \
             flags=ND_WRITABLE | ND_PIL)\n",
        );
        let nd = eval(&g, "nd");
        let buf = Buffer2::<Rec>::get_mut(&nd).unwrap();
        assert!(buf.suboffsets().is_some());
        let values: Vec<Rec> = (0..6).map(|i| rec(50 + i as u8, i * 7)).collect();
        buf.copy_from_slice(&values).unwrap();
        buf.set_item((1, 1), rec(1, 2)).unwrap();
        let bytes = py_bytes(&g, &nd);
        for (i, item) in bytes.chunks_exact(8).enumerate() {
            assert_eq!(item[1..4], [0, 0, 0], "item {i}: {item:?}");
        }
        let list: Vec<Vec<(u8, u32)>> = eval(&g, "nd.tolist()").extract().unwrap();
        assert_eq!(
            list,
            [
                vec![(50, 0), (51, 7), (52, 14)],
                vec![(53, 21), (1, 2), (55, 35)]
            ]
        );
    });
}

#[test]
fn mutable_views_of_padded_records_are_refused() {
    Python::attach(|py| {
        let g = namespace(py);
        run(
            py,
            &g,
            "a = np.zeros(4, np.dtype([('a', 'u1'), ('b', 'u4')], align=True))\n\
             inner = np.dtype([('a', 'u1'), ('b', 'u4')], align=True)\n\
             o = np.zeros(3, np.dtype([('x', inner), ('y', inner, (2,)), ('c', 'u2')], align=True))\n\
             d = np.zeros(3, np.dtype([('a', 'u4'), ('b', 'u2', (2,))]))\n",
        );
        let a = eval(&g, "a");
        let buf = BufferD::<Rec>::get_mut(&a).unwrap();
        let err = buf.write().unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(&err, Error::PaddedElement { type_name, size: 8, padding }
                if type_name == "Rec" && padding == &[1..4]),
            "{err:?}"
        );
        assert!(message.contains("Rec (8 bytes)"), "{message}");
        assert!(message.contains("padding at bytes 1..4"), "{message}");
        assert!(PyErr::from(err).is_instance_of::<PyTypeError>(py));
        assert!(matches!(
            buf.with_mut(|_| ()),
            Err(Error::PaddedElement { .. })
        ));
        // reads are unaffected, and a read guard can live next to the refusal
        let guard = buf.read().unwrap();
        assert_eq!(guard.as_slice().unwrap().len(), 4);
        drop(guard);

        let o = eval(&g, "o");
        let err = Buffer1::<Outer>::get_mut(&o).unwrap().write().unwrap_err();
        assert!(
            err.to_string()
                .contains("padding at bytes 1..4, 9..12, 17..20, 26..28"),
            "{err}"
        );

        // a record without padding still gets mutable views
        let d = eval(&g, "d");
        let dense = Buffer1::<Dense>::get_mut(&d).unwrap();
        dense.with_mut(|mut v| v[1].b = [5, 6]).unwrap();
        dense.write().unwrap().as_slice_mut().unwrap()[2].a = 9;
        let got: Vec<(u32, Vec<u16>)> = eval(&g, "[(int(x), y.tolist()) for x, y in d]")
            .extract()
            .unwrap();
        assert_eq!(got, [(0, vec![0, 0]), (0, vec![5, 6]), (9, vec![0, 0])]);
    });
}

/// A hand-written impl that keeps the default `HAS_PADDING = true` is treated as padded:
/// writes go field by field, mutable views are refused with a message saying why.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(transparent)]
struct Handwritten(u32);

// SAFETY: one native u32 (size 4, align 4, every bit pattern valid).
unsafe impl Element for Handwritten {
    fn layout() -> ItemLayout {
        ItemLayout::scalar(Scalar::native(ScalarKind::U32), 4)
    }
}

#[test]
fn handwritten_impls_default_to_padded() {
    const { assert!(Handwritten::HAS_PADDING && !u32::HAS_PADDING && !<[u16; 3]>::HAS_PADDING) };
    const { assert!(Rec::HAS_PADDING && Tail::HAS_PADDING && Outer::HAS_PADDING) };
    const { assert!(!Dense::HAS_PADDING && <[Rec; 2]>::HAS_PADDING) };
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, "a = array.array('I', [1, 2, 3])\n");
        let a = eval(&g, "a");
        let buf = Buffer1::<Handwritten>::get_mut(&a).unwrap();
        let err = buf.write().unwrap_err();
        assert!(
            err.to_string()
                .contains("whose Element impl does not rule out padding"),
            "{err}"
        );
        // the advice for the Rust author is in the hint, not in the Python-visible message
        assert!(
            err.hint().unwrap().contains("HAS_PADDING = true"),
            "{:?}",
            err.hint()
        );
        buf.copy_from_slice(&[Handwritten(7), Handwritten(8), Handwritten(9)])
            .unwrap();
        buf.set_item(0, Handwritten(6)).unwrap();
        let list: Vec<u32> = eval(&g, "a.tolist()").extract().unwrap();
        assert_eq!(list, [6, 8, 9]);
    });
}

#[derive(Clone, Copy, pybuf::Element)]
#[repr(C, packed)]
struct PackedAroundPadded {
    t: u8,
    x: [Rec; 2],
}

#[derive(Clone, Copy, pybuf::Element)]
#[repr(C, align(16))]
struct OverAligned {
    a: u64,
}

#[derive(Clone, Copy, pybuf::Element)]
#[repr(C)]
struct Generic<T: Copy, const N: usize> {
    a: [T; N],
    b: u8,
}

#[derive(Clone, Copy, pybuf::Element)]
#[repr(C)]
struct Zeros {
    a: [u64; 0],
    b: u8,
}

/// What the derive computes at compile time agrees with the padding its layout shows.
#[test]
fn has_padding_agrees_with_the_layout() {
    fn check<T: Element>(padded: bool) {
        let layout = T::layout();
        assert_eq!(T::HAS_PADDING, padded, "{}", T::type_name());
        assert_eq!(
            !layout.padding_ranges().is_empty(),
            padded,
            "{}: {:?}",
            T::type_name(),
            layout.padding_ranges()
        );
    }
    check::<Rec>(true);
    check::<Tail>(true);
    check::<Outer>(true);
    check::<Dense>(false);
    check::<[Rec; 3]>(true);
    check::<[[Dense; 2]; 2]>(false);
    check::<zerocopy::Unalign<Rec>>(true);
    check::<PackedAroundPadded>(true);
    check::<OverAligned>(true);
    check::<Generic<u8, 3>>(false);
    check::<Generic<u16, 3>>(true);
    check::<Generic<Rec, 1>>(true);
    check::<Zeros>(true); // aligned to 8 by the empty u64 array: 7 trailing bytes
    check::<pybuf::be::F64>(false);
    check::<bool>(false);
    assert_eq!(Zeros::layout().padding_ranges(), [1..8]);
    assert_eq!(OverAligned::layout().padding_ranges(), [8..16]);
    assert_eq!(
        PackedAroundPadded::layout().padding_ranges(),
        [2..5, 10..13]
    );
}
