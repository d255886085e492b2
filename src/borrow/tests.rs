//! Tests of the borrow registry and the overlap solver.
//!
//! Tests that use the process-wide registry with made-up addresses place them above
//! `0xFFFF_0000_0000_0000` (kernel space on every 64-bit platform pybuf runs on, so never the
//! address of real memory), each test in its own 4 GiB window, so tests running in parallel
//! never see each other's borrows.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use proptest::collection::vec;
use proptest::prelude::*;
use pyo3::prelude::*;
use pyo3::types::PyModule;

use super::overlap::{internal_overlap, norm_overlap, normalize, Answer, Norm, MAX_WORK};
use super::registry::Registry;
use super::*;
use crate::error::{Access, Error};

/// Base of the made-up address window of test number `n`.
fn window(n: usize) -> usize {
    0xFFFF_0000_0000_0000 + (n << 32)
}

fn region<'a>(ptr: usize, shape: &'a [usize], strides: &'a [isize], itemsize: usize) -> Region<'a> {
    Region {
        ptr,
        shape,
        strides,
        itemsize,
    }
}

fn conflict(r: Result<BorrowToken, Error>) -> (Access, Access) {
    match r {
        Err(Error::BorrowConflict { requested, held }) => (requested, held),
        other => panic!("expected a borrow conflict, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Basic rules on the process-wide registry.

#[test]
fn shared_and_exclusive_rules() {
    let p = window(1);
    let r = region(p, &[16], &[8], 8);
    let s1 = acquire(r, Access::Shared).unwrap();
    let s2 = acquire(r, Access::Shared).unwrap();
    assert!(s1.is_registered() && s2.is_registered());
    assert_eq!(
        conflict(acquire(r, Access::Exclusive)),
        (Access::Exclusive, Access::Shared)
    );
    drop(s1);
    assert!(acquire(r, Access::Exclusive).is_err());
    drop(s2);
    let e = acquire(r, Access::Exclusive).unwrap();
    assert_eq!(
        conflict(acquire(r, Access::Shared)),
        (Access::Shared, Access::Exclusive)
    );
    assert_eq!(
        conflict(acquire(r, Access::Exclusive)),
        (Access::Exclusive, Access::Exclusive)
    );
    // A single overlapping byte at either end conflicts; the byte after does not.
    assert!(acquire(region(p + 127, &[], &[], 1), Access::Shared).is_err());
    assert!(acquire(region(p - 7, &[], &[], 8), Access::Shared).is_err());
    let after = acquire(region(p + 128, &[], &[], 8), Access::Exclusive).unwrap();
    let before = acquire(region(p - 8, &[], &[], 8), Access::Exclusive).unwrap();
    drop((e, after, before));
    let again = acquire(r, Access::Exclusive).unwrap();
    drop(again);
}

#[test]
fn interleaved_views_can_both_be_written() {
    let p = window(2);
    // a[::2] and a[1::2] of 10 f64
    let even = acquire(region(p, &[5], &[16], 8), Access::Exclusive).unwrap();
    let odd = acquire(region(p + 8, &[5], &[16], 8), Access::Exclusive).unwrap();
    // the whole array conflicts with both
    assert!(acquire(region(p, &[10], &[8], 8), Access::Shared).is_err());
    // a[::-2] starts at a[9] (odd) and walks down: same elements as a[1::2]
    assert_eq!(
        conflict(acquire(region(p + 72, &[5], &[-16], 8), Access::Shared)),
        (Access::Shared, Access::Exclusive)
    );
    drop(odd);
    let rev = acquire(region(p + 72, &[5], &[-16], 8), Access::Exclusive).unwrap();
    drop((even, rev));
}

#[test]
fn disjoint_rows_columns_and_fields() {
    let p = window(3);
    // 4×6 f64 matrix, C order: strides (48, 8)
    let col = |j: usize| region(p + 8 * j, &[4], &[48], 8);
    let c0 = acquire(col(0), Access::Exclusive).unwrap();
    let c3 = acquire(col(3), Access::Exclusive).unwrap();
    assert!(acquire(col(3), Access::Shared).is_err());
    // rows 1..3 overlap every column
    assert!(acquire(region(p + 48, &[2, 6], &[48, 8], 8), Access::Shared).is_err());
    drop((c0, c3));
    // blocks [0:2, 0:3] and [0:2, 3:6], and [2:4, :] transposed
    let b1 = acquire(region(p, &[2, 3], &[48, 8], 8), Access::Exclusive).unwrap();
    let b2 = acquire(region(p + 24, &[2, 3], &[48, 8], 8), Access::Exclusive).unwrap();
    let b3 = acquire(region(p + 96, &[6, 2], &[8, 48], 8), Access::Exclusive).unwrap();
    drop((b1, b2, b3));
    // structured array of 10 records {a: u8 @0, b: i32 @4, c: f64 @8}, 16 bytes each
    let q = p + 4096;
    let fa = acquire(region(q, &[10], &[16], 1), Access::Exclusive).unwrap();
    let fb = acquire(region(q + 4, &[10], &[16], 4), Access::Exclusive).unwrap();
    let fc = acquire(region(q + 8, &[10], &[16], 8), Access::Exclusive).unwrap();
    // a 2-byte view straddling a and padding does not touch b; one straddling b and c does
    let pad = acquire(region(q + 1, &[10], &[16], 3), Access::Shared).unwrap();
    assert!(acquire(region(q + 6, &[10], &[16], 4), Access::Shared).is_err());
    drop((fa, fb, fc, pad));
}

#[test]
fn empty_and_zero_d_regions() {
    let p = window(4);
    let whole = acquire(region(p, &[100], &[1], 1), Access::Exclusive).unwrap();
    // zero-length dimensions touch nothing, whatever the strides
    for (shape, strides) in [
        (&[0usize][..], &[1isize][..]),
        (&[3, 0, 5][..], &[7, -3, 0][..]),
        (&[0, 4][..], &[isize::MIN, isize::MAX][..]),
    ] {
        let t = acquire(region(p, shape, strides, 8), Access::Exclusive).unwrap();
        assert!(!t.is_registered());
        assert!(!has_internal_overlap(region(p, shape, strides, 8)));
    }
    // zero item size touches nothing either
    assert!(!acquire(region(p, &[4], &[1], 0), Access::Exclusive)
        .unwrap()
        .is_registered());
    // a 0-d region is one element
    assert!(acquire(region(p + 99, &[], &[], 1), Access::Shared).is_err());
    let outside = acquire(region(p + 100, &[], &[], 4), Access::Exclusive).unwrap();
    assert!(!has_internal_overlap(region(p, &[], &[], 8)));
    drop((whole, outside));
}

#[test]
fn zero_and_negative_strides() {
    let p = window(5);
    // a broadcast row (stride 0) touches one element only
    let b = acquire(region(p + 16, &[1000, 3], &[0, 8], 8), Access::Exclusive).unwrap();
    let left = acquire(region(p, &[2], &[8], 8), Access::Exclusive).unwrap();
    let right = acquire(region(p + 40, &[2], &[8], 8), Access::Exclusive).unwrap();
    assert!(acquire(region(p + 32, &[1], &[8], 8), Access::Shared).is_err());
    drop((b, left, right));
    // a reversed view is the same memory
    let fwd = acquire(region(p, &[10], &[8], 8), Access::Shared).unwrap();
    assert!(acquire(region(p + 72, &[10], &[-8], 8), Access::Exclusive).is_err());
    drop(fwd);
}

#[test]
fn internal_overlap_cases() {
    let p = window(7);
    let yes = |shape: &[usize], strides: &[isize], itemsize| {
        has_internal_overlap(region(p, shape, strides, itemsize))
    };
    assert!(!yes(&[10], &[8], 8));
    assert!(!yes(&[10], &[-8], 8));
    assert!(!yes(&[4, 5], &[40, 8], 8));
    assert!(!yes(&[5, 4], &[8, 40], 8)); // transposed
    assert!(!yes(&[3, 4], &[-40, 16], 8)); // a[::-1, ::2]
    assert!(!yes(&[2, 2], &[24, 16], 8)); // 0, 16, 24, 40
    assert!(!yes(&[1, 7], &[0, 8], 8)); // zero stride on a unit dimension
    assert!(yes(&[3], &[0], 8)); // broadcast
    assert!(yes(&[3, 3], &[8, 8], 8)); // sliding diagonal trick
    assert!(yes(&[3], &[4], 8)); // stride below the item
    assert!(yes(&[4, 3], &[16, 8], 8)); // rolling window
    assert!(yes(&[3, 4], &[24, -16], 8)); // 24·2 − 16·3 = 0
    assert!(!yes(&[2, 3], &[24, -16], 8)); // 0,-16,-32,24,8,-8
                                           // more than the inline capacity, nested: no overlap
    let shape = [2usize; 10];
    let strides: Vec<isize> = (0..10).map(|k| 8 << k).collect();
    assert!(!yes(&shape, &strides, 8));
    // mismatched shape and strides are undecided, hence true
    assert!(yes(&[3, 3], &[8], 8));
    // overflowing layouts never panic
    assert!(yes(&[usize::MAX, usize::MAX], &[isize::MIN, isize::MAX], 8));
}

#[test]
fn wild_and_overflowing_regions_are_conservative() {
    // shape/strides mismatch: everything
    let w = normalize(4096, &[3, 3], &[8], 8).unwrap();
    assert!(w.wild);
    let any = normalize(1 << 40, &[2], &[8], 8).unwrap();
    assert_eq!(norm_overlap(&w, &any, MAX_WORK), Answer::Overlap);
    // extent past the end of the address space
    let big = normalize(usize::MAX - 10, &[4], &[8], 8).unwrap();
    assert!(big.wild);
    // negative extent below address 0
    let low = normalize(8, &[4], &[-8], 8).unwrap();
    assert!(low.wild);
    // huge products
    let huge = normalize(0, &[usize::MAX; 64], &[isize::MIN; 64], 8).unwrap();
    assert!(huge.wild);
    // none of it panics in a local registry, and wild regions conflict with anything
    let mut reg = Registry::new();
    let a = reg.insert(any, Access::Exclusive, MAX_WORK).unwrap();
    assert_eq!(
        reg.insert(huge, Access::Shared, MAX_WORK),
        Err(Access::Exclusive)
    );
    assert!(reg.remove(a).is_some());
    assert!(reg.remove(a).is_none(), "removing twice is ignored");
    assert_eq!(reg.len(), 0);
}

#[test]
fn tokens_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<BorrowToken>();
}

#[test]
fn release_on_another_thread() {
    let p = window(8);
    let r = region(p, &[64], &[1], 1);
    let t = acquire(r, Access::Exclusive).unwrap();
    std::thread::spawn(move || drop(t)).join().unwrap();
    drop(acquire(r, Access::Exclusive).unwrap());
}

#[test]
fn many_shared_borrows_of_one_memory() {
    let p = window(9);
    let r = region(p, &[1000], &[8], 8);
    let tokens: Vec<_> = (0..1000)
        .map(|_| acquire(r, Access::Shared).unwrap())
        .collect();
    assert!(acquire(region(p + 8 * 999, &[], &[], 8), Access::Exclusive).is_err());
    drop(tokens);
    drop(acquire(r, Access::Exclusive).unwrap());
}

// ---------------------------------------------------------------------------------------
// Brute-force reference.

#[derive(Clone, Debug)]
struct Reg {
    ptr: usize,
    shape: Vec<usize>,
    strides: Vec<isize>,
    itemsize: usize,
}

impl Reg {
    fn region(&self) -> Region<'_> {
        region(self.ptr, &self.shape, &self.strides, self.itemsize)
    }

    fn norm(&self) -> Option<Norm> {
        normalize(self.ptr, &self.shape, &self.strides, self.itemsize)
    }

    /// Start address of every element.
    fn starts(&self) -> Vec<i128> {
        let mut out = vec![self.ptr as i128];
        for (&n, &s) in self.shape.iter().zip(&self.strides) {
            out = out
                .iter()
                .flat_map(|&a| (0..n).map(move |i| a + i as i128 * s as i128))
                .collect();
        }
        out
    }

    fn bytes(&self) -> BTreeSet<i128> {
        self.starts()
            .into_iter()
            .flat_map(|a| a..a + self.itemsize as i128)
            .collect()
    }

    fn brute_internal(&self) -> bool {
        let mut s = self.starts();
        s.sort_unstable();
        s.windows(2).any(|w| w[1] - w[0] < self.itemsize as i128)
    }
}

fn brute_overlap(a: &Reg, b: &Reg) -> bool {
    !a.bytes().is_disjoint(&b.bytes())
}

/// The bytes a normalized region stands for.
fn norm_bytes(n: &Norm) -> BTreeSet<i128> {
    let mut starts = vec![n.first as i128];
    for d in n.dims.as_slice() {
        starts = starts
            .iter()
            .flat_map(|&a| (0..=d.max_index).map(move |i| a + (i * d.stride) as i128))
            .collect();
    }
    starts
        .into_iter()
        .flat_map(|a| a..a + n.itemsize as i128)
        .collect()
}

fn reg_strategy(max_ndim: usize, max_n: usize, max_stride: isize) -> impl Strategy<Value = Reg> {
    (0..=max_ndim)
        .prop_flat_map(move |nd| {
            (
                0usize..96,
                vec(prop_oneof![1 => Just(0usize), 15 => 1..=max_n], nd),
                vec(-max_stride..=max_stride, nd),
                prop_oneof![4 => 1usize..=8, 1 => 9usize..=24],
            )
        })
        .prop_map(|(off, shape, strides, itemsize)| Reg {
            ptr: 4096 + off,
            shape,
            strides,
            itemsize,
        })
}

/// Checks the bounded answer against the exact one.
fn check_bounded(bounded: Answer, exact: bool) -> Result<(), TestCaseError> {
    match bounded {
        Answer::Disjoint => prop_assert!(!exact, "said disjoint, but they overlap"),
        Answer::Overlap => prop_assert!(exact, "said overlap, but they are disjoint"),
        Answer::Undecided => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Normalization keeps exactly the bytes of the region.
    #[test]
    fn normalize_keeps_the_byte_set(r in reg_strategy(4, 5, 24)) {
        let bytes = r.bytes();
        match r.norm() {
            None => prop_assert!(bytes.is_empty()),
            Some(n) => {
                prop_assert!(!n.wild);
                prop_assert_eq!(n.first as i128, *bytes.first().unwrap());
                prop_assert_eq!(n.last as i128, *bytes.last().unwrap());
                prop_assert_eq!(norm_bytes(&n), bytes);
                let d = n.dims.as_slice();
                prop_assert!(d.windows(2).all(|w| w[0].stride < w[1].stride));
                prop_assert!(d.iter().all(|x| x.stride > n.itemsize && x.max_index > 0));
            }
        }
    }

    /// Pairwise overlap: exact with unbounded work, sound within the bound.
    #[test]
    fn pair_overlap_matches_brute_force(a in reg_strategy(4, 5, 24), b in reg_strategy(4, 5, 24)) {
        let exact = brute_overlap(&a, &b);
        match (a.norm(), b.norm()) {
            (Some(na), Some(nb)) => {
                prop_assert_eq!(norm_overlap(&na, &nb, u32::MAX) == Answer::Overlap, exact);
                prop_assert_eq!(norm_overlap(&nb, &na, u32::MAX) == Answer::Overlap, exact);
                check_bounded(norm_overlap(&na, &nb, MAX_WORK), exact)?;
                check_bounded(norm_overlap(&na, &nb, 3), exact)?;
            }
            _ => prop_assert!(!exact),
        }
    }

    /// Many dimensions (past the inline capacities) and larger strides.
    #[test]
    fn pair_overlap_many_dims(a in reg_strategy(8, 3, 200), b in reg_strategy(8, 3, 200)) {
        let exact = brute_overlap(&a, &b);
        match (a.norm(), b.norm()) {
            (Some(na), Some(nb)) => {
                prop_assert_eq!(norm_overlap(&na, &nb, u32::MAX) == Answer::Overlap, exact);
                check_bounded(norm_overlap(&na, &nb, MAX_WORK), exact)?;
            }
            _ => prop_assert!(!exact),
        }
    }

    /// Internal overlap: exact with unbounded work, sound within the bound.
    #[test]
    fn internal_overlap_matches_brute_force(r in reg_strategy(5, 5, 40)) {
        let exact = r.brute_internal();
        let unbounded = internal_overlap(&r.shape, &r.strides, r.itemsize, u32::MAX);
        prop_assert_eq!(unbounded == Answer::Overlap, exact, "{:?}", unbounded);
        check_bounded(internal_overlap(&r.shape, &r.strides, r.itemsize, MAX_WORK), exact)?;
        check_bounded(internal_overlap(&r.shape, &r.strides, r.itemsize, 2), exact)?;
        prop_assert!(!exact || has_internal_overlap(r.region()));
    }
}

// ---------------------------------------------------------------------------------------
// The registry against a model.

#[derive(Clone, Debug)]
enum Op {
    Acquire(Reg, bool),
    Release(usize),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (reg_strategy(3, 4, 20), any::<bool>()).prop_map(|(r, e)| Op::Acquire(r, e)),
        2 => any::<usize>().prop_map(Op::Release),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// A local registry accepts an acquisition exactly when no live borrow conflicts with it
    /// (brute-force byte sets), and keeps its bucket invariants.
    #[test]
    fn registry_matches_model(ops in vec(op_strategy(), 1..80)) {
        let mut reg = Registry::new();
        let mut live: Vec<(u32, BTreeSet<i128>, bool)> = Vec::new();
        for op in ops {
            match op {
                Op::Acquire(r, excl) => {
                    let bytes = r.bytes();
                    let blocker = live
                        .iter()
                        .find(|(_, b, e)| (excl || *e) && !b.is_disjoint(&bytes));
                    let access = if excl { Access::Exclusive } else { Access::Shared };
                    match r.norm() {
                        None => prop_assert!(bytes.is_empty()),
                        Some(n) => {
                            let got = reg.insert(n, access, u32::MAX);
                            match (got, blocker) {
                                (Ok(slot), None) => live.push((slot, bytes, excl)),
                                (Err(_), Some(_)) => {}
                                (got, blocker) => prop_assert!(false, "registry {:?}, model {:?}", got, blocker.map(|b| b.2)),
                            }
                        }
                    }
                }
                Op::Release(i) => {
                    if !live.is_empty() {
                        let (slot, _, _) = live.swap_remove(i % live.len());
                        prop_assert!(reg.remove(slot).is_some());
                    }
                }
            }
            reg.check_invariants();
            prop_assert_eq!(reg.len(), live.len());
        }
    }
}

#[test]
fn registry_stays_balanced() {
    let mut reg = Registry::new();
    let slots: Vec<u32> = (0..20_000u64)
        .map(|i| {
            let n = normalize((1 << 30) + 64 * i as usize, &[8], &[8], 8).unwrap();
            reg.insert(n, Access::Exclusive, MAX_WORK).unwrap()
        })
        .collect();
    reg.check_invariants();
    // insertion in address order: buckets and class lists stay consistent
    for s in slots.iter().step_by(2) {
        reg.remove(*s).unwrap();
    }
    reg.check_invariants();
    assert_eq!(reg.len(), 10_000);
}

// ---------------------------------------------------------------------------------------
// Threads.

/// Threads acquire and release random (strided) regions of a small made-up memory; every
/// live borrow marks its bytes, and a byte marked by an exclusive borrow and any other live
/// borrow at once is a registry bug.
#[test]
fn threads_never_hold_overlapping_exclusive_borrows() {
    const BYTES: usize = 64;
    const EXCL: u32 = 1 << 16;
    let p = window(10);
    let marks: Arc<Vec<AtomicU32>> = Arc::new((0..BYTES).map(|_| AtomicU32::new(0)).collect());
    let granted = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let (marks, granted, refused) = (marks.clone(), granted.clone(), refused.clone());
            std::thread::spawn(move || {
                let mut rng = 0x1234_5678u32 ^ (t.wrapping_mul(0x9E37_79B9) | 1);
                let mut next = move |m: u32| {
                    rng ^= rng << 13;
                    rng ^= rng >> 17;
                    rng ^= rng << 5;
                    rng % m
                };
                for _ in 0..20_000 {
                    let itemsize = 1 + next(4) as usize;
                    let n = 1 + next(6) as usize;
                    let stride = itemsize as isize * (1 + next(3) as isize);
                    let span = stride as usize * (n - 1) + itemsize;
                    if span > BYTES {
                        continue;
                    }
                    let off = next((BYTES - span + 1) as u32) as usize;
                    let excl = next(2) == 0;
                    let r = Reg {
                        ptr: p + off,
                        shape: vec![n],
                        strides: vec![stride],
                        itemsize,
                    };
                    let access = if excl {
                        Access::Exclusive
                    } else {
                        Access::Shared
                    };
                    match acquire(r.region(), access) {
                        Ok(token) => {
                            granted.fetch_add(1, Ordering::Relaxed);
                            let add = if excl { EXCL } else { 1 };
                            let bytes: Vec<usize> =
                                r.bytes().into_iter().map(|b| b as usize - p).collect();
                            for &b in &bytes {
                                let prev = marks[b].fetch_add(add, Ordering::SeqCst);
                                assert!(
                                    if excl { prev == 0 } else { prev < EXCL },
                                    "byte {b} marked {prev:#x} under a new {access} borrow"
                                );
                            }
                            std::hint::spin_loop();
                            for &b in &bytes {
                                marks[b].fetch_sub(add, Ordering::SeqCst);
                            }
                            drop(token);
                        }
                        Err(Error::BorrowConflict { .. }) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("unexpected error {e}"),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (g, r) = (
        granted.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );
    assert!(g > 10_000, "granted {g}");
    assert!(r > 0, "no contention was exercised");
    assert!(marks.iter().all(|m| m.load(Ordering::Relaxed) == 0));
}

// ---------------------------------------------------------------------------------------
// Embedded CPython: numpy views of one base array.

const VIEWS_PY: &str = r#"
import numpy as np
from numpy._core import _multiarray_tests as mt

NBYTES = 96
BASE = np.zeros(NBYTES, dtype=np.uint8)
DTYPES = {1: 'u1', 2: '<u2', 4: '<u4', 8: '<f8'}

def make(spec):
    kind, itemsize = spec[0], spec[1]
    dt = np.dtype(DTYPES[itemsize])
    if kind == 0:
        flat = BASE.view(dt)
        n = flat.size
        divisors = [d for d in range(1, n + 1) if n % d == 0]
        m = flat.reshape(divisors[spec[2] % len(divisors)], -1)
        def sl(start, stop, step):
            return slice(start, stop, step if step != 0 else 1)
        v = m[sl(*spec[3:6]), sl(*spec[6:9])]
        return v.T if spec[9] else v
    seed, ndim = spec[2], spec[3]
    shape = list(spec[4:4 + ndim])
    strides = list(spec[7:7 + ndim])
    def bounds():
        low = -sum(min(0, s) * (k - 1) for k, s in zip(shape, strides))
        high = sum(max(0, s) * (k - 1) for k, s in zip(shape, strides)) + itemsize
        return low, high
    low, high = bounds()
    while low + high > NBYTES:
        i = max(range(ndim), key=lambda j: shape[j])
        shape[i] -= 1
        low, high = bounds()
    offset = low + seed % (NBYTES - high - low + 1)
    return np.ndarray(tuple(shape), dtype=dt, buffer=BASE, offset=offset, strides=tuple(strides))

def info(v):
    return (v.__array_interface__['data'][0], v.shape, v.strides, v.itemsize)

def brute_internal(v):
    if v.size == 0:
        return False
    if v.ndim == 0:
        return False
    idx = np.indices(v.shape).reshape(v.ndim, -1)
    offs = np.sort((idx * np.array(v.strides).reshape(-1, 1)).sum(axis=0))
    return bool(np.any(np.diff(offs) < v.itemsize))

def case(spec_a, spec_b):
    a, b = make(spec_a), make(spec_b)
    return (info(a), info(b), bool(np.shares_memory(a, b)),
            brute_internal(a), bool(mt.internal_overlap(a)),
            brute_internal(b), bool(mt.internal_overlap(b)))
"#;

fn view_spec() -> impl Strategy<Value = Vec<i64>> {
    let itemsize = prop_oneof![Just(1i64), Just(2), Just(4), Just(8)];
    let slices = (
        itemsize.clone(),
        0i64..32,
        vec(-14i64..14, 6),
        any::<bool>(),
    )
        .prop_map(|(is, rows, mut s, t)| {
            // steps are never 0 (Python would reject them): map 0 to 1
            for k in [2usize, 5] {
                s[k] = if s[k] == 0 { 1 } else { s[k].clamp(-4, 4) };
            }
            let mut v = vec![0, is, rows];
            v.extend(s);
            v.push(t as i64);
            v
        });
    let strided = (
        itemsize,
        0i64..1000,
        0i64..=3,
        vec(1i64..=5, 3),
        vec(-24i64..=24, 3),
    )
        .prop_map(|(is, seed, nd, shape, strides)| {
            let mut v = vec![1, is, seed, nd];
            v.extend(shape);
            v.extend(strides);
            v
        });
    prop_oneof![slices, strided]
}

type Info = (usize, Vec<usize>, Vec<isize>, usize);

fn info_reg(i: &Info) -> Reg {
    Reg {
        ptr: i.0,
        shape: i.1.clone(),
        strides: i.2.clone(),
        itemsize: i.3,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Conflict ⇔ `np.shares_memory(a, b)` (exact), internal overlap ⇔ numpy's
    /// `internal_overlap` and a brute force over the element offsets numpy reports.
    #[test]
    fn numpy_views_agree_with_shares_memory(sa in view_spec(), sb in view_spec()) {
        let code = CString::new(VIEWS_PY).unwrap();
        let (ia, ib, shares, bia, nia, bib, nib) = Python::attach(|py| {
            let m = PyModule::from_code(py, &code, c"views.py", c"views").unwrap();
            m.getattr("case")
                .unwrap()
                .call1((sa.clone(), sb.clone()))
                .unwrap()
                .extract::<(Info, Info, bool, bool, bool, bool, bool)>()
                .unwrap()
        });
        let (ra, rb) = (info_reg(&ia), info_reg(&ib));
        // numpy's own two answers agree with each other
        prop_assert_eq!(bia, nia);
        prop_assert_eq!(bib, nib);
        // the exact solver, and the bounded one through the public function
        prop_assert_eq!(internal_overlap(&ra.shape, &ra.strides, ra.itemsize, u32::MAX) == Answer::Overlap, nia);
        prop_assert_eq!(internal_overlap(&rb.shape, &rb.strides, rb.itemsize, u32::MAX) == Answer::Overlap, nib);
        check_bounded(internal_overlap(&ra.shape, &ra.strides, ra.itemsize, MAX_WORK), nia)?;
        prop_assert!(!nia || has_internal_overlap(ra.region()));
        // pairwise: exact, bounded, and through the process-wide registry
        let bounded = match (ra.norm(), rb.norm()) {
            (Some(na), Some(nb)) => {
                prop_assert_eq!(norm_overlap(&na, &nb, u32::MAX) == Answer::Overlap, shares);
                norm_overlap(&na, &nb, MAX_WORK)
            }
            _ => {
                prop_assert!(!shares);
                Answer::Disjoint
            }
        };
        check_bounded(bounded, shares)?;
        let ta = acquire(ra.region(), Access::Exclusive).unwrap();
        let tb = acquire(rb.region(), Access::Exclusive);
        prop_assert_eq!(tb.is_err(), bounded.conflicts());
        drop(tb);
        let tb2 = acquire(rb.region(), Access::Shared);
        prop_assert_eq!(tb2.is_err(), bounded.conflicts());
        drop((ta, tb2));
        let sa = acquire(ra.region(), Access::Shared).unwrap();
        let sb = acquire(rb.region(), Access::Shared).unwrap();
        drop((sa, sb));
    }
}

/// Structured arrays and a matrix from numpy, checked against `np.shares_memory`.
#[test]
fn numpy_fields_and_matrix_views() {
    Python::attach(|py| {
        let code = c"
import numpy as np
rec = np.zeros(10, dtype=[('a', 'u1'), ('b', '<i4'), ('c', '<f8')])
m = np.zeros((6, 8))
pairs = [
    (rec['a'], rec['b']), (rec['b'], rec['c']), (rec['a'], rec['c']), (rec['c'][::-1], rec['a']),
    (rec['c'][::2], rec[1::2]), (rec['c'][::2], rec[::2]),
    (m[:, 0], m[:, 1]), (m[0], m[1]), (m[::2], m[1::2]), (m[:, ::3], m[:, 1::3]),
    (m[:3, :4], m[3:, 4:]), (m.T[2], m[:, 2]), (m[1:5, 2:6].T, m[4, 5:]), (m[::-1, ::-2], m[:, ::2]),
]
out = [((x.__array_interface__['data'][0], x.shape, x.strides, x.itemsize),
        (y.__array_interface__['data'][0], y.shape, y.strides, y.itemsize),
        bool(np.shares_memory(x, y))) for x, y in pairs]
";
        let m = PyModule::from_code(py, code, c"fields.py", c"fields").unwrap();
        let out: Vec<(Info, Info, bool)> = m.getattr("out").unwrap().extract().unwrap();
        let mut disjoint = 0;
        for (ia, ib, shares) in out {
            let (ra, rb) = (info_reg(&ia), info_reg(&ib));
            let ta = acquire(ra.region(), Access::Exclusive).unwrap();
            let tb = acquire(rb.region(), Access::Exclusive);
            assert_eq!(tb.is_err(), shares, "{ia:?} vs {ib:?}");
            disjoint += tb.is_ok() as usize;
            drop((ta, tb));
        }
        assert_eq!(disjoint, 11);
    });
}

// ---------------------------------------------------------------------------------------
// Micro-measurement (run with `cargo test --release --lib borrow::tests::timing -- --ignored
// --nocapture`).

/// Nanoseconds this thread has spent on a CPU (Linux `schedstat`), so that time slices lost
/// to other processes on a loaded machine do not count.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Wall-clock and on-CPU nanoseconds per call of `f`.
fn ns_per(iters: u32, mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..iters / 10 {
        f();
    }
    let cpu0 = cpu_ns();
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    let wall = start.elapsed().as_nanos() as f64 / iters as f64;
    let cpu = match (cpu0, cpu_ns()) {
        (Some(a), Some(b)) => (b - a) as f64 / iters as f64,
        _ => f64::NAN,
    };
    (wall, cpu)
}

#[test]
#[ignore = "timing; run alone in release mode"]
fn timing() {
    let p = window(11);
    let shape = [1000usize];
    let strides = [8isize];
    let iters: u32 = std::env::var("PYBUF_TIMING_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let one = |ptr: usize, access| {
        let t = acquire(region(ptr, &shape, &strides, 8), access).unwrap();
        std::hint::black_box(&t);
        drop(t);
    };
    let empty = ns_per(iters, || one(p, Access::Exclusive));
    let empty_2d = ns_per(iters, || {
        let t = acquire(
            region(p, &[100, 40, 3], &[960, 24, 8], 8),
            Access::Exclusive,
        )
        .unwrap();
        drop(std::hint::black_box(t));
    });
    // 1000 live borrows of other memory, spread on both sides of the measured one
    let others: Vec<_> = (0..1000)
        .map(|i| {
            let q = p + (1 << 24) + i * 16384;
            acquire(region(q, &shape, &strides, 8), Access::Shared).unwrap()
        })
        .collect();
    let with_others_excl = ns_per(iters, || {
        one(p + (1 << 24) + 500 * 16384 + 8192, Access::Exclusive)
    });
    let with_others_shared = ns_per(iters, || {
        one(p + (1 << 24) + 500 * 16384 + 8192, Access::Shared)
    });
    drop(others);
    // 1000 live shared borrows of the same memory
    let q = p + (1 << 28);
    let same: Vec<_> = (0..1000)
        .map(|_| acquire(region(q, &[500], &[16], 8), Access::Shared).unwrap())
        .collect();
    let same_shared = ns_per(iters, || one(q, Access::Shared));
    // an exclusive borrow of the interleaved half checks all 1000 exactly
    let interleaved = ns_per(iters / 100, || {
        let t = acquire(region(q + 8, &[500], &[16], 8), Access::Exclusive).unwrap();
        drop(std::hint::black_box(t));
    });
    drop(same);
    let norm_only = ns_per(iters, || {
        std::hint::black_box(normalize(std::hint::black_box(p), &shape, &strides, 8));
    });
    let lock_only = ns_per(iters, || {
        drop(std::hint::black_box(lock()));
    });
    let mut local = Registry::new();
    let local_only = ns_per(iters, || {
        let n = normalize(std::hint::black_box(p), &shape, &strides, 8).unwrap();
        let slot = local.insert(n, Access::Exclusive, MAX_WORK).unwrap();
        drop(std::hint::black_box(local.remove(slot)));
    });
    for (what, (wall, cpu)) in [
        ("  part: normalize", norm_only),
        ("  part: lock + unlock", lock_only),
        ("  part: normalize + insert + remove, no lock", local_only),
        ("borrow+release, no other borrows", empty),
        ("borrow+release, 3-D contiguous, none live", empty_2d),
        (
            "exclusive, 1000 live shared on other memory",
            with_others_excl,
        ),
        (
            "shared, 1000 live shared on other memory",
            with_others_shared,
        ),
        ("shared, 1000 live shared on the same memory", same_shared),
        ("exclusive a[1::2], 1000 live shared a[::2]", interleaved),
    ] {
        eprintln!("{what:45} {wall:9.1} ns wall {cpu:9.1} ns on-CPU");
    }
}

// ---------------------------------------------------------------------------------------
// Through the core `Buffer` type, with real exporters.

/// Two handles of one `bytearray` never hand out aliasing `&mut`; interleaved numpy views can
/// be written at the same time, and the writes land where numpy sees them.
#[test]
fn buffers_of_real_exporters() {
    use crate::{Buffer1, Buffer2};
    Python::attach(|py| {
        let code = c"
import numpy as np
ba = bytearray(16)
a = np.zeros(10)
even, odd = a[::2], a[1::2]
m = np.zeros((3, 4))
diag = np.lib.stride_tricks.as_strided(m, (3, 3), (8, 8))
";
        let m = PyModule::from_code(py, code, c"real.py", c"real").unwrap();
        let get = |name: &str| m.getattr(name).unwrap();

        let h1 = Buffer1::<u8>::get_mut(&get("ba")).unwrap();
        let h2 = Buffer1::<u8>::get_mut(&get("ba")).unwrap();
        let w1 = h1.write().unwrap();
        assert!(matches!(
            h2.write(),
            Err(Error::BorrowConflict {
                requested: Access::Exclusive,
                held: Access::Exclusive
            })
        ));
        assert!(h2.read().is_err());
        assert!(
            h2.item(3).is_err(),
            "a momentary read races the live write guard"
        );
        drop(w1);
        let (r1, r2) = (h1.read().unwrap(), h2.read().unwrap());
        drop((r1, r2));

        let even = Buffer1::<f64>::get_mut(&get("even")).unwrap();
        let odd = Buffer1::<f64>::get_mut(&get("odd")).unwrap();
        let whole = Buffer1::<f64>::get(&get("a")).unwrap();
        let mut we = even.write().unwrap();
        let mut wo = odd.write().unwrap();
        we.view_mut().fill(1.0);
        wo.view_mut().fill(2.0);
        assert!(whole.read().is_err());
        drop((we, wo));
        let seen: Vec<f64> = get("a").call_method0("tolist").unwrap().extract().unwrap();
        assert_eq!(seen, [1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);

        let diag = Buffer2::<f64>::get_mut(&get("diag")).unwrap();
        assert!(matches!(diag.write(), Err(Error::SelfOverlapping { .. })));
        assert!(diag.read().is_ok());
    });
}
