//! Property tests over random shapes (ndim 0-5, zero-size axes), slices with negative steps,
//! zero strides, transposes, C and F order and numpy dtypes of every size: copies, items and
//! views agree with numpy's own answers.

mod common;

use common::{as_bytes, eval, namespace, run};
use ndarray::{IxDyn, Order};
use proptest::prelude::*;
use pybuf::{BufferD, Element, Error};
use pyo3::prelude::*;
use pyo3::types::PyDict;

#[derive(Clone, Debug)]
struct Case {
    dtype: &'static str,
    shape: Vec<usize>,
    fortran: bool,
    /// (start, stop, step) per axis
    slices: Vec<(usize, usize, isize)>,
    transpose: bool,
    /// an axis whose stride is replaced by 0 (as numpy's broadcasting does)
    zero_stride_axis: Option<usize>,
    /// picks the index for `item`
    index_seed: Vec<usize>,
}

const DTYPES: &[&str] = &[
    "bool",
    "int8",
    "uint8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
];

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::sample::select(DTYPES),
        proptest::collection::vec(0usize..5, 0..=5),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_flat_map(|(dtype, shape, fortran, transpose)| {
            let n = shape.len();
            let slices = shape
                .iter()
                .map(|&len| {
                    (
                        0..=len,
                        0..=len,
                        prop_oneof![Just(1isize), Just(-1), Just(2), Just(-2), Just(3), Just(-3)],
                    )
                })
                .collect::<Vec<_>>();
            let zero = if n == 0 {
                Just(None).boxed()
            } else {
                proptest::option::weighted(0.25, 0..n).boxed()
            };
            (
                Just(dtype),
                Just(shape),
                Just(fortran),
                slices,
                Just(transpose),
                zero,
                proptest::collection::vec(any::<usize>(), n),
            )
        })
        .prop_map(
            |(dtype, shape, fortran, slices, transpose, zero_stride_axis, index_seed)| Case {
                dtype,
                shape,
                fortran,
                slices,
                transpose,
                zero_stride_axis,
                index_seed,
            },
        )
}

impl Case {
    fn python(&self) -> String {
        let count: usize = self.shape.iter().product();
        let shape: String = self.shape.iter().map(|d| format!("{d},")).collect();
        let mut expr = format!(
            "np.arange({count}).astype('{}').reshape(({shape}), order='{}')",
            self.dtype,
            if self.fortran { 'F' } else { 'C' }
        );
        if !self.slices.is_empty() {
            let s: Vec<String> = self
                .slices
                .iter()
                .map(|&(a, b, step)| {
                    if step > 0 {
                        format!("{a}:{b}:{step}")
                    } else if b <= a {
                        format!("0:0:{step}")
                    } else {
                        // reversed: from b-1 down to a
                        let start = b as isize - 1;
                        let stop = if a == 0 {
                            "None".to_string()
                        } else {
                            (a - 1).to_string()
                        };
                        format!("{start}:{stop}:{step}")
                    }
                })
                .collect();
            expr = format!("({expr})[{}]", s.join(", "));
        }
        if self.transpose {
            expr = format!("({expr}).T");
        }
        if let Some(axis) = self.zero_stride_axis {
            expr = format!(
                "(lambda x: as_strided(x, x.shape, tuple(0 if i == {axis} else s for i, s in enumerate(x.strides))))({expr})"
            );
        }
        expr
    }
}

