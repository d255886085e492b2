//! Property tests of the strided copy engine (`to_vec_in`, `copy_to_slice_in`,
//! `copy_from_slice_in`): random permutations of the axes, steps and negative strides, item
//! sizes 1, 2, 4, 8, 16 and odd record sizes 3 and 12, C and F memory and copy order, shapes
//! that are not multiples of the tile edge and cross block edges, zero-length and length-1
//! axes. Both directions are checked against numpy's own answers: `tobytes(order=...)` for
//! reads, and numpy's assignment into an identical array for writes (the whole base array is
//! compared, so a stray write outside the view is caught too).

mod common;

use common::{eval, namespace, run};
use ndarray::Order;
use proptest::prelude::*;
use pybuf::{BufferD, Element};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// numpy's `[('r', 'u1'), ('g', 'u1'), ('b', 'u1')]`: 3-byte items.
#[derive(Clone, Copy, Debug, pybuf::Element)]
#[repr(C)]
struct Rgb {
    r: u8,
    g: u8,
    b: u8,
}

/// numpy's `[('x', 'f4'), ('y', 'f4'), ('z', 'f4')]`: 12-byte items.
#[derive(Clone, Copy, Debug, pybuf::Element)]
#[repr(C)]
struct Xyz {
    x: f32,
    y: f32,
    z: f32,
}

/// (name, numpy dtype expression)
const DTYPES: &[(&str, &str)] = &[
    ("u1", "np.dtype('u1')"),
    ("u2", "np.dtype('u2')"),
    ("f4", "np.dtype('f4')"),
    ("f8", "np.dtype('f8')"),
    ("c16", "np.dtype('c16')"),
    ("rgb", "np.dtype([('r', 'u1'), ('g', 'u1'), ('b', 'u1')])"),
    ("xyz", "np.dtype([('x', 'f4'), ('y', 'f4'), ('z', 'f4')])"),
];

#[derive(Clone, Debug)]
struct Case {
    dtype: (&'static str, &'static str),
    /// the base array's shape, before slicing and permuting
    shape: Vec<usize>,
    /// memory order of the base array
    fortran_memory: bool,
    /// (start, step) per axis; the stop is the axis' end (or its start, for negative steps)
    slices: Vec<(usize, isize)>,
    /// the axes' permutation (`x.transpose(perm)`)
    perm: Vec<usize>,
    /// order of the contiguous side of the copies
    fortran_copy: bool,
}

/// Axis lengths: empty and unit axes, lengths around the 8-item tile edge, and some beyond the
/// 64-item block edge.
fn axis_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        2 => 0usize..=2,
        5 => 3usize..=20,
        2 => 60usize..=140,
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::sample::select(DTYPES),
        prop_oneof![
            // small arrays of one to four axes
            proptest::collection::vec(axis_len(), 1..=4),
            // long and thin 2-D arrays: reads that cross the 4 KiB block edge of every
            // item size up to 16 bytes (and of 12-byte records) within one transpose
            (250usize..=700, 1usize..=12).prop_map(|(a, b)| vec![a, b]),
        ],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_filter("bounded size", |(_, shape, _, _)| {
            shape.iter().product::<usize>() <= 40_000
        })
        .prop_flat_map(|(dtype, shape, fortran_memory, fortran_copy)| {
            let n = shape.len();
            let slices = shape
                .iter()
                .map(|&len| {
                    (
                        0..=len.min(3),
                        prop_oneof![Just(1isize), Just(-1), Just(2), Just(-3)],
                    )
                })
                .collect::<Vec<_>>();
            let perm = Just((0..n).collect::<Vec<usize>>()).prop_shuffle();
            (
                Just(dtype),
                Just(shape),
                Just(fortran_memory),
                slices,
                perm,
                Just(fortran_copy),
            )
        })
        .prop_map(
            |(dtype, shape, fortran_memory, slices, perm, fortran_copy)| Case {
                dtype,
                shape,
                fortran_memory,
                slices,
                perm,
                fortran_copy,
            },
        )
}

impl Case {
    fn order(&self) -> (Order, char) {
        if self.fortran_copy {
            (Order::F, 'F')
        } else {
            (Order::C, 'C')
        }
    }

