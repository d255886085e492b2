//! Tests of suboffset borrows: held borrows of PIL slices against each other (real
//! `_testbuffer` arrays read through `Layout::read`), and multi-level indirection over memory
//! laid out here, against address borrows of its rows and pointer tables.
//!
//! All addresses are real allocations of this process, so tests running in parallel never
//! meet each other's borrows.

use ndarray::IxDyn;
use pyo3::prelude::*;
use pyo3::{ffi, types::PyDict};

use super::indirect::{self, Indirect, MAX_REGIONS};
use super::*;
use crate::error::{Access, Error};

fn is_conflict(r: &Result<BorrowToken, Error>) -> bool {
    match r {
        Ok(_) => false,
        Err(Error::BorrowConflict { .. }) => true,
        Err(e) => panic!("expected a conflict or success, got {e}"),
    }
}

/// A held buffer and its validated layout.
struct Held {
    view: Box<ffi::Py_buffer>,
    layout: Layout<IxDyn>,
}

impl Held {
    fn get(obj: &Bound<'_, PyAny>) -> Held {
        // SAFETY: all-zero is a valid empty `Py_buffer`, filled by `PyObject_GetBuffer`.
        let mut view: Box<ffi::Py_buffer> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: attached (`obj` is bound); `view` is writable `Py_buffer` storage.
        let rc = unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), &mut *view, ffi::PyBUF_FULL) };
        assert_eq!(rc, 0);
        // SAFETY: filled by a successful `PyObject_GetBuffer`, held until `drop`.
        let layout = unsafe { Layout::<IxDyn>::read(&view) }.unwrap();
        Held { view, layout }
    }

    fn borrow(&self, access: Access) -> Result<BorrowToken, Error> {
        // SAFETY: the buffer is held while `self` lives.
        unsafe { acquire_layout(&self.layout, access) }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // SAFETY: tests drop `Held` while attached (inside `Python::attach`).
        unsafe { ffi::PyBuffer_Release(&mut *self.view) }
    }
}

#[test]
fn pil_slices_conflict_where_rows_meet() {
    Python::attach(|py| {
        let g = PyDict::new(py);
        py.run(
            c"from _testbuffer import ndarray, ND_PIL, ND_WRITABLE\n\
              nd = ndarray(list(range(48)), shape=[3, 16], format='B', flags=ND_PIL | ND_WRITABLE)\n\
              m = memoryview(nd)\n\
              a, b, c, a2 = m[0:2], m[1:3], m[2:3], m[0:2]\n",
            Some(&g),
            None,
        )
        .unwrap();
        let get = |name: &str| Held::get(&g.get_item(name).unwrap().unwrap());
        let (a, b, c, a2) = (get("a"), get("b"), get("c"), get("a2"));
        assert!(a.layout.suboffsets.is_some());
        {
            let wa = a.borrow(Access::Exclusive).unwrap();
            // one pointer-cell region and two rows
            assert_eq!(wa.entries(), 3);
            assert!(is_conflict(&b.borrow(Access::Shared)));
            assert!(is_conflict(&a2.borrow(Access::Shared)));
            let wc = c.borrow(Access::Exclusive).unwrap();
            drop(wc);
        }
        {
            let ra = a.borrow(Access::Shared).unwrap();
            let rb = b.borrow(Access::Shared).unwrap();
            assert!(is_conflict(&b.borrow(Access::Exclusive)));
            assert!(is_conflict(&a2.borrow(Access::Exclusive)));
            // c shares row 2 with b only
            assert!(is_conflict(&c.borrow(Access::Exclusive)));
            drop(rb);
            let wc = c.borrow(Access::Exclusive).unwrap();
            drop((ra, wc));
        }
        // all released
        drop(b.borrow(Access::Exclusive).unwrap());
        drop(a.borrow(Access::Exclusive).unwrap());
    });
}

/// Two levels of pointers laid out in Rust memory: `top` points (suboffset 4) into two
/// tables of three pointers each, which point (suboffset 8) at rows of four `u32`.
struct TwoLevel {
    rows: Vec<[u32; 8]>,
    tables: Vec<[*const u8; 3]>,
    top: [*const u8; 2],
}

impl TwoLevel {
    fn new(alias_rows: bool) -> Box<TwoLevel> {
        let mut t = Box::new(TwoLevel {
            rows: vec![[0u32; 8]; 6],
            tables: vec![[std::ptr::null(); 3]; 2],
            top: [std::ptr::null(); 2],
        });
        for i in 0..2 {
            for j in 0..3 {
                let row = if alias_rows { 0 } else { 3 * i + j };
                // the row's data starts 8 bytes (suboffset) before the 2nd..5th u32
                t.tables[i][j] = t.rows[row].as_ptr().cast::<u8>();
            }
        }
        for i in 0..2 {
            t.top[i] = t.tables[i].as_ptr().cast::<u8>().wrapping_sub(4);
        }
        t
    }

