//! Benchmark 4: Copy-out of a transposed 2048 × 2048 f64 array (32 MiB) to contiguous C order.
//!
//! Floor: a plain `memcpy` of the same number of bytes from a contiguous array into a fresh
//! `Vec` (allocation and first-touch page faults included, as for every to-`Vec` variant).
//! `*_prealloc` variants copy into a reused destination and show what the allocation costs.
//!
//! Group `copy_layouts_16mib` times `copy_to_slice` (and `copy_from_slice` for the scatter
//! direction) on other layouts of 16 MiB each against a preallocated `memcpy` of 16 MiB: other
//! item sizes transposed, a 3-D permutation, contiguous runs long and short, a step, and a
//! contiguous array. It shows that what helps the transposed case costs the others nothing.
//!
//! numpy's timings are affected by `OPENBLAS_CORETYPE` / `OPENBLAS_L2_SIZE` on some
//! machines: `scripts/bench.sh` unsets both for this bench command.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use num_complex::Complex;
use pybuf::{Buffer2, BufferD, Element};
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

/// Bytes copied by every variant of `copy_layouts_16mib`.
const LAYOUT_BYTES: usize = 16 << 20;

/// The layouts of `copy_layouts_16mib`: (name, numpy expression), each `LAYOUT_BYTES` of items.
const LAYOUTS: &[(&str, &str)] = &[
    (
        "u1_T_4096",
        "np.arange(4096 * 4096, dtype=np.uint8).reshape(4096, 4096).T",
    ),
    (
        "f4_T_2048",
        "np.arange(2048 * 2048, dtype=np.float32).reshape(2048, 2048).T",
    ),
    (
        "c16_T_1024",
        "np.arange(1024 * 1024, dtype=np.complex128).reshape(1024, 1024).T",
    ),
    (
        "f8_reversed_128_3d",
        "np.arange(128 ** 3, dtype=np.float64).reshape(128, 128, 128).transpose(2, 1, 0)",
    ),
    (
        "f8_runs_8KiB",
        "np.arange(2048 * 2048, dtype=np.float64).reshape(2048, 2048)[:, :1024]",
    ),
    (
        "f8_runs_16B",
        "np.arange(4 << 20, dtype=np.float64).reshape(1 << 20, 4)[:, :2]",
    ),
    ("f8_step_2", "np.arange(4 << 20, dtype=np.float64)[::2]"),
    ("f8_contiguous", "np.arange(2 << 20, dtype=np.float64)"),
];

/// `copy_to_slice` of the buffer `x` (items of `T`) into a preallocated slice, checked once
/// against numpy's own C-order bytes.
fn layout_variant<T: Element + Copy + Default>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    x: &Bound<'_, PyAny>,
    expected: &[u8],
) {
    let buf = BufferD::<T>::get(x).unwrap();
    assert_eq!(buf.len() * std::mem::size_of::<T>(), LAYOUT_BYTES, "{name}");
    let mut dst = vec![T::default(); buf.len()];
    buf.copy_to_slice(&mut dst).unwrap();
    // SAFETY: `dst` holds plain numbers (no padding), read as bytes.
    let bytes = unsafe { std::slice::from_raw_parts(dst.as_ptr().cast::<u8>(), LAYOUT_BYTES) };
    assert!(
        bytes == expected,
        "{name}: copy_to_slice is numpy's C order"
    );
    g.bench_function(name, |b| {
        b.iter(|| black_box(&buf).copy_to_slice(&mut dst).unwrap())
    });
}

fn copy_layouts(c: &mut Criterion) {
    Python::attach(|py| {
        let data = common::module(
            py,
            c"import numpy as np\nsrc = np.zeros(2 << 20)\nt = np.zeros((2048, 1024)).T\n",
        );
        let mut g = c.benchmark_group("copy_layouts_16mib");
        g.throughput(Throughput::Bytes(LAYOUT_BYTES as u64));
        let src = vec![1.0f64; LAYOUT_BYTES / 8];
        let mut dst = vec![0.0f64; LAYOUT_BYTES / 8];
        g.bench_function("memcpy_prealloc", |b| {
            b.iter(|| dst.copy_from_slice(black_box(&src)))
        });
        for &(name, expr) in LAYOUTS {
            data.setattr("expr", expr).unwrap();
            let x = py.eval(c"eval(expr)", Some(&data.dict()), None).unwrap();
            data.setattr("x", &x).unwrap();
            let expected: Vec<u8> = py
                .eval(
                    c"np.ascontiguousarray(x).tobytes()",
                    Some(&data.dict()),
                    None,
                )
                .unwrap()
                .extract()
                .unwrap();
            match name.split('_').next().unwrap() {
                "u1" => layout_variant::<u8>(&mut g, name, &x, &expected),
                "f4" => layout_variant::<f32>(&mut g, name, &x, &expected),
                "c16" => layout_variant::<Complex<f64>>(&mut g, name, &x, &expected),
                _ => layout_variant::<f64>(&mut g, name, &x, &expected),
            }
        }
        // the scatter direction: a contiguous slice into a transposed array
        let t = common::attr(&data, "t");
        let buf = Buffer2::<f64>::get_mut(&t).unwrap();
        let values: Vec<f64> = (0..buf.len()).map(|i| i as f64).collect();
        buf.copy_from_slice(&values).unwrap();
        let back: Vec<f64> = t
            .call_method1("tobytes", ("C",))
            .unwrap()
            .extract::<Vec<u8>>()
            .unwrap()
            .chunks_exact(8)
            .map(|c| f64::from_ne_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(back, values, "copy_from_slice into t");
        g.bench_function("f8_T_2048x1024_copy_from_slice", |b| {
            b.iter(|| black_box(&buf).copy_from_slice(black_box(&values)).unwrap())
        });
        g.finish();
    });
}

criterion_group! {
    name = benches;
    config = common::config(10);
    targets = copy_out, copy_layouts
}
criterion_main!(benches);
