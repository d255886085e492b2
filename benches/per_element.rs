//! Benchmark 6: The cost of safety per element: summing the 10^6 f64 of a 2-D array (1000 × 1000)
//! through `item((i, j))`, through a `ReadGuard` view (indexing `v[[i, j]]`, and ndarray's
//! own `sum()`), through `with(|v| v.sum())`, and through a raw pointer loop (the floor),
//! for C-contiguous, F-contiguous and strided (`a[::2, ::2]` of a 2000 × 2000 array)
//! layouts.
//!
//! The indexed loops (raw, `item`, `v[[i, j]]`) visit elements in memory order (the axis
//! with the smaller stride innermost) and add sequentially, so they do identical arithmetic;
//! ndarray's `sum()` picks its own order and unrolls, so compare it with care.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pybuf::Buffer2;
use pyo3::prelude::*;

const N: usize = 1000;

/// Calls `f(i, j)` for every index, the axis with the smaller byte stride innermost.
#[inline(always)]
fn for_each_index(strides: &[isize], mut f: impl FnMut(usize, usize)) {
    if strides[0].unsigned_abs() < strides[1].unsigned_abs() {
        for j in 0..N {
            for i in 0..N {
                f(i, j);
            }
        }
    } else {
        for i in 0..N {
            for j in 0..N {
                f(i, j);
            }
        }
    }
}

fn per_element(c: &mut Criterion) {
    Python::attach(|py| {
        let data = common::module(
            py,
            c"import numpy as np
rng = np.random.default_rng(2)
c_order = rng.random((1000, 1000))
f_order = np.asfortranarray(rng.random((1000, 1000)))
strided = rng.random((2000, 2000))[::2, ::2]
sums = {k: float(v.sum()) for k, v in [('c', c_order), ('f', f_order), ('strided', strided)]}
",
        );
        let sums = common::attr(&data, "sums");
        for (layout, name) in [("c", "c_order"), ("f", "f_order"), ("strided", "strided")] {
            let obj = common::attr(&data, name);
            let expected: f64 = sums.get_item(layout).unwrap().extract().unwrap();
            let close =
                |x: f64| assert!((x - expected).abs() < 1e-6 * expected, "{x} vs {expected}");
            let buf = Buffer2::<f64>::get(&obj).unwrap();
            let raw = common::RawView::get(&obj);
            let strides = raw.strides().to_vec();
            assert_eq!(raw.shape(), [N as isize, N as isize]);
            let base = raw.ptr();

            let raw_sum = || {
                let mut total = 0.0;
                for_each_index(&strides, |i, j| {
                    let offset = i as isize * strides[0] + j as isize * strides[1];
                    // SAFETY: (i, j) is within the shape; numpy's strides address aligned
                    // float64 items inside the array, which nothing writes meanwhile.
                    total += unsafe { base.offset(offset).cast::<f64>().read() };
                });
                total
            };
            let item_sum = || {
                let mut total = 0.0;
                for_each_index(&strides, |i, j| total += buf.item((i, j)).unwrap());
                total
            };
            let guard_index_sum = || {
                let guard = buf.read().unwrap();
                let v = guard.view();
                let mut total = 0.0;
                for_each_index(&strides, |i, j| total += v[[i, j]]);
                total
            };
            let guard_sum = || buf.read().unwrap().view().sum();
            let with_sum = || buf.with(|v| v.sum()).unwrap();
            for f in [
                &raw_sum as &dyn Fn() -> f64,
                &item_sum,
                &guard_index_sum,
                &guard_sum,
                &with_sum,
            ] {
                close(f());
            }

            let mut g = c.benchmark_group(format!("per_element_{layout}"));
            g.throughput(Throughput::Elements((N * N) as u64));
            g.bench_function("raw_ptr_loop", |b| b.iter(|| black_box(raw_sum())));
            g.bench_function("pybuf_item", |b| b.iter(|| black_box(item_sum())));
            g.bench_function("pybuf_guard_index", |b| {
                b.iter(|| black_box(guard_index_sum()))
            });
            g.bench_function("pybuf_guard_sum", |b| b.iter(|| black_box(guard_sum())));
            g.bench_function("pybuf_with_sum", |b| b.iter(|| black_box(with_sum())));
            g.finish();
        }
    });
}

criterion_group! {
    name = benches;
    config = common::config(10);
    targets = per_element
}
criterion_main!(benches);