    fn layout(&self) -> Indirect<'static> {
        Indirect {
            base: self.top.as_ptr().cast(),
            shape: &[2, 3, 4],
            strides: &[8, 8, 4],
            suboffsets: &[4, 8, -1],
            itemsize: 4,
        }
    }

    fn borrow(&self, access: Access) -> Result<BorrowToken, Error> {
        // SAFETY: every pointer cell the layout reaches is in `self`, alive for the call.
        unsafe { indirect::acquire(&self.layout(), access) }
    }

    /// The four items of row `r` (bytes 8..24 of it).
    fn row(&self, r: usize) -> Region<'static> {
        Region {
            ptr: self.rows[r].as_ptr() as usize + 8,
            shape: &[4],
            strides: &[4],
            itemsize: 4,
        }
    }

    fn table(&self, i: usize) -> Region<'static> {
        Region {
            ptr: self.tables[i].as_ptr() as usize,
            shape: &[3],
            strides: &[8],
            itemsize: 8,
        }
    }
}

#[test]
fn two_levels_of_pointers_meet_address_borrows() {
    let t = TwoLevel::new(false);
    let w = t.borrow(Access::Exclusive).unwrap();
    // top cells + 2 tables + 6 rows
    assert_eq!(w.entries(), 9);
    // every row and table is covered, with the right access
    for r in 0..6 {
        assert!(is_conflict(&acquire(t.row(r), Access::Shared)));
    }
    for i in 0..2 {
        assert!(!is_conflict(&acquire(t.table(i), Access::Shared)));
        assert!(is_conflict(&acquire(t.table(i), Access::Exclusive)));
    }
    // bytes of a row that no item touches are free
    let outside = Region {
        ptr: t.rows[3].as_ptr() as usize,
        shape: &[],
        strides: &[],
        itemsize: 8,
    };
    drop(acquire(outside, Access::Exclusive).unwrap());
    drop(w);
    // a shared PIL borrow against a direct writer of one row
    let row4 = acquire(t.row(4), Access::Exclusive).unwrap();
    assert!(is_conflict(&t.borrow(Access::Shared)));
    drop(row4);
    let r1 = t.borrow(Access::Shared).unwrap();
    let r2 = t.borrow(Access::Shared).unwrap();
    assert!(is_conflict(&t.borrow(Access::Exclusive)));
    drop((r1, r2));
    drop(t.borrow(Access::Exclusive).unwrap());
}

#[test]
fn failed_indirect_borrow_registers_nothing() {
    let t = TwoLevel::new(false);
    // the last row is taken: the walk gets through the first five rows, then fails
    let last = acquire(t.row(5), Access::Exclusive).unwrap();
    assert!(is_conflict(&t.borrow(Access::Exclusive)));
    assert!(is_conflict(&t.borrow(Access::Shared)));
    // nothing of the failed attempts stayed registered
    for r in 0..5 {
        drop(acquire(t.row(r), Access::Exclusive).unwrap());
    }
    for i in 0..2 {
        drop(acquire(t.table(i), Access::Exclusive).unwrap());
    }
    drop(last);
}

#[test]
fn aliased_rows_can_be_written_together() {
    // Every row pointer leads to row 0: the runs of one borrow overlap each other, as the
    // items of a zero-stride view do, which is no conflict within the borrow.
    let t = TwoLevel::new(true);
    let r = t.borrow(Access::Shared).unwrap();
    assert!(is_conflict(&acquire(t.row(0), Access::Exclusive)));
    assert!(is_conflict(&t.borrow(Access::Exclusive)));
    drop(r);
    let w = t.borrow(Access::Exclusive).unwrap();
    assert!(is_conflict(&acquire(t.row(0), Access::Shared)));
    assert!(is_conflict(&t.borrow(Access::Shared)));
    drop(w);
    drop(acquire(t.row(0), Access::Exclusive).unwrap());
}

#[test]
fn rows_overlapping_their_own_pointer_table_cannot_be_written() {
    // One pointer that points at itself: the row is the pointer cell.
    let mut cell: [*const u8; 1] = [std::ptr::null()];
    cell[0] = cell.as_ptr().cast();
    let layout = Indirect {
        base: cell.as_ptr().cast(),
        shape: &[1, 8],
        strides: &[8, 1],
        suboffsets: &[0, -1],
        itemsize: 1,
    };
    // SAFETY: the only pointer cell the layout reaches is `cell`, alive for the calls.
    let shared = unsafe { indirect::acquire(&layout, Access::Shared) }.unwrap();
    drop(shared);
    // SAFETY: as above.
    assert!(is_conflict(&unsafe {
        indirect::acquire(&layout, Access::Exclusive)
    }));
}

#[test]
fn region_count_bounds_the_walk() {
    // count_regions is private; observe it through the entries of a borrow that fits and
    // the shape arithmetic of one that does not (the fallback itself is exercised in
    // tests/borrow_indirect.rs, alone: a borrow of everything meets every test's borrows).
    let rows = vec![[0u8; 4]; MAX_REGIONS - 1];
    let table: Vec<*const u8> = rows.iter().map(|r| r.as_ptr()).collect();
    let shape = [table.len(), 4];
    let layout = Indirect {
        base: table.as_ptr().cast(),
        shape: &shape,
        strides: &[8, 1],
        suboffsets: &[0, -1],
        itemsize: 1,
    };
    // SAFETY: every pointer cell reached is in `table`, alive for the call.
    let t = unsafe { indirect::acquire(&layout, Access::Exclusive) }.unwrap();
    assert_eq!(t.entries(), MAX_REGIONS);
}
