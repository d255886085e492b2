//! Benchmark 5: Dropping 100,000 buffers on a thread that is not attached to the interpreter.
//!
//! Each iteration acquires 100,000 handles of a small numpy array on the main thread
//! (attached, not timed), then releases the interpreter (`py.detach`) and times dropping
//! them all on a freshly spawned thread. pybuf queues the releases (they are carried out,
//! untimed, by `flush_releases` afterwards); PyO3 attaches to the interpreter for every drop.
//! The main thread has detached before the worker starts, so PyO3's attach cannot deadlock.
//!
//! For reference, the same drops on the attached main thread (`drop_100k_attached`).

mod common;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use pybuf::Buffer1;
use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;

const COUNT: usize = 100_000;

/// Drops `items` on a new thread while this one is detached; returns the drop time.
fn drop_detached<T: Send + 'static>(py: Python<'_>, items: Vec<T>) -> Duration {
    py.detach(move || {
        std::thread::spawn(move || {
            let start = Instant::now();
            drop(items);
            start.elapsed()
        })
        .join()
        .expect("drop thread")
    })
}

fn timed_drop<T>(items: Vec<T>) -> Duration {
    let start = Instant::now();
    drop(items);
    start.elapsed()
}

fn drops(c: &mut Criterion) {
    Python::attach(|py| {
        let data = common::module(
            py,
            c"import numpy as np\narr = np.arange(16, dtype=np.float64)\n",
        );
        let arr = common::attr(&data, "arr");
        let pybuf_many =
            || -> Vec<Buffer1<f64>> { (0..COUNT).map(|_| Buffer1::get(&arr).unwrap()).collect() };
        let pyo3_many =
            || -> Vec<PyBuffer<f64>> { (0..COUNT).map(|_| PyBuffer::get(&arr).unwrap()).collect() };

        let mut g = c.benchmark_group("drop_100k_detached");
        g.bench_function("pybuf", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += drop_detached(py, pybuf_many());
                    pybuf::flush_releases(py);
                    assert_eq!(pybuf::pending_releases(), 0);
                }
                total
            })
        });
        g.bench_function("pyo3", |b| {
            b.iter_custom(|iters| (0..iters).map(|_| drop_detached(py, pyo3_many())).sum())
        });
        g.finish();

        let mut g = c.benchmark_group("drop_100k_attached");
        g.bench_function("raw_cpython", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        timed_drop(
                            (0..COUNT)
                                .map(|_| common::RawView::get(&arr))
                                .collect::<Vec<_>>(),
                        )
                    })
                    .sum()
            })
        });
        g.bench_function("pybuf", |b| {
            b.iter_custom(|iters| (0..iters).map(|_| timed_drop(pybuf_many())).sum())
        });
        g.bench_function("pyo3", |b| {
            b.iter_custom(|iters| (0..iters).map(|_| timed_drop(pyo3_many())).sum())
        });
        g.finish();
    });
}

criterion_group! {
    name = benches;
    config = common::config(10);
    targets = drops
}
criterion_main!(benches);