    /// Python statements defining `base` (distinct bytes in every item), `view` (the
    /// permuted, sliced view of it), `wbase`/`wview` and `ebase`/`eview` (two zeroed copies of
    /// the same layout, written by pybuf and by numpy), and `src` (the bytes to write).
    fn python(&self) -> String {
        let count: usize = self.shape.iter().product();
        let shape: String = self.shape.iter().map(|d| format!("{d},")).collect();
        let memory = if self.fortran_memory { 'F' } else { 'C' };
        let index: Vec<String> = self
            .slices
            .iter()
            .zip(&self.shape)
            .map(|(&(start, step), &len)| {
                if step > 0 {
                    format!("{start}::{step}")
                } else if len == 0 {
                    format!("::{step}")
                } else {
                    // from the last item down to `start` (inclusive)
                    let stop = if start == 0 {
                        "None".to_string()
                    } else {
                        (start - 1).to_string()
                    };
                    format!("{}:{stop}:{step}", len - 1)
                }
            })
            .collect();
        let perm: String = self.perm.iter().map(|d| format!("{d},")).collect();
        format!(
            "dt = {dtype}\n\
             def fresh(fill):\n\
             \x20   raw = np.frombuffer(bytearray(fill({count} * dt.itemsize).tobytes()), dt)\n\
             \x20   return raw.reshape(({shape}), order='{memory}')\n\
             def shape_view(a):\n\
             \x20   return a[{index}].transpose(({perm}))\n\
             base = fresh(lambda n: (np.arange(n) % 251 + 1).astype('u1'))\n\
             view = shape_view(base)\n\
             wbase = fresh(lambda n: np.zeros(n, 'u1'))\n\
             wview = shape_view(wbase)\n\
             ebase = fresh(lambda n: np.zeros(n, 'u1'))\n\
             eview = shape_view(ebase)\n\
             src = ((np.arange(view.size * dt.itemsize) * 7 + 3) % 253).astype('u1').tobytes()\n\
             eview[...] = np.frombuffer(src, dt).reshape(eview.shape, order='{order}')\n",
            dtype = self.dtype.1,
            index = index.join(", "),
            order = self.order().1,
        )
    }
}

/// `T`s from raw bytes (every type here is valid for any bytes).
fn items_from_bytes<T: Element + Copy>(bytes: &[u8]) -> Vec<T> {
    let size = std::mem::size_of::<T>();
    assert_eq!(bytes.len() % size, 0);
    bytes
        .chunks_exact(size)
        // SAFETY: each chunk holds `size_of::<T>()` bytes, read unaligned; the test's element
        // types (numbers and records of numbers without padding) are valid for any bytes.
        .map(|c| unsafe { c.as_ptr().cast::<T>().read_unaligned() })
        .collect()
}

/// The bytes of `items` (types without padding).
fn bytes_of<T: Element + Copy>(items: &[T]) -> Vec<u8> {
    // SAFETY: the test's element types have no padding: every byte is initialized.
    unsafe { std::slice::from_raw_parts(items.as_ptr().cast::<u8>(), std::mem::size_of_val(items)) }
        .to_vec()
}

fn check<T: Element + Copy>(g: &Bound<'_, PyDict>, case: &Case) {
    let (order, order_char) = case.order();
    let view = eval(g, "view");
    let buf = BufferD::<T>::get(&view).unwrap_or_else(|e| panic!("{case:?}: {e}"));
    let expected: Vec<u8> = eval(g, &format!("view.tobytes(order='{order_char}')"))
        .extract()
        .unwrap();

    // gather, into a new Vec and into a slice
    let v = buf.to_vec_in(order).unwrap();
    assert_eq!(bytes_of(&v), expected, "to_vec_in {case:?}");
    let mut dst = items_from_bytes::<T>(&vec![0xA5; expected.len()]);
    buf.copy_to_slice_in(&mut dst, order).unwrap();
    assert_eq!(bytes_of(&dst), expected, "copy_to_slice_in {case:?}");

    // scatter: pybuf writes `wview`, numpy wrote `eview` (same layout, same values)
    let src: Vec<u8> = eval(g, "src").extract().unwrap();
    let values = items_from_bytes::<T>(&src);
    let wview = eval(g, "wview");
    let wbuf = BufferD::<T>::get_mut(&wview).unwrap();
    wbuf.copy_from_slice_in(&values, order).unwrap();
    drop(wbuf);
    let ours: Vec<u8> = eval(g, "wbase.tobytes(order='A')").extract().unwrap();
    let numpys: Vec<u8> = eval(g, "ebase.tobytes(order='A')").extract().unwrap();
    assert_eq!(ours, numpys, "copy_from_slice_in {case:?}");
}

fn check_case(case: &Case) {
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, &case.python());
        match case.dtype.0 {
            "u1" => check::<u8>(&g, case),
            "u2" => check::<u16>(&g, case),
            "f4" => check::<f32>(&g, case),
            "f8" => check::<f64>(&g, case),
            "c16" => check::<num_complex::Complex<f64>>(&g, case),
            "rgb" => check::<Rgb>(&g, case),
            "xyz" => check::<Xyz>(&g, case),
            other => unreachable!("dtype {other}"),
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn copies_of_permuted_strided_layouts_agree_with_numpy(case in case()) {
        check_case(&case);
    }
}

/// Fixed cases at the edges of the transpose kernel's tiles and blocks, for every item size.
#[test]
fn transposes_at_tile_and_block_edges_agree_with_numpy() {
    let shapes: &[&[usize]] = &[
        &[8, 8],
        &[7, 9],
        &[9, 7],
        &[64, 65],
        &[513, 3],
        &[3, 513],
        &[4097, 2],
        &[1, 17],
        &[17, 1],
        &[0, 5],
        &[3, 0, 4],
        &[5, 1, 6, 1],
        &[10, 11, 12],
    ];
    for &shape in shapes {
        for &dtype in DTYPES {
            for fortran_copy in [false, true] {
                let n = shape.len();
                let case = Case {
                    dtype,
                    shape: shape.to_vec(),
                    fortran_memory: false,
                    slices: vec![(0, 1); n],
                    perm: (0..n).rev().collect(),
                    fortran_copy,
                };
                check_case(&case);
            }
        }
    }
}
