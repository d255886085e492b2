//! Fork safety (issue 17, finding 2): a child forked while other threads are inside pybuf's
//! release gate, its release queue or its borrow registry must exit promptly and be able to
//! acquire and borrow.
//!
//! Worker threads drop buffers (each drop away from the interpreter queues the release and
//! schedules a pending call through the release gate) and take borrows of every kind in a
//! loop (the registry lock, the momentary one-item path), while the main thread forks
//! thousands of times with `logging` imported (its before-fork hook widens the window). Each
//! child acquires, borrows, flushes, runs the atexit hooks (pybuf's hook closes the release
//! gate and waits for it) and exits. The parent waits for every child with a deadline: a
//! child still alive after it is a hang (killed, and the test fails). Before the fix, children
//! hung in the atexit hook (a gate count inherited from a thread that no longer exists) or on
//! their first borrow (a registry lock held by such a thread).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use pybuf::{flush_releases, Buffer1};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyDict};

/// How many forks: `PYBUF_FORKS` or 2,000.
fn forks() -> usize {
    std::env::var("PYBUF_FORKS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000)
}

/// What the child runs right after the fork: everything a pybuf user does, on fresh memory.
#[pyfunction]
fn child_check(py: Python<'_>) -> PyResult<()> {
    let ba = PyByteArray::new(py, &[7u8; 64]);
    let buf = Buffer1::<u8>::get_mut(ba.as_any())?;
    {
        let mut w = buf.write()?;
        w.as_slice_mut().expect("contiguous")[0] = 1;
    }
    {
        let r = buf.read()?;
        let r2 = buf.read()?;
        assert_eq!(r.as_slice().unwrap()[0], 1);
        assert_eq!(r2.as_slice().unwrap()[1], 7);
    }
    buf.set_item(2, 9)?;
    assert_eq!(buf.item(2)?, 9);
    assert_eq!(buf.to_vec()?[..3], [1, 7, 9]);
    drop(buf);
    flush_releases(py);
    // Python agrees that the memory is ours again: a resize needs no export to be live.
    ba.call_method1("extend", (b"x".as_slice(),))?;
    Ok(())
}

/// Handles sent from the main thread to the dropping thread.
type Batch = Vec<Buffer1<f64>>;

#[test]
fn children_forked_during_drops_and_borrows_exit_and_can_borrow() {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<Batch>();
    let tx = Arc::new(Mutex::new(tx));

    Python::attach(|py| {
        let g = PyDict::new(py);
        py.run(
            c"import numpy as np, os, time, logging, atexit\n\
              logging.getLogger('pybuf-fork-test').info('logging loaded')\n\
              feed_src = [np.arange(16, dtype=np.float64) for _ in range(8)]\n\
              own = [np.arange(64, dtype=np.float64) for _ in range(3)]\n",
            Some(&g),
            None,
        )
        .unwrap();
        let feed_src: Vec<Py<PyAny>> = g
            .get_item("feed_src")
            .unwrap()
            .unwrap()
            .try_iter()
            .unwrap()
            .map(|a| a.unwrap().unbind())
            .collect();
        let own: Vec<Buffer1<f64>> = g
            .get_item("own")
            .unwrap()
            .unwrap()
            .try_iter()
            .unwrap()
            .map(|a| Buffer1::<f64>::get_mut(&a.unwrap()).unwrap())
            .collect();

        // Dropping thread: every drop here is away from the interpreter, so it queues the
        // release and schedules a pending call through the release gate.
        let dropper_stop = stop.clone();
        let dropper = std::thread::spawn(move || {
            while !dropper_stop.load(Ordering::Relaxed) {
                if let Ok(batch) = rx.recv_timeout(std::time::Duration::from_millis(5)) {
                    for b in batch {
                        drop(b);
                    }
                }
            }
            while let Ok(batch) = rx.try_recv() {
                drop(batch);
            }
        });
        // Borrowing threads: the registry lock and the momentary one-item path, constantly.
        let borrowers: Vec<_> = own
            .into_iter()
            .enumerate()
            .map(|(k, buf)| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut i = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        i = i.wrapping_add(1);
                        match k {
                            0 => {
                                let r = buf.read().unwrap();
                                let r2 = buf.read().unwrap();
                                std::hint::black_box((r.as_slice(), r2.as_slice()));
                            }
                            1 => {
                                let mut w = buf.write().unwrap();
                                w.as_slice_mut().unwrap()[i % 64] = i as f64;
                            }
                            _ => {
                                buf.set_item(i % 64, 1.5).unwrap();
                                std::hint::black_box(buf.item((i + 1) % 64).unwrap());
                            }
                        }
                    }
                })
            })
            .collect();

        let feed_tx = tx.clone();
        let feed = pyo3::types::PyCFunction::new_closure(py, None, None, move |args, _| {
            let py = args.py();
            let batch: Batch = feed_src
                .iter()
                .cycle()
                .take(32)
                .map(|a| Buffer1::<f64>::get(a.bind(py)).unwrap())
                .collect();
            feed_tx.lock().unwrap().send(batch).unwrap();
        })
        .unwrap();
        g.set_item("feed", feed).unwrap();
        g.set_item("child_check", wrap_pyfunction!(child_check, py).unwrap())
            .unwrap();
        g.set_item("FORKS", forks()).unwrap();
        let result = py.run(
            c"def run():\n\
              \x20   for i in range(FORKS):\n\
              \x20       feed()\n\
              \x20       pid = os.fork()\n\
              \x20       if pid == 0:\n\
              \x20           code = 0\n\
              \x20           try:\n\
              \x20               child_check()\n\
              \x20               atexit._run_exitfuncs()\n\
              \x20           except BaseException:\n\
              \x20               code = 3\n\
              \x20           os._exit(code)\n\
              \x20       deadline = time.monotonic() + 30.0\n\
              \x20       while True:\n\
              \x20           done, status = os.waitpid(pid, os.WNOHANG)\n\
              \x20           if done:\n\
              \x20               break\n\
              \x20           if time.monotonic() > deadline:\n\
              \x20               os.kill(pid, 9)\n\
              \x20               os.waitpid(pid, 0)\n\
              \x20               return f'child {i} of {FORKS} hung (killed after 30 s)'\n\
              \x20           time.sleep(0.0002)\n\
              \x20       if os.waitstatus_to_exitcode(status) != 0:\n\
              \x20           return f'child {i} exited with {os.waitstatus_to_exitcode(status)}'\n\
              \x20   return 'ok'\n\
              outcome = run()\n",
            Some(&g),
            None,
        );
        stop.store(true, Ordering::Relaxed);
        let outcome: String = match result {
            Ok(()) => g.get_item("outcome").unwrap().unwrap().extract().unwrap(),
            Err(e) => format!("fork loop raised: {e}"),
        };
        py.detach(|| {
            for b in borrowers {
                b.join().unwrap();
            }
            dropper.join().unwrap();
        });
        flush_releases(py);
        assert_eq!(outcome, "ok");
    });
}
