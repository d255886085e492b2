//! `jax.numpy.from_dlpack` of pybuf exports (jax CPU, from the virtualenv that
//! `scripts/env.sh` makes). jax asks for legacy capsules (`__dlpack__(stream=None)`), copies
//! when it must (alignment) and refuses non-compact strides itself; in
//! every case the values equal numpy's reading of the export and the export's views return to
//! zero once jax lets go.

mod common;

use std::time::{Duration, Instant};

use common::{eval, run};
use ndarray::{s, Array, Array1, Array2, Axis, IxDyn};
use pybuf::export::{self, ExportSource, Exported};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// numpy and jax (64-bit types enabled, so float64 and int64 arrive as they are), or `None`
/// (with a note) when jax is not installed.
fn jax(py: Python<'_>) -> Option<Bound<'_, PyDict>> {
    let g = PyDict::new(py);
    let code = c"import gc, numpy as np\ntry:\n    import jax\n    jax.config.update('jax_enable_x64', True)\n    import jax.numpy as jnp\n    ok = True\nexcept ImportError:\n    ok = False\n";
    py.run(code, Some(&g), None).unwrap();
    if !eval(&g, "ok").extract::<bool>().unwrap() {
        println!("note: jax is not installed in this interpreter (scripts/env.sh installs it)");
        return None;
    }
    Some(g)
}

/// Waits (bounded) until jax has let go of every view: its deleter may run a little later
/// than the array's collection, on one of its own threads.
fn wait_for_no_views<S: ExportSource>(x: &Exported<S>, g: &Bound<'_, PyDict>) {
    let start = Instant::now();
    while x.view_count() != 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "jax kept {} views",
            x.view_count()
        );
        run(g.py(), g, "gc.collect()");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Checks jax's reading of `x`; returns whether jax used the memory in place (it copies
/// data that is not aligned as XLA wants).
fn check<S: ExportSource>(x: Exported<S>, g: &Bound<'_, PyDict>) -> bool {
    let py = g.py();
    g.set_item("x", &x).unwrap();
    run(
        py,
        g,
        "j = jnp.from_dlpack(x)\n\
         same = np.asarray(j).tolist() == np.asarray(x).tolist()\n\
         shape = j.shape == np.asarray(x).shape\n\
         views_while_alive = x.views\n\
         in_place = j.size > 0 and j.unsafe_buffer_pointer() == np.asarray(x).__array_interface__['data'][0]\n\
         del j\n",
    );
    assert!(eval(g, "same and shape").extract::<bool>().unwrap());
    // in place exactly when jax kept the capsule's view
    let in_place: bool = eval(g, "in_place").extract().unwrap();
    let views: usize = eval(g, "views_while_alive").extract().unwrap();
    assert_eq!(views, usize::from(in_place), "{}", eval(g, "repr(x)"));
    println!(
        "{}: views while jax's array lived: {}",
        eval(g, "repr(x)"),
        eval(g, "views_while_alive")
    );
    wait_for_no_views(&x, g);
    g.del_item("x").unwrap();
    assert!(x.try_into_inner().is_ok());
    in_place
}

fn iota(n: usize) -> Vec<f32> {
    (0..n).map(|i| i as f32 - 3.0).collect()
}

#[test]
fn jax_reads_writable_exports_of_every_common_dtype() {
    Python::attach(|py| {
        let Some(g) = jax(py) else { return };
        let m = Array2::from_shape_vec((4, 8), iota(32)).unwrap();
        let floats: Vec<f64> = (0..10).map(|i| i as f64 / 3.0).collect();
        let ints: Vec<i64> = (0..10).map(|i| i * 1_000_000_007).collect();
        let bools: Vec<bool> = (0..10).map(|i| i % 3 == 0).collect();
        let halves = vec![half::f16::from_f32(0.5), half::f16::MAX];
        let in_place = [
            check(export::from_vec_mut(py, iota(10)).unwrap(), &g),
            check(export::from_vec_mut(py, floats).unwrap(), &g),
            check(export::from_vec_mut(py, ints).unwrap(), &g),
            check(export::from_vec_mut(py, bools).unwrap(), &g),
            check(export::from_vec_mut(py, vec![1u8, 2, 255]).unwrap(), &g),
            check(export::from_vec_mut(py, halves).unwrap(), &g),
            check(export::from_array_mut(py, m.clone()).unwrap(), &g),
            // Fortran order
            check(export::from_array_mut(py, m.reversed_axes()).unwrap(), &g),
            check(
                export::from_array_mut(py, Array::from_elem(IxDyn(&[]), 2.5f32)).unwrap(),
                &g,
            ),
            check(
                export::from_array_mut(py, Array2::<f32>::zeros((0, 3))).unwrap(),
                &g,
            ),
            check(
                export::from_vec_mut(py, vec![[1.0f32, 2.0, 3.0]; 4]).unwrap(),
                &g,
            ),
        ];
        let count = in_place.iter().filter(|&&shared| shared).count();
        println!("jax used {count} of {} exports in place", in_place.len());
        // XLA takes CPU memory in place when it is aligned to 64 bytes
        let storage = Array1::from_vec(iota(64 + 16));
        let skip = (0..16)
            .find(|k| (storage.as_ptr() as usize + 4 * k) % 64 == 0)
            .unwrap();
        let aligned = storage.slice_move(s![skip..skip + 64]);
        assert!(
            check(export::from_array_mut(py, aligned).unwrap(), &g),
            "jax copied 64-byte aligned memory"
        );
    });
}

#[test]
fn jax_refusals_leave_no_view_behind() {
    Python::attach(|py| {
        let Some(g) = jax(py) else { return };
        // jax asks for a legacy capsule, which read-only memory cannot be
        let r = export::from_vec(py, iota(4)).unwrap();
        g.set_item("r", &r).unwrap();
        run(
            py,
            &g,
            "try:\n    jnp.from_dlpack(r)\n    err = None\nexcept BufferError as e:\n    err = str(e)\n",
        );
        let err: Option<String> = eval(&g, "err").extract().unwrap();
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("max_version >= (1, 0)")),
            "{err:?}"
        );
        assert_eq!(r.view_count(), 0);
        // negative strides: jax refuses them itself, after taking the capsule
        let mut m = Array2::from_shape_vec((2, 3), iota(6)).unwrap();
        m.invert_axis(Axis(1));
        let x = export::from_array_mut(py, m).unwrap();
        g.set_item("x", &x).unwrap();
        run(
            py,
            &g,
            "try:\n    jnp.from_dlpack(x)\n    refused = False\nexcept Exception as e:\n    refused = 'strid' in str(e)\n",
        );
        assert!(eval(&g, "refused").extract::<bool>().unwrap());
        wait_for_no_views(&x, &g);
        g.del_item("x").unwrap();
        assert!(x.try_into_inner().is_ok());
    });
}

#[test]
fn jax_reads_bfloat16_exports() {
    Python::attach(|py| {
        let Some(g) = jax(py) else { return };
        let values: Vec<half::bf16> = [1.5f32, -2.0, 3.140625, 65280.0]
            .iter()
            .map(|&v| half::bf16::from_f32(v))
            .collect();
        let x = export::from_vec_mut(py, values).unwrap();
        g.set_item("x", &x).unwrap();
        run(
            py,
            &g,
            "j = jnp.from_dlpack(x)\n\
             dtype = str(j.dtype)\n\
             from_jax = np.asarray(j).astype('float32').tolist()\n\
             ours = x.tolist()\n\
             del j\n",
        );
        assert_eq!(eval(&g, "dtype").extract::<String>().unwrap(), "bfloat16");
        let expected = vec![1.5f64, -2.0, 3.140625, 65280.0];
        assert_eq!(
            eval(&g, "from_jax").extract::<Vec<f64>>().unwrap(),
            expected
        );
        assert_eq!(eval(&g, "ours").extract::<Vec<f64>>().unwrap(), expected);
        wait_for_no_views(&x, &g);
        g.del_item("x").unwrap();
        assert!(x.try_into_inner().is_ok());
    });
}
