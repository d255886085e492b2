//! Suboffset (PIL-style) buffers in the borrow registry (issue 12, finding 2).
//!
//! The elements of such a buffer are reached through pointers stored in the buffer, so two
//! slices of one array (`m[0:2]`, `m[1:3]`) start at different places yet share rows. Their
//! borrows must conflict exactly where the rows (and the pointer cells read to find them)
//! overlap, with each other and with borrows of the same memory described by address (a
//! ctypes array laid over one row, or over the pointer table).

mod common;

use common::*;
use pybuf::{Buffer1, Buffer2, Error};
use pyo3::prelude::*;
use pyo3::types::PyDict;

const ROW: usize = 4096;

/// The tests of this file run one at a time: the last one takes a borrow of everything,
/// which would meet the others' borrows.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A writable 3 × ROW `_testbuffer` PIL array `nd` (row pointers at `buf`, suboffsets
/// `[0, -1]`), its memoryview `m`, the slices `a = m[0:2]`, `b = m[1:3]`, `c = m[2:3]`, and
/// the addresses Python's own `ctypes` needs to lay direct arrays over its memory: `ptrs`
/// (the pointer table) and `rows` (each row's first byte).
fn pil(py: Python<'_>) -> Bound<'_, PyDict> {
    let g = namespace(py);
    run(
        py,
        &g,
        &format!(
            "from _testbuffer import ndarray, ND_PIL, ND_WRITABLE\n\
             ROW = {ROW}\n\
             nd = ndarray([0] * (3 * ROW), shape=[3, ROW], format='B', flags=ND_PIL | ND_WRITABLE)\n\
             m = memoryview(nd)\n\
             a, b, c = m[0:2], m[1:3], m[2:3]\n"
        ),
    );
    assert_eq!(
        eval(&g, "m.suboffsets").extract::<Vec<isize>>().unwrap(),
        [0, -1]
    );
    // The pointer table's address and the row addresses, read from the exporter's own
    // Py_buffer (the rows are where its pointers point, plus the first suboffset).
    let m = eval(&g, "m");
    // SAFETY: test scaffolding: a real PyObject_GetBuffer on an attached thread; the view is
    // read while held and released before returning; the pointer table holds 3 pointers.
    let (ptrs, rows) = unsafe {
        let mut view: pyo3::ffi::Py_buffer = std::mem::zeroed();
        assert_eq!(
            pyo3::ffi::PyObject_GetBuffer(m.as_ptr(), &mut view, pyo3::ffi::PyBUF_FULL_RO),
            0
        );
        let table = view.buf as *const *const u8;
        let sub0 = *view.suboffsets;
        let rows: Vec<usize> = (0..3)
            .map(|i| (table.add(i).read_unaligned() as usize).wrapping_add_signed(sub0))
            .collect();
        let ptrs = view.buf as usize;
        pyo3::ffi::PyBuffer_Release(&mut view);
        (ptrs, rows)
    };
    g.set_item("ptrs", ptrs).unwrap();
    g.set_item("rows", rows).unwrap();
    run(
        py,
        &g,
        "row_arrays = [(ctypes.c_ubyte * ROW).from_address(r) for r in rows]\n\
         table = (ctypes.c_ubyte * (3 * ctypes.sizeof(ctypes.c_void_p))).from_address(ptrs)\n",
    );
    g
}

fn is_conflict<T: std::fmt::Debug>(r: Result<T, Error>) -> bool {
    match r {
        Ok(_) => false,
        Err(Error::BorrowConflict { .. }) => true,
        Err(e) => panic!("expected a borrow conflict or success, got {e}"),
    }
}

#[test]
fn overlapping_pil_slices_never_tear_rows() {
    let _serial = serial();
    Python::attach(|py| {
        let g = pil(py);
        let a = Buffer2::<u8>::get(&eval(&g, "a")).unwrap();
        let b = Buffer2::<u8>::get_mut(&eval(&g, "b")).unwrap();
        assert!(a.suboffsets().is_some() && b.suboffsets().is_some());
        const ROUNDS: usize = 2000;
        let (torn, write_conflicts, read_conflicts) = py.detach(|| {
            std::thread::scope(|s| {
                let writer = s.spawn(|| {
                    let mut conflicts = 0;
                    for k in 0..ROUNDS {
                        // Every byte of one call holds the same value: a row mixing two
                        // values was read while a copy was under way.
                        let v = vec![(k % 250) as u8 + 1; 2 * ROW];
                        conflicts += is_conflict(b.copy_from_slice(&v)) as usize;
                    }
                    conflicts
                });
                let reader = s.spawn(|| {
                    let (mut torn, mut conflicts) = (0, 0);
                    for _ in 0..ROUNDS {
                        match a.to_vec() {
                            Ok(v) => {
                                torn += v
                                    .chunks(ROW)
                                    .filter(|row| row.iter().any(|&x| x != row[0]))
                                    .count()
                            }
                            Err(Error::BorrowConflict { .. }) => conflicts += 1,
                            Err(e) => panic!("{e}"),
                        }
                    }
                    (torn, conflicts)
                });
                let w = writer.join().unwrap();
                let (t, r) = reader.join().unwrap();
                (t, w, r)
            })
        });
        println!(
            "torn rows: {torn}, conflicts seen by the writer: {write_conflicts}, by the \
             reader: {read_conflicts}"
        );
        assert_eq!(torn, 0, "rows torn by a concurrent copy_from_slice");
        // Python sees whole rows too.
        let rows: Vec<Vec<u8>> = eval(&g, "[bytes(r) for r in m.tolist()]")
            .extract()
            .unwrap();
        for row in &rows[1..] {
            assert!(row.iter().all(|&x| x == row[0]));
        }
    });
}

#[test]
fn pil_borrows_meet_direct_borrows_of_their_rows() {
    let _serial = serial();
    Python::attach(|py| {
        let g = pil(py);
        let a = Buffer2::<u8>::get_mut(&eval(&g, "a")).unwrap();
        let b = Buffer2::<u8>::get_mut(&eval(&g, "b")).unwrap();
        let c = Buffer2::<u8>::get_mut(&eval(&g, "c")).unwrap();
        let row1 = Buffer1::<u8>::get_mut(&eval(&g, "row_arrays[1]")).unwrap();
        let src = vec![5u8; 2 * ROW];
        {
            // Row 1 exclusively borrowed by address: both slices that contain it conflict,
            // the one that does not is free.
            let _w = row1.write().unwrap();
            assert!(is_conflict(a.to_vec()));
            assert!(is_conflict(b.to_vec()));
            assert!(is_conflict(b.copy_from_slice(&src)));
            assert!(is_conflict(a.item((1, 0))));
            // (An item of a suboffset buffer borrows the whole buffer: conservative.)
            assert!(is_conflict(a.item((0, 7))));
            assert!(!is_conflict(c.to_vec()));
            assert!(!is_conflict(c.copy_from_slice(&src[..ROW])));
        }
        {
            // Row 1 shared: PIL readers are fine, PIL writers of row 1 are not.
            let _r = row1.read().unwrap();
            assert!(!is_conflict(a.to_vec()));
            assert!(!is_conflict(b.to_vec()));
            assert!(is_conflict(b.copy_from_slice(&src)));
            assert!(is_conflict(a.set_item((1, 3), 1)));
            assert!(!is_conflict(a.item((1, 3))));
        }
        // Free again: the copies land, and Python sees them.
        b.copy_from_slice(&src).unwrap();
        assert_eq!(
            eval(&g, "bytes(m.tolist()[1])")
                .extract::<Vec<u8>>()
                .unwrap(),
            vec![5u8; ROW]
        );
    });
}

#[test]
fn pil_borrows_meet_direct_borrows_of_their_pointer_table() {
    let _serial = serial();
    Python::attach(|py| {
        let g = pil(py);
        let a = Buffer2::<u8>::get_mut(&eval(&g, "a")).unwrap();
        let c = Buffer2::<u8>::get_mut(&eval(&g, "c")).unwrap();
        let table = Buffer1::<u8>::get_mut(&eval(&g, "table")).unwrap();
        let src = vec![9u8; ROW];
        {
            // Someone may rewrite the pointers: following them is a read of those bytes.
            let _w = table.write().unwrap();
            assert!(is_conflict(a.to_vec()));
            assert!(is_conflict(c.to_vec()));
            assert!(is_conflict(c.copy_from_slice(&src)));
        }
        {
            // Reading the table alongside is fine, for PIL readers and writers alike (a
            // writer of the rows only reads the pointers).
            let _r = table.read().unwrap();
            assert!(!is_conflict(a.to_vec()));
            c.copy_from_slice(&src).unwrap();
        }
        assert_eq!(
            eval(&g, "bytes(m.tolist()[2])")
                .extract::<Vec<u8>>()
                .unwrap(),
            vec![9u8; ROW]
        );
    });
}

#[test]
fn pil_layouts_beyond_the_work_bound_borrow_conservatively() {
    let _serial = serial();
    Python::attach(|py| {
        let g = namespace(py);
        // 2,000 rows: more pointer-cell regions and data runs than the walk resolves.
        run(
            py,
            &g,
            "from _testbuffer import ndarray, ND_PIL, ND_WRITABLE\n\
             big = memoryview(ndarray(list(range(250)) * 8, shape=[2000, 1], format='B', \
             flags=ND_PIL | ND_WRITABLE))\n\
             other = bytearray(16)\n",
        );
        let big = Buffer2::<u8>::get_mut(&eval(&g, "big")).unwrap();
        let other = Buffer1::<u8>::get_mut(&eval(&g, "other")).unwrap();
        let expected: Vec<u8> = (0..250u8).cycle().take(2000).collect();
        assert_eq!(big.to_vec().unwrap(), expected);
        {
            // Unrelated memory, exclusively borrowed: the conservative borrow meets it.
            let _w = other.write().unwrap();
            assert!(is_conflict(big.to_vec()));
        }
        {
            // Shared borrows elsewhere are fine for a reader, not for a writer.
            let _r = other.read().unwrap();
            assert_eq!(big.to_vec().unwrap(), expected);
            assert!(is_conflict(big.copy_from_slice(&expected)));
        }
        big.copy_from_slice(&expected).unwrap();
    });
}
