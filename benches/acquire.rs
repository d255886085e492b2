//! Benchmark 1: Acquire + release of a small 1-D float64 numpy array and of a `bytes` object.
//!
//! Floor: `PyObject_GetBuffer(PyBUF_FULL_RO)` + `PyBuffer_Release` on a stack `Py_buffer`.
//! Note that rust-numpy's `extract::<PyReadonlyArray1>` includes its borrow bookkeeping
//! (it is the only way it hands out data), and that PyO3 and pybuf heap-allocate the
//! `Py_buffer` (exporters may point `shape`/`strides` into it, so it must not move).

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1};
use pybuf::{AnyBuffer, Buffer1};
use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;

fn acquire(c: &mut Criterion) {
    Python::attach(|py| {
        let data = common::module(
            py,
            c"import numpy as np\narr = np.arange(16, dtype=np.float64)\nbts = bytes(range(16))\n",
        );
        let arr = common::attr(&data, "arr");
        let bts = common::attr(&data, "bts");

        let mut g = c.benchmark_group("acquire_ndarray_f64");
        g.bench_function("raw_cpython", |b| {
            b.iter(|| common::raw_acquire_release(black_box(&arr)))
        });
        g.bench_function("pybuf_Buffer1", |b| {
            b.iter(|| drop(black_box(Buffer1::<f64>::get(black_box(&arr)).unwrap())))
        });
        g.bench_function("pybuf_AnyBuffer", |b| {
            b.iter(|| drop(black_box(AnyBuffer::get(black_box(&arr)).unwrap())))
        });
        g.bench_function("pyo3_PyBuffer", |b| {
            b.iter(|| drop(black_box(PyBuffer::<f64>::get(black_box(&arr)).unwrap())))
        });
        g.bench_function("numpy_extract_readonly", |b| {
            b.iter(|| {
                let ro = black_box(&arr)
                    .extract::<PyReadonlyArray1<'_, f64>>()
                    .unwrap();
                drop(black_box(ro))
            })
        });
        g.bench_function("numpy_cast_readonly", |b| {
            b.iter(|| {
                let ro = black_box(&arr).cast::<PyArray1<f64>>().unwrap().readonly();
                drop(black_box(ro))
            })
        });
        g.finish();

        let mut g = c.benchmark_group("acquire_bytes");
        g.bench_function("raw_cpython", |b| {
            b.iter(|| common::raw_acquire_release(black_box(&bts)))
        });
        g.bench_function("pybuf_Buffer1", |b| {
            b.iter(|| drop(black_box(Buffer1::<u8>::get(black_box(&bts)).unwrap())))
        });
        g.bench_function("pybuf_AnyBuffer", |b| {
            b.iter(|| drop(black_box(AnyBuffer::get(black_box(&bts)).unwrap())))
        });
        g.bench_function("pyo3_PyBuffer", |b| {
            b.iter(|| drop(black_box(PyBuffer::<u8>::get(black_box(&bts)).unwrap())))
        });
        g.finish();
    });
}

criterion_group! {
    name = benches;
    config = common::config(50);
    targets = acquire
}
criterion_main!(benches);
