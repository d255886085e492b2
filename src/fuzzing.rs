//! Fuzzing entry point for layout validation (internal; behind the `fuzzing` feature).
//!
//! [`check_layout`] fills a `Py_buffer` from a synthetic [`Descriptor`] (no Python involved),
//! runs pybuf's validation on it and checks the validation against an independent reference
//! model computed in `i128`:
//!
//! - the descriptor is accepted exactly when the reference model says it is valid;
//! - when accepted, every in-bounds index (all of them for small layouts, corners and a
//!   pseudo-random sample otherwise) addresses bytes within `[lowest, highest + itemsize)`
//!   of the extent implied by the shape and strides, and no address wraps around;
//! - when accepted and small, the layout is laid over real memory and the copy engine's
//!   gather (C and F order) and scatter are compared with a naive element-by-element copy,
//!   with guard bytes on both sides that must stay untouched.
//!
//! Any disagreement panics, which is what fuzzers and the randomized test look for.

use ndarray::{Dimension, IxDyn, Order};
use pyo3::ffi;

use crate::copy;
use crate::layout::{Layout, MAX_NDIM};

/// The most entries [`check_layout`] stores per array; larger `ndim` values are clamped to it.
pub const MAX_FUZZ_NDIM: usize = 256;

/// A synthetic buffer description, as an exporter would fill `Py_buffer`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Descriptor {
    /// `Py_buffer.ndim` (clamped to [`MAX_FUZZ_NDIM`]).
    pub ndim: i32,
    /// `Py_buffer.shape`; `None` is NULL. Padded with zeros or cut to `ndim` entries.
    pub shape: Option<Vec<isize>>,
    /// `Py_buffer.strides`; `None` is NULL. Padded or cut like `shape`.
    pub strides: Option<Vec<isize>>,
    /// `Py_buffer.suboffsets`; `None` is NULL. Padded with -1 or cut to `ndim` entries.
    pub suboffsets: Option<Vec<isize>>,
    /// `Py_buffer.itemsize`.
    pub itemsize: isize,
    /// `Py_buffer.len`.
    pub len: isize,
    /// `Py_buffer.buf`, as an address (never dereferenced).
    pub buf: usize,
}

/// What validation decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Refused, with pybuf's reason.
    Refused(String),
    /// Accepted; `copied` tells whether the copy engine was also exercised on real memory.
    Accepted {
        /// Number of items.
        items: usize,
        /// Whether the gather/scatter comparison ran.
        copied: bool,
    },
}

/// A little-endian reader over fuzzer bytes that yields zeros when exhausted.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u64(&mut self) -> u64 {
        (0..8).fold(0u64, |acc, i| acc | (u64::from(self.u8()) << (8 * i)))
    }

    /// Mostly small values, sometimes extreme ones.
    fn small_or_wild(&mut self, small: impl Fn(u8) -> isize) -> isize {
        match self.u8() {
            0..=219 => small(self.u8()),
            220..=229 => isize::MAX - isize::from(self.u8()),
            230..=239 => isize::MIN + isize::from(self.u8()),
            240..=247 => (1isize << (self.u8() % 63)).wrapping_sub(isize::from(self.u8() % 3)),
            _ => self.u64() as isize,
        }
    }
}

