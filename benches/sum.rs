//! Benchmark 3: Sum of 10^7 contiguous f64 (80 MB).
//!
//! Every Rust variant acquires the buffer, sums the slice with the same 8-accumulator loop
//! (`common::sum8`) and releases it, so only the path to the slice differs. Floor: raw
//! `PyObject_GetBuffer` + `slice::from_raw_parts`. numpy's own `a.sum()` (pairwise, SIMD)
//! is called from Rust through the method call.
//!
//! numpy's timings are affected by `OPENBLAS_CORETYPE` / `OPENBLAS_L2_SIZE` on some
//! machines: `scripts/bench.sh` unsets both for this bench command.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pybuf::Buffer1;
use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;

const N: usize = 10_000_000;

fn sum(c: &mut Criterion) {
    Python::attach(|py| {
        let data = common::module(
            py,
            c"import numpy as np\narr = np.random.default_rng(1).random(10_000_000)\nexpected = float(arr.sum())\n",
        );
        let arr = common::attr(&data, "arr");
        let expected: f64 = common::attr(&data, "expected").extract().unwrap();
        let close = |x: f64| assert!((x - expected).abs() <= 1e-6 * expected, "{x} vs {expected}");

        // sanity: every variant computes the same sum as numpy
        close(
            Buffer1::<f64>::get(&arr)
                .unwrap()
                .read()
                .unwrap()
                .as_slice()
                .map(common::sum8)
                .unwrap(),
        );

        let mut g = c.benchmark_group("sum_1e7_f64");
        g.throughput(Throughput::Bytes((N * 8) as u64));
        g.bench_function("raw_slice", |b| {
            b.iter(|| {
                let view = common::RawView::get(black_box(&arr));
                // SAFETY: a C-contiguous float64 numpy array that nothing writes meanwhile.
                common::sum8(unsafe { view.as_f64_slice() })
            })
        });
        g.bench_function("pybuf_read_as_slice", |b| {
            b.iter(|| {
                let buf = Buffer1::<f64>::get(black_box(&arr)).unwrap();
                let guard = buf.read().unwrap();
                common::sum8(guard.as_slice().unwrap())
            })
        });
        g.bench_function("pyo3_as_slice_ptr", |b| {
            b.iter(|| {
                let buf = PyBuffer::<f64>::get(black_box(&arr)).unwrap();
                let ptr = buf.as_slice_ptr().unwrap();
                // SAFETY: the buffer is held and nothing writes the array meanwhile.
                common::sum8(unsafe { ptr.as_ref() })
            })
        });
        let method = pyo3::intern!(py, "sum");
        g.bench_function("numpy_sum", |b| {
            b.iter(|| {
                black_box(&arr)
                    .call_method0(method)
                    .unwrap()
                    .extract::<f64>()
                    .unwrap()
            })
        });
        g.finish();
    });
}

criterion_group! {
    name = benches;
    config = common::config(20);
    targets = sum
}
criterion_main!(benches);
