//! Instructions per acquire + release through each source, for `valgrind --tool=callgrind`:
//! an 8-element float64 numpy array read as `Buffer1<f64>` through the buffer protocol,
//! DLPack (`from_dlpack`), the array interface dict and the `__array_struct__` capsule (numpy
//! behind a wrapper that exposes only that attribute).
//!
//! ```sh
//! . scripts/env.sh
//! cargo bench --bench interchange_icount --no-run
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null BIN SOURCE N
//! ```
//!
//! Run it twice per source with different `N` (the loop count) and divide the difference in
//! instructions by the difference in `N`: what remains is one acquire + release, without the
//! interpreter's start-up. Without arguments it runs every source 1,000 times (a smoke test).

use std::hint::black_box;

use pybuf::Buffer1;
use pyo3::prelude::*;

const DATA: &std::ffi::CStr = c"
import numpy as np
arr = np.arange(8, dtype=np.float64)

class AI:
    def __init__(self, a):
        self.a = a
    @property
    def __array_interface__(self):
        return self.a.__array_interface__

class AS:
    def __init__(self, a):
        self.a = a
    @property
    def __array_struct__(self):
        return self.a.__array_struct__

ai = AI(arr)
as_ = AS(arr)
";

fn run(source: &str, n: usize) {
    Python::attach(|py| {
        let data = PyModule::from_code(py, DATA, c"icount.py", c"icount").unwrap();
        let arr = data.getattr("arr").unwrap();
        let ai = data.getattr("ai").unwrap();
        let as_ = data.getattr("as_").unwrap();
        for _ in 0..n {
            let buf = match source {
                "buffer" => Buffer1::<f64>::get(black_box(&arr)),
                "dlpack" => Buffer1::<f64>::from_dlpack(black_box(&arr)),
                "interface" => Buffer1::<f64>::get(black_box(&ai)),
                "struct" => Buffer1::<f64>::get(black_box(&as_)),
                other => panic!("unknown source {other:?}: buffer, dlpack, interface, struct"),
            };
            drop(black_box(buf.unwrap()));
        }
    });
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.as_slice() {
        [source, n] => run(source, n.parse().expect("a loop count")),
        _ => {
            for source in ["buffer", "dlpack", "interface", "struct"] {
                run(source, 1000);
            }
        }
    }
}
