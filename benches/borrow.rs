//! Benchmark 2: Borrow + release: a `buf.read()` guard created and dropped, against rust-numpy's
//! borrow checking (`readonly()` on an already-cast array), with no other borrows live,
//! with 1,000 live borrows of other arrays, and with 1,000 live borrows of the same array.
//!
//! There is no raw floor here (CPython has no borrow tracking); the reference is
//! rust-numpy, and pybuf's own acquisition (`acquire` bench) for scale.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use numpy::{PyArray1, PyArrayMethods};
use pybuf::Buffer1;
use pyo3::prelude::*;

const LIVE: usize = 1000;

/// The two timed operations on `arr` (read borrows) plus exclusive borrows for reference.
fn bench_pair(
    g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    arr: &Bound<'_, PyAny>,
    with_exclusive: bool,
) {
    let buf = Buffer1::<f64>::get(arr).unwrap();
    g.bench_function("pybuf_read", |b| {
        b.iter(|| drop(black_box(buf.read().unwrap())))
    });
    let np = arr.cast::<PyArray1<f64>>().unwrap();
    g.bench_function("numpy_readonly", |b| {
        b.iter(|| drop(black_box(np.readonly())))
    });
    if with_exclusive {
        let buf_mut = Buffer1::<f64>::get_mut(arr).unwrap();
        g.bench_function("pybuf_write", |b| {
            b.iter(|| drop(black_box(buf_mut.write().unwrap())))
        });
        g.bench_function("numpy_readwrite", |b| {
            b.iter(|| drop(black_box(np.readwrite())))
        });
    }
}

fn borrow(c: &mut Criterion) {
    Python::attach(|py| {
        let data = common::module(
            py,
            c"import numpy as np\narr = np.arange(16, dtype=np.float64)\nothers = [np.zeros(16) for _ in range(1000)]\n",
        );
        let arr = common::attr(&data, "arr");
        let others: Vec<Bound<'_, PyAny>> = common::attr(&data, "others")
            .try_iter()
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(others.len(), LIVE);

        let mut g = c.benchmark_group("borrow_none_live");
        bench_pair(&mut g, &arr, true);
        g.finish();

        {
            // 1,000 live borrows of other arrays, in both libraries at once (each library only
            // sees its own, so holding both sets changes nothing for either).
            let bufs: Vec<Buffer1<f64>> = others.iter().map(|o| Buffer1::get(o).unwrap()).collect();
            let _guards: Vec<_> = bufs.iter().map(|b| b.read().unwrap()).collect();
            let _np_guards: Vec<_> = others
                .iter()
                .map(|o| o.cast::<PyArray1<f64>>().unwrap().readonly())
                .collect();
            let mut g = c.benchmark_group("borrow_1000_live_other");
            bench_pair(&mut g, &arr, false);
            g.finish();
        }

        {
            // 1,000 live borrows of the same array, each through its own handle.
            let bufs: Vec<Buffer1<f64>> = (0..LIVE).map(|_| Buffer1::get(&arr).unwrap()).collect();
            let _guards: Vec<_> = bufs.iter().map(|b| b.read().unwrap()).collect();
            let np = arr.cast::<PyArray1<f64>>().unwrap();
            let _np_guards: Vec<_> = (0..LIVE).map(|_| np.readonly()).collect();
            let mut g = c.benchmark_group("borrow_1000_live_same");
            bench_pair(&mut g, &arr, false);
            g.finish();
        }
    });
}

criterion_group! {
    name = benches;
    config = common::config(50);
    targets = borrow
}
criterion_main!(benches);