impl Descriptor {
    /// Decodes fuzzer input into a descriptor biased towards interesting layouts: small
    /// shapes and strides that are multiples of the item size, some negative, some zero, and
    /// a `len` that matches the shape most of the time, with occasional extreme values.
    pub fn from_bytes(data: &[u8]) -> Descriptor {
        let mut b = Bytes(data);
        let head = b.u8();
        let ndim: i32 = match head % 16 {
            0..=11 => i32::from(head % 16) % 6,
            12 => 64,
            13 => 65,
            14 => -i32::from(b.u8() % 3) - 1,
            _ => i32::from(b.u8()),
        };
        let presence = b.u8();
        let itemsize = b.small_or_wild(|x| [1, 2, 4, 8, 16, 3, 0, 12][usize::from(x % 8)]);
        let n = usize::try_from(ndim).unwrap_or(0).min(MAX_FUZZ_NDIM);
        let shape: Vec<isize> = (0..n)
            .map(|_| b.small_or_wild(|x| isize::from(x % 6)))
            .collect();
        let strides: Vec<isize> = (0..n)
            .map(|_| {
                b.small_or_wild(|x| {
                    let k = isize::from(x % 13) - 6;
                    if x & 0x80 != 0 {
                        k.wrapping_mul(itemsize.max(1))
                    } else {
                        k
                    }
                })
            })
            .collect();
        let suboffsets: Vec<isize> = (0..n)
            .map(|_| match b.u8() % 4 {
                0 => isize::from(b.u8()),
                _ => -1,
            })
            .collect();
        let items = shape
            .iter()
            .try_fold(1isize, |acc, &x| acc.checked_mul(x.max(0)));
        let natural_len = items
            .and_then(|i| i.checked_mul(itemsize))
            .unwrap_or(isize::MAX);
        let len = match b.u8() % 8 {
            0 => b.small_or_wild(isize::from),
            _ => natural_len,
        };
        let buf = match b.u8() % 8 {
            0 => 0,
            1 => usize::MAX - usize::from(b.u8()),
            2 => b.u64() as usize,
            3 => usize::from(b.u8()),
            _ => 0x1000_0000 + usize::from(b.u8() % 4) * 0x1000,
        };
        Descriptor {
            ndim,
            shape: (presence & 1 == 0).then_some(shape),
            strides: (presence & 2 == 0).then_some(strides),
            suboffsets: (presence & 12 == 12).then_some(suboffsets),
            itemsize,
            len,
            buf,
        }
    }
}

/// The reference model's view of a valid descriptor.
struct Reference {
    shape: Vec<usize>,
    strides: Vec<isize>,
    items: usize,
    indirect: bool,
    /// Lowest and highest byte offset of an item start, relative to `buf`.
    low: i128,
    high: i128,
}

/// Decides validity independently of `Layout::read`, in `i128` arithmetic.
fn reference(ndim: i32, d: &Descriptor, n: usize) -> Option<Reference> {
    let ndim = usize::try_from(ndim).ok().filter(|&k| k <= MAX_NDIM)?;
    debug_assert!(ndim <= n);
    let itemsize = usize::try_from(d.itemsize).ok()?;
    let len = usize::try_from(d.len).ok()?;
    let shape: Vec<usize> = match &d.shape {
        Some(s) => s[..ndim]
            .iter()
            .map(|&x| usize::try_from(x).ok())
            .collect::<Option<_>>()?,
        None if ndim == 0 => Vec::new(),
        None if ndim == 1 && itemsize > 0 && len % itemsize == 0 => vec![len / itemsize],
        None => return None,
    };
    let items = shape
        .iter()
        .try_fold(1usize, |acc, &x| acc.checked_mul(x))?;
    if items.checked_mul(itemsize)? != len {
        return None;
    }
    let strides: Vec<isize> = match &d.strides {
        Some(s) => s[..ndim].to_vec(),
        None => {
            let mut out = vec![0isize; ndim];
            let mut step = itemsize as i128;
            for k in (0..ndim).rev() {
                out[k] = step as isize;
                step *= shape[k].max(1) as i128;
                // only meaningful while it fits; empty buffers never use strides
                step = step.min(isize::MAX as i128);
            }
            out
        }
    };
    let indirect = d
        .suboffsets
        .as_ref()
        .is_some_and(|s| s[..ndim].iter().any(|&x| x >= 0));
    if items > 0 && d.buf == 0 {
        return None;
    }
    let (mut low, mut high) = (0i128, 0i128);
    if items > 0 {
        for (&n, &s) in shape.iter().zip(&strides) {
            let span = (n as i128 - 1) * s as i128;
            if span > isize::MAX as i128 || span < isize::MIN as i128 {
                return None;
            }
            if span < 0 {
                low += span;
            } else {
                high += span;
            }
        }
        let end = high + itemsize as i128;
        if low < isize::MIN as i128 || end > isize::MAX as i128 {
            return None;
        }
        if end - low > isize::MAX as i128 {
            return None;
        }
        if !indirect {
            let base = d.buf as i128;
            if base + low < 0 || base + end > usize::MAX as i128 {
                return None;
            }
        }
    }
    Some(Reference {
        shape,
        strides,
        items,
        indirect,
        low,
        high,
    })
}

fn padded(v: &Option<Vec<isize>>, n: usize, fill: isize) -> Option<Vec<isize>> {
    v.as_ref().map(|v| {
        let mut v = v.clone();
        v.resize(n, fill);
        v
    })
}

