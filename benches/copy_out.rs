//! Benchmark 4: Copy-out of a transposed 2048 × 2048 f64 array (32 MiB) to contiguous C order.
//!
//! Floor: a plain `memcpy` of the same number of bytes from a contiguous array into a fresh
//! `Vec` (allocation and first-touch page faults included, as for every to-`Vec` variant).
//! `*_prealloc` variants copy into a reused destination and show what the allocation costs.
//!
//! numpy's timings are affected by `OPENBLAS_CORETYPE` / `OPENBLAS_L2_SIZE` on some
//! machines: `scripts/bench.sh` unsets both for this bench command.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pybuf::Buffer2;
use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;

const N: usize = 2048;

fn copy_out(c: &mut Criterion) {
    Python::attach(|py| {
        let data = common::module(
            py,
            c"import numpy as np\nt = np.arange(2048 * 2048, dtype=np.float64).reshape(2048, 2048).T\nc = np.ascontiguousarray(t)\nascontiguousarray = np.ascontiguousarray\n",
        );
        let t = common::attr(&data, "t");
        let contiguous = common::attr(&data, "c");
        let ascontiguousarray = common::attr(&data, "ascontiguousarray");
        let c_view = common::RawView::get(&contiguous);
        // SAFETY: C-contiguous float64 array, nothing writes it during the benchmark.
        let expected = unsafe { c_view.as_f64_slice() };
        assert_eq!(expected.len(), N * N);

        let pybuf_t = Buffer2::<f64>::get(&t).unwrap();
        assert!(!pybuf_t.is_c_contiguous());
        assert_eq!(
            pybuf_t.to_vec().unwrap(),
            expected,
            "pybuf to_vec is C order of t"
        );
        let pyo3_t = PyBuffer::<f64>::get(&t).unwrap();
        assert_eq!(
            pyo3_t.to_vec(py).unwrap(),
            expected,
            "PyO3 to_vec is C order of t"
        );

        let mut g = c.benchmark_group("copy_transposed_2048");
        g.throughput(Throughput::Bytes((N * N * 8) as u64));
        g.bench_function("memcpy", |b| {
            b.iter(|| {
                let src = black_box(expected);
                let mut out: Vec<f64> = Vec::with_capacity(src.len());
                // SAFETY: fresh capacity for `src.len()` items, disjoint from `src`.
                unsafe {
                    std::ptr::copy_nonoverlapping(src.as_ptr(), out.as_mut_ptr(), src.len());
                    out.set_len(src.len());
                }
                out
            })
        });
        g.bench_function("pybuf_to_vec", |b| {
            b.iter(|| black_box(&pybuf_t).to_vec().unwrap())
        });
        g.bench_function("pyo3_to_vec", |b| {
            b.iter(|| black_box(&pyo3_t).to_vec(py).unwrap())
        });
        g.bench_function("numpy_ascontiguousarray", |b| {
            b.iter(|| ascontiguousarray.call1((black_box(&t),)).unwrap())
        });
        let mut dst = vec![0.0f64; N * N];
        g.bench_function("memcpy_prealloc", |b| {
            b.iter(|| dst.copy_from_slice(black_box(expected)))
        });
        g.bench_function("pybuf_copy_to_slice_prealloc", |b| {
            b.iter(|| black_box(&pybuf_t).copy_to_slice(&mut dst).unwrap())
        });
        g.finish();
        drop(c_view);
    });
}

criterion_group! {
    name = benches;
    config = common::config(10);
    targets = copy_out
}
criterion_main!(benches);