fn check<T: Element + PartialEq + std::fmt::Debug>(g: &Bound<'_, PyDict>, case: &Case) {
    let x = eval(g, "x");
    let buf = BufferD::<T>::get(&x).unwrap_or_else(|e| panic!("{case:?}: {e}"));
    let shape: Vec<usize> = eval(g, "list(x.shape)").extract().unwrap();
    // the exporter's strides (numpy exports canonical strides for some empty arrays)
    let strides: Vec<isize> = eval(g, "list(memoryview(x).strides)").extract().unwrap();
    assert_eq!(buf.shape(), &shape[..]);
    assert_eq!(buf.strides(), &strides[..]);
    assert_eq!(
        buf.is_c_contiguous(),
        eval(g, "memoryview(x).c_contiguous")
            .extract::<bool>()
            .unwrap()
    );
    assert_eq!(
        buf.is_f_contiguous(),
        eval(g, "memoryview(x).f_contiguous")
            .extract::<bool>()
            .unwrap()
    );

    let c: Vec<u8> = eval(g, "x.tobytes(order='C')").extract().unwrap();
    let f: Vec<u8> = eval(g, "x.tobytes(order='F')").extract().unwrap();
    let v = buf.to_vec().unwrap();
    assert_eq!(as_bytes(&v), c, "to_vec C");
    assert_eq!(as_bytes(&buf.to_vec_in(Order::F).unwrap()), f, "to_vec F");
    let arr = buf.to_array().unwrap();
    assert_eq!(arr.shape(), &shape[..]);
    let mut dst = v.clone();
    buf.copy_to_slice_in(&mut dst, Order::F).unwrap();
    assert_eq!(as_bytes(&dst), f, "copy_to_slice F");

    // zero-copy view in logical order equals the copy
    let from_view: Vec<T> = buf.with(|view| view.iter().copied().collect()).unwrap();
    assert_eq!(from_view, v, "view iteration");
    assert_eq!(
        buf.read().unwrap().as_slice().is_some(),
        buf.is_c_contiguous()
    );

    if !v.is_empty() {
        let idx: Vec<usize> = case
            .index_seed
            .iter()
            .zip(&shape)
            .map(|(s, &n)| s % n)
            .collect();
        g.set_item("idx", idx.clone()).unwrap();
        let expected: Vec<u8> = eval(g, "x[tuple(idx)].tobytes()").extract().unwrap();
        let item = buf.item(IxDyn(&idx)).unwrap();
        assert_eq!(as_bytes(&[item]), expected, "item {idx:?}");
        let mut out_of_bounds = idx.clone();
        match out_of_bounds.first_mut() {
            Some(first) => *first = shape[0],
            None => out_of_bounds.push(0), // a 0-d buffer indexed with one axis
        }
        assert!(matches!(
            buf.item(IxDyn(&out_of_bounds)),
            Err(Error::IndexOutOfBounds { .. })
        ));
    }
}

fn check_case(case: &Case) {
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, &format!("x = {}", case.python()));
        match case.dtype {
            "bool" => check::<bool>(&g, case),
            "int8" => check::<i8>(&g, case),
            "uint8" => check::<u8>(&g, case),
            "int16" => check::<i16>(&g, case),
            "uint16" => check::<u16>(&g, case),
            "int32" => check::<i32>(&g, case),
            "uint32" => check::<u32>(&g, case),
            "int64" => check::<i64>(&g, case),
            "uint64" => check::<u64>(&g, case),
            "float16" => check::<half::f16>(&g, case),
            "float32" => check::<f32>(&g, case),
            "float64" => check::<f64>(&g, case),
            "complex64" => check::<num_complex::Complex<f32>>(&g, case),
            "complex128" => check::<num_complex::Complex<f64>>(&g, case),
            other => unreachable!("dtype {other}"),
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn copies_items_and_views_agree_with_numpy(case in case()) {
        check_case(&case);
    }
}

#[test]
fn writes_through_every_path_agree_with_numpy() {
    // a fixed set of awkward layouts, each written three ways and read back by numpy
    let layouts = [
        "np.zeros((4, 5))",
        "np.zeros((4, 5), order='F')",
        "np.zeros((4, 6))[::-1, ::2]",
        "np.zeros((3, 4, 5)).transpose(2, 0, 1)[:, ::-2]",
        "np.zeros(7)[::-3]",
        "np.zeros((0, 3))",
    ];
    Python::attach(|py| {
        let g = namespace(py);
        for expr in layouts {
            run(py, &g, &format!("x = {expr}"));
            let x = eval(&g, "x");
            let buf = BufferD::<f64>::get_mut(&x).unwrap();
            let data: Vec<f64> = (0..buf.len()).map(|i| i as f64 + 0.5).collect();
            buf.copy_from_slice(&data).unwrap();
            assert_eq!(
                eval(&g, "x.ravel(order='C').tolist()")
                    .extract::<Vec<f64>>()
                    .unwrap(),
                data,
                "{expr}"
            );
            buf.with_mut(|mut v| v.map_inplace(|e| *e *= 2.0)).unwrap();
            let doubled: Vec<f64> = data.iter().map(|e| e * 2.0).collect();
            assert_eq!(
                eval(&g, "x.ravel(order='C').tolist()")
                    .extract::<Vec<f64>>()
                    .unwrap(),
                doubled,
                "{expr}"
            );
            if !buf.is_empty() {
                let last: Vec<usize> = buf.shape().iter().map(|n| n - 1).collect();
                buf.set_item(IxDyn(&last), -1.0).unwrap();
                g.set_item("last", last).unwrap();
                assert_eq!(
                    eval(&g, "x[tuple(last)]").extract::<f64>().unwrap(),
                    -1.0,
                    "{expr}"
                );
            }
        }
    });
}
