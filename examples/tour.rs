//! A tour of pybuf: what a Rust program that embeds CPython does first.
//!
//! Run it with `bash scripts/tour.sh` (sets up a local virtualenv with numpy and runs
//! `cargo run --example tour`).

use pybuf::{be, Buffer1, Buffer2, BufferD};
use pyo3::ffi::c_str;
use pyo3::prelude::*;
use pyo3::types::PyDict;

fn main() -> PyResult<()> {
    Python::attach(|py| {
        // Some Python code that hands arrays back to Rust.
        let module = PyModule::from_code(
            py,
            c_str!(
                r#"
import numpy as np

def measurements():
    """A 3x4 float64 matrix, the way a Python library would return one."""
    return np.arange(12, dtype=np.float64).reshape(3, 4)

def big_endian():
    return np.array([1.5, -2.0, 1e300], dtype='>f8')
"#
            ),
            c_str!("tour_data.py"),
            c_str!("tour_data"),
        )?;

        // 1. A 2-D float64 array back from Python: element type and dimensions are checked
        //    once, here; afterwards access is typed.
        let matrix = module.getattr("measurements")?.call0()?;
        let m = Buffer2::<f64>::get(&matrix)?;
        println!(
            "got a {:?} buffer of f64, format '{}'",
            m.shape(),
            m.format()
        );

        // 2. Sum the rows without copying: `read()` borrows the memory as an ndarray view.
        let row_sums: Vec<f64> = {
            let guard = m.read()?;
            guard
                .view()
                .rows()
                .into_iter()
                .map(|row| row.sum())
                .collect()
        };
        println!("row sums (zero-copy): {row_sums:?}");

        // 3. Write the results into a writable numpy array owned by Python.
        let np = py.import("numpy")?;
        let out = np.call_method1("zeros", (3,))?;
        Buffer1::<f64>::get_mut(&out)?.copy_from_slice(&row_sums)?;
        println!("numpy sees: {}", out.repr()?);

        // ... or modify in place through a mutable view.
        Buffer2::<f64>::get_mut(&matrix)?.with_mut(|mut v| v.column_mut(0).fill(-1.0))?;
        let locals = PyDict::new(py);
        locals.set_item("m", &matrix)?;
        let column0 = py.eval(c_str!("m[:, 0].tolist()"), None, Some(&locals))?;
        println!("after with_mut, Python sees column 0 = {column0}");

        // 4. Byte-swapped data is never misread: f64 refuses it with a clear error, and the
        //    byte-order element type reads it (zero-copy, at any alignment).
        let swapped = module.getattr("big_endian")?.call0()?;
        if let Err(e) = Buffer1::<f64>::get(&swapped) {
            println!("big-endian as f64 → {e}");
        }
        let values: Vec<f64> = Buffer1::<be::F64>::get(&swapped)?
            .to_vec()?
            .into_iter()
            .map(|x| x.get())
            .collect();
        println!("big-endian as be::F64 → {values:?}");

        // 5. Strided input (every other column of the transpose): copies and item access work
        //    for any layout; views use ndarray strides, including negative ones.
        let strided = py.eval(c_str!("m.T[::-1, ::2]"), None, Some(&locals))?;
        let s = Buffer2::<f64>::get(&strided)?;
        println!(
            "strided view: shape {:?}, byte strides {:?}, C-contiguous: {}",
            s.shape(),
            s.strides(),
            s.is_c_contiguous()
        );
        println!("  to_vec (C order): {:?}", s.to_vec()?);
        println!("  item((0, 1)) = {}", s.item((0, 1))?);
        let view_sum = s.with(|v| v.sum())?;
        println!("  sum through a strided view: {view_sum}");

        // 6. Three typical mistakes, three clear errors.
        let float32 = np.call_method1("ones", ((2, 3, 4), "float32"))?;
        println!("\nerrors:");
        println!(
            "  wrong element type → {}",
            Buffer2::<f64>::get(&float32).unwrap_err()
        );
        println!(
            "  wrong dimensions   → {}",
            Buffer1::<f32>::get(&float32).unwrap_err()
        );
        let frozen = py.eval(c_str!("b'immutable bytes'"), None, None)?;
        println!(
            "  read-only write    → {}",
            BufferD::<u8>::get_mut(&frozen).unwrap_err()
        );

        // Every error becomes the right Python exception when it crosses back into Python.
        let err: PyErr = Buffer2::<f64>::get(&float32).unwrap_err().into();
        println!("  as a Python exception: {}", err.get_type(py).name()?);
        Ok(())
    })
}