/// A small deterministic generator for index samples and memory patterns.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 17
    }
}

/// Runs pybuf's layout validation on `desc` and checks it against the reference model (see
/// the module documentation). Panics on any disagreement.
pub fn check_layout(desc: &Descriptor) -> Verdict {
    let ndim = desc.ndim.min(MAX_FUZZ_NDIM as i32);
    let n = usize::try_from(ndim).unwrap_or(0);
    let shape = padded(&desc.shape, n, 0);
    let strides = padded(&desc.strides, n, 0);
    let suboffsets = padded(&desc.suboffsets, n, -1);
    let desc = Descriptor {
        ndim,
        shape,
        strides,
        suboffsets,
        ..desc.clone()
    };
    let view = fill_view(&desc, desc.buf);
    // SAFETY: every non-NULL array of `view` points into a live Vec of `desc` holding `n`
    // entries, and `ndim <= n` whenever `ndim >= 0` (entries are only read for such `ndim`).
    // `buf` is never dereferenced by validation (no suboffset pointers are read).
    let result = unsafe { Layout::read(&view) };
    let expected = reference(ndim, &desc, n);
    let layout = match (result, expected) {
        (Err(reason), None) => return Verdict::Refused(reason),
        (Err(reason), Some(_)) => panic!("valid layout refused ({reason}): {desc:?}"),
        (Ok(layout), None) => panic!("invalid layout accepted as {layout:?}: {desc:?}"),
        (Ok(layout), Some(r)) => {
            check_accepted(&layout, &r, &desc);
            (layout, r)
        }
    };
    let (layout, r) = layout;
    let copied = !r.indirect && check_copies(&layout, &r, &desc);
    Verdict::Accepted {
        items: r.items,
        copied,
    }
}

/// A `Py_buffer` over the arrays of `desc` with data at `buf`.
fn fill_view(desc: &Descriptor, buf: usize) -> ffi::Py_buffer {
    fn ptr(v: &Option<Vec<isize>>) -> *mut ffi::Py_ssize_t {
        v.as_ref()
            .map_or(std::ptr::null_mut(), |v| v.as_ptr().cast_mut())
    }
    // SAFETY: `Py_buffer` is a C struct of integers and pointers; all zeros is a valid value.
    let mut view: ffi::Py_buffer = unsafe { std::mem::zeroed() };
    view.buf = buf as *mut std::ffi::c_void;
    view.len = desc.len;
    view.itemsize = desc.itemsize;
    view.readonly = 1;
    view.ndim = desc.ndim;
    view.shape = ptr(&desc.shape);
    view.strides = ptr(&desc.strides);
    view.suboffsets = ptr(&desc.suboffsets);
    view
}

/// Every index the check visits: all of them when few, else corners and a random sample.
fn sample_indices(shape: &[usize], items: usize, seed: u64) -> Vec<Vec<usize>> {
    const ALL: usize = 4096;
    let mut out = Vec::new();
    if items == 0 {
        return out;
    }
    if items <= ALL {
        let mut index = vec![0usize; shape.len()];
        for _ in 0..items {
            out.push(index.clone());
            for axis in (0..shape.len()).rev() {
                index[axis] += 1;
                if index[axis] < shape[axis] {
                    break;
                }
                index[axis] = 0;
            }
        }
        return out;
    }
    out.push(vec![0; shape.len()]);
    out.push(shape.iter().map(|&n| n - 1).collect());
    for axis in 0..shape.len() {
        let mut index = vec![0; shape.len()];
        index[axis] = shape[axis] - 1;
        out.push(index);
    }
    let mut rng = Lcg(seed);
    for _ in 0..256 {
        out.push(
            shape
                .iter()
                .map(|&n| (rng.next() % n as u64) as usize)
                .collect(),
        );
    }
    out
}

fn offset_of(index: &[usize], strides: &[isize]) -> i128 {
    index
        .iter()
        .zip(strides)
        .map(|(&i, &s)| i as i128 * s as i128)
        .sum()
}

fn contiguous_ref(shape: &[usize], strides: &[isize], itemsize: usize, items: usize) -> bool {
    if items == 0 {
        return true;
    }
    let mut expected = itemsize as i128;
    for (&n, &s) in shape.iter().zip(strides) {
        if n > 1 {
            if s as i128 != expected {
                return false;
            }
            expected *= n as i128;
        }
    }
    true
}

fn check_accepted(layout: &Layout<IxDyn>, r: &Reference, desc: &Descriptor) {
    assert_eq!(layout.len, r.items, "item count: {desc:?}");
    assert_eq!(layout.shape.slice(), &r.shape[..], "shape: {desc:?}");
    assert_eq!(
        layout.itemsize as isize, desc.itemsize,
        "itemsize: {desc:?}"
    );
    assert_eq!(layout.ptr as usize, desc.buf, "buf: {desc:?}");
    assert_eq!(
        layout.suboffsets.is_some(),
        r.indirect,
        "indirection: {desc:?}"
    );
    if r.items == 0 {
        return;
    }
    assert_eq!(layout.strides(), &r.strides[..], "strides: {desc:?}");
    if r.indirect {
        return;
    }
    let rev = |v: &[usize]| v.iter().rev().copied().collect::<Vec<_>>();
    let revs = |v: &[isize]| v.iter().rev().copied().collect::<Vec<_>>();
    assert_eq!(
        layout.is_c_contiguous(),
        contiguous_ref(&rev(&r.shape), &revs(&r.strides), layout.itemsize, r.items),
        "C contiguity: {desc:?}"
    );
    assert_eq!(
        layout.is_f_contiguous(),
        contiguous_ref(&r.shape, &r.strides, layout.itemsize, r.items),
        "F contiguity: {desc:?}"
    );
    let base = desc.buf as i128;
    let seed = desc.buf as u64 ^ r.items as u64;
    for index in sample_indices(&r.shape, r.items, seed) {
        // SAFETY: `index` is within the shape, and without suboffsets `address` only does
        // wrapping pointer arithmetic.
        let address = unsafe { layout.address(&index) } as usize as i128;
        let offset = offset_of(&index, &r.strides);
        assert_eq!(address, base + offset, "address of {index:?}: {desc:?}");
        assert!(
            r.low <= offset && offset <= r.high,
            "item {index:?} at offset {offset} outside [{}, {}]: {desc:?}",
            r.low,
            r.high
        );
        assert!(
            base + offset >= 0 && base + offset + layout.itemsize as i128 <= usize::MAX as i128,
            "item {index:?} wraps the address space: {desc:?}"
        );
    }
}

/// Lays the accepted layout over real memory and compares the copy engine with a naive copy.
/// Returns whether it ran (only for small layouts).
fn check_copies(layout: &Layout<IxDyn>, r: &Reference, desc: &Descriptor) -> bool {
    const GUARD: usize = 64;
    let itemsize = layout.itemsize;
    if r.items == 0 || r.items > 4096 || itemsize == 0 {
        return false;
    }
    let extent = r.high - r.low + itemsize as i128;
    if extent > 1 << 16 {
        return false;
    }
    let extent = extent as usize;
    let total = extent + 2 * GUARD;
    let mut rng = Lcg(total as u64 ^ (r.items as u64) << 20);
    let pattern: Vec<u8> = (0..total).map(|_| rng.next() as u8).collect();
    let mut memory = pattern.clone();
    // the item at index 0 sits `-low` bytes after the start of the extent
    let origin = GUARD + (-r.low) as usize;
    let relaid = Descriptor {
        buf: memory.as_mut_ptr() as usize + origin,
        ..desc.clone()
    };
    let view = fill_view(&relaid, relaid.buf);
    // SAFETY: as in `check_layout`; the arrays of `relaid` hold `ndim` entries.
    let real = unsafe { Layout::<IxDyn>::read(&view) }
        .unwrap_or_else(|e| panic!("refused when laid over real memory ({e}): {desc:?}"));
    let indices_c = sample_indices(&r.shape, r.items, 0);
    debug_assert_eq!(
        indices_c.len(),
        r.items,
        "small layouts enumerate every index"
    );
    let indices_f: Vec<Vec<usize>> = {
        let rev: Vec<usize> = r.shape.iter().rev().copied().collect();
        sample_indices(&rev, r.items, 0)
            .into_iter()
            .map(|mut i| {
                i.reverse();
                i
            })
            .collect()
    };
    for (order, indices) in [(Order::C, &indices_c), (Order::F, &indices_f)] {
        let mut expected = Vec::with_capacity(r.items * itemsize);
        for index in indices.iter() {
            let at = (origin as i128 + offset_of(index, &r.strides)) as usize;
            expected.extend_from_slice(&memory[at..at + itemsize]);
        }
        let mut out = vec![0u8; r.items * itemsize];
        // SAFETY: `real` describes items inside `memory` (checked above against the
        // reference extent), nothing writes `memory` during the call, and `out` is fresh
        // memory of `items * itemsize` bytes.
        unsafe { copy::gather(&real, out.as_mut_ptr(), order) };
        assert_eq!(out, expected, "gather in {order:?} order: {desc:?}");
    }
    assert_eq!(memory, pattern, "gather wrote to the source: {desc:?}");

    // scatter, only where distinct items do not share bytes (otherwise the last write wins
    // in an unspecified order)
    let mut starts: Vec<i128> = indices_c.iter().map(|i| offset_of(i, &r.strides)).collect();
    starts.sort_unstable();
    let disjoint = starts.windows(2).all(|w| w[1] - w[0] >= itemsize as i128);
    if disjoint {
        for (order, indices) in [(Order::C, &indices_c), (Order::F, &indices_f)] {
            let src: Vec<u8> = (0..r.items * itemsize).map(|_| rng.next() as u8).collect();
            let mut expected = memory.clone();
            for (k, index) in indices.iter().enumerate() {
                let at = (origin as i128 + offset_of(index, &r.strides)) as usize;
                expected[at..at + itemsize].copy_from_slice(&src[k * itemsize..][..itemsize]);
            }
            // SAFETY: `real` describes disjoint items inside `memory`, which nothing else
            // uses during the call; `src` holds `items * itemsize` bytes and is separate.
            unsafe { copy::scatter(&real, src.as_ptr(), order) };
            assert_eq!(memory, expected, "scatter in {order:?} order: {desc:?}");
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A randomized run of the fuzz target on stable Rust: `PYBUF_FUZZ_ITERS` inputs
    /// (default 20 000) of pseudo-random bytes, seeded by `PYBUF_FUZZ_SEED`.
    #[test]
    fn random_descriptors_agree_with_the_reference_model() {
        let iters: u64 = std::env::var("PYBUF_FUZZ_ITERS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20_000);
        let seed: u64 = std::env::var("PYBUF_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5eed);
        let mut rng = Lcg(seed);
        let (mut accepted, mut copied) = (0u64, 0u64);
        for _ in 0..iters {
            let len = (rng.next() % 96) as usize;
            let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            match check_layout(&Descriptor::from_bytes(&data)) {
                Verdict::Accepted { copied: c, .. } => {
                    accepted += 1;
                    copied += u64::from(c);
                }
                Verdict::Refused(_) => {}
            }
        }
        println!("layout fuzz: {iters} inputs, {accepted} accepted, {copied} copy-checked");
        // the generator must reach both outcomes and the copy engine, or it tests nothing
        assert!(accepted > iters / 10, "{accepted} of {iters} accepted");
        assert!(copied > iters / 20, "{copied} of {iters} copy-checked");
    }

    #[test]
    fn known_descriptors() {
        // a C-contiguous 3x4 of 8-byte items is accepted and copy-checked
        let d = Descriptor {
            ndim: 2,
            shape: Some(vec![3, 4]),
            strides: Some(vec![32, 8]),
            suboffsets: None,
            itemsize: 8,
            len: 96,
            buf: 0x1000,
        };
        assert_eq!(
            check_layout(&d),
            Verdict::Accepted {
                items: 12,
                copied: true
            }
        );
        // negative strides with the base at the end of the allocation
        let d = Descriptor {
            strides: Some(vec![-32, -8]),
            buf: 0x1000 + 88,
            ..d
        };
        assert!(matches!(check_layout(&d), Verdict::Accepted { .. }));
        // a stride that would put the last item beyond the address space is refused
        let d = Descriptor {
            strides: Some(vec![isize::MAX / 2, 8]),
            ..d
        };
        assert!(matches!(check_layout(&d), Verdict::Refused(_)));
        // 65 dimensions are refused, 64 accepted
        let d = Descriptor {
            ndim: 65,
            shape: Some(vec![1; 65]),
            strides: None,
            suboffsets: None,
            itemsize: 1,
            len: 1,
            buf: 0x1000,
        };
        assert!(matches!(check_layout(&d), Verdict::Refused(_)));
        let d = Descriptor { ndim: 64, ..d };
        assert!(matches!(check_layout(&d), Verdict::Accepted { .. }));
    }
}
