//! Release from anywhere, through the public API (`Buffer`, `AnyBuffer`, `flush_releases`,
//! `pending_releases`).
//!
//! The queue and the interpreter's lifetime are process-wide, so every scenario runs alone in
//! a child process: each visible test re-executes this test binary with
//! `--exact <child> --ignored` and checks its exit status and output.

mod common;

use std::ffi::CString;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pybuf::{flush_releases, pending_releases, AnyBuffer};
use pyo3::exceptions::PyBufferError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyDict};

fn run_child(child: &str) -> String {
    let exe = std::env::current_exe().expect("test binary path");
    let out = Command::new(exe)
        .args([
            child,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .expect("spawn child test process");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child {child} failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("CHILD-OK") || stdout.contains("CHILD-SKIPPED"),
        "child {child} did not finish\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

/// Python's answer to "can this bytearray be resized?": `Err` with the exception type name
/// when it cannot.
fn try_resize(ba: &Bound<'_, PyByteArray>) -> Result<(), String> {
    let py = ba.py();
    let locals = PyDict::new(py);
    locals.set_item("ba", ba).unwrap();
    match py.run(c"ba.extend(b'x')\ndel ba[-1]\n", None, Some(&locals)) {
        Ok(()) => Ok(()),
        Err(e) => {
            assert!(
                e.is_instance_of::<PyBufferError>(py),
                "unexpected error {e}"
            );
            Err(e.get_type(py).name().unwrap().to_string())
        }
    }
}

/// `sys.getrefcount(obj)`, as Python reports it.
fn refcount(obj: &Bound<'_, PyAny>) -> usize {
    let sys = obj.py().import("sys").unwrap();
    sys.call_method1("getrefcount", (obj,))
        .unwrap()
        .extract()
        .unwrap()
}

/// The reference count read directly (`Py_REFCNT`): unlike `sys.getrefcount`, it runs no
/// Python code, so no pending call can run in between.
fn refcnt(obj: &Bound<'_, PyAny>) -> isize {
    // SAFETY: `obj` is a live object and we are attached (it is bound).
    unsafe { pyo3::ffi::Py_REFCNT(obj.as_ptr()) }
}

fn run_python(py: Python<'_>, code: &str) {
    let code = CString::new(code).unwrap();
    py.run(&code, None, None).unwrap();
}

const BUSY: &str = "BufferError";

#[test]
fn bytearray_resizes_after_drop_on_plain_thread() {
    run_child("child_bytearray_plain_thread");
}

#[test]
#[ignore = "child process of bytearray_resizes_after_drop_on_plain_thread"]
fn child_bytearray_plain_thread() {
    Python::attach(|py| {
        let ba = PyByteArray::new(py, b"hello world");
        let buf = AnyBuffer::get(ba.as_any()).unwrap();
        assert_eq!(try_resize(&ba), Err(BUSY.to_string()));

        // A thread that never touched Python: the drop is queued, not released.
        std::thread::spawn(move || drop(buf)).join().unwrap();
        assert_eq!(pending_releases(), 1);
        assert_eq!(flush_releases(py), 1);
        assert_eq!(pending_releases(), 0);
        assert_eq!(try_resize(&ba), Ok(()));

        // Again, drained by the next acquisition instead.
        let nd = AnyBuffer::get(ba.as_any()).unwrap();
        std::thread::spawn(move || drop(nd)).join().unwrap();
        assert_eq!(pending_releases(), 1);
        let next = AnyBuffer::get(PyByteArray::new(py, b"x").as_any()).unwrap();
        assert_eq!(pending_releases(), 0);
        assert_eq!(try_resize(&ba), Ok(()));

        // Dropped attached: released at once ...
        let buf = AnyBuffer::get(ba.as_any()).unwrap();
        drop(buf);
        let any = AnyBuffer::get(ba.as_any()).unwrap();
        assert_eq!(try_resize(&ba), Err(BUSY.to_string()));
        drop(any);
        drop(next);
        if common::attached_drops_release_at_once(py) {
            assert_eq!(pending_releases(), 0);
        } else {
            // ... except on a stable-ABI build on CPython 3.11: queued like any other drop,
            // so the view keeps its reference to the bytearray until the queue is drained.
            // (Counted without running Python code, which could run the pending call.)
            assert_eq!(pending_releases(), 2);
            let held = refcnt(ba.as_any());
            assert_eq!(flush_releases(py), 2);
            assert_eq!(refcnt(ba.as_any()), held - 1);
        }
        assert_eq!(try_resize(&ba), Ok(()));

        // Dropped inside `detach`: queued.
        let buf = AnyBuffer::get(ba.as_any()).unwrap();
        py.detach(move || drop(buf));
        assert_eq!(pending_releases(), 1);
        assert_eq!(flush_releases(py), 1);
        assert_eq!(try_resize(&ba), Ok(()));
    });
    println!("CHILD-OK");
}

#[test]
fn queued_release_happens_while_only_python_code_runs() {
    run_child("child_pending_call");
}

#[test]
#[ignore = "child process of queued_release_happens_while_only_python_code_runs"]
fn child_pending_call() {
    Python::attach(|py| {
        let ba = PyByteArray::new(py, b"hello");
        let buf = AnyBuffer::get(ba.as_any()).unwrap();
        std::thread::spawn(move || drop(buf)).join().unwrap();
        assert_eq!(pending_releases(), 1);
        // No acquisition and no flush from here on, only Python code: the pending call that
        // the drop scheduled releases it. (This thread started the interpreter, so it is the
        // one CPython runs pending calls on.)
        let start = Instant::now();
        let locals = PyDict::new(py);
        locals.set_item("ba", &ba).unwrap();
        loop {
            let resized = py
                .run(
                    c"try:\n    ba.append(0)\n    ok = True\nexcept BufferError:\n    ok = False\n",
                    None,
                    Some(&locals),
                )
                .map(|()| {
                    locals
                        .get_item("ok")
                        .unwrap()
                        .unwrap()
                        .extract::<bool>()
                        .unwrap()
                })
                .unwrap();
            if resized {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "pending call never ran"
            );
        }
        assert_eq!(pending_releases(), 0);
    });
    println!("CHILD-OK");
}

#[test]
fn attached_drop_is_released_before_python_code_needs_it() {
    run_child("child_attached_drop_python_code");
}

/// What a Python caller of an extension function sees: the function acquires and drops a
/// buffer on the (attached) main thread, and Python code then resizes the bytearray. With the
/// full API the drop released it at once; on a stable-ABI build on CPython 3.11 the drop was
/// queued, and the pending call it scheduled releases it as soon as Python code runs, with
/// no acquisition and no flush.
#[test]
#[ignore = "child process of attached_drop_is_released_before_python_code_needs_it"]
fn child_attached_drop_python_code() {
    Python::attach(|py| {
        let ba = PyByteArray::new(py, b"hello");
        drop(AnyBuffer::get(PyByteArray::new(py, b"x").as_any()).unwrap()); // first acquisition
        flush_releases(py);
        for round in 0..3 {
            let buf = AnyBuffer::get(ba.as_any()).unwrap();
            assert_eq!(try_resize(&ba), Err(BUSY.to_string()));
            drop(buf);
            if common::attached_drops_release_at_once(py) {
                assert_eq!(pending_releases(), 0, "round {round}");
            } else {
                assert_eq!(pending_releases(), 1, "round {round}");
                // Python code only: the eval loop runs the pending call before the resize.
                run_python(py, "pass");
                assert_eq!(
                    pending_releases(),
                    0,
                    "round {round}: pending call did not run"
                );
            }
            assert_eq!(try_resize(&ba), Ok(()), "round {round}");
        }
    });
    println!("CHILD-OK");
}

#[test]
fn drop_completes_while_lock_holder_waits_for_the_dropping_thread() {
    run_child("child_lock_holder_waits");
}

#[test]
#[ignore = "child process of drop_completes_while_lock_holder_waits_for_the_dropping_thread"]
fn child_lock_holder_waits() {
    Python::attach(|py| {
        let ba = PyByteArray::new(py, b"hello");
        let buf = AnyBuffer::get(ba.as_any()).unwrap();
        let (tx, rx) = mpsc::channel();
        let worker = std::thread::spawn(move || {
            drop(buf);
            tx.send(()).unwrap();
        });
        // This thread holds the interpreter lock and waits for the dropping thread. With
        // `pyo3::buffer::PyBuffer` this deadlocks (its Drop waits for our lock).
        rx.recv_timeout(Duration::from_secs(20))
            .expect("the drop blocked while another thread held the interpreter lock");
        worker.join().unwrap();
        assert_eq!(pending_releases(), 1);
        assert_eq!(flush_releases(py), 1);
        assert_eq!(try_resize(&ba), Ok(()));
    });
    println!("CHILD-OK");
}

#[test]
fn eight_threads_drop_80000_buffers_while_python_runs() {
    run_child("child_many_threads");
}

#[test]
#[ignore = "child process of eight_threads_drop_80000_buffers_while_python_runs"]
fn child_many_threads() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 10_000;
    let start = Instant::now();
    Python::attach(|py| {
        let np = py.import("numpy").unwrap();
        // Even threads hold bytearrays, odd ones numpy arrays.
        let objects: Vec<Bound<'_, PyAny>> = (0..THREADS)
            .map(|i| {
                if i % 2 == 0 {
                    PyByteArray::new(py, &[i as u8; 16]).into_any()
                } else {
                    np.call_method1("arange", (16.0f64,)).unwrap()
                }
            })
            .collect();
        let base: Vec<usize> = objects.iter().map(refcount).collect();
        let batches: Vec<Vec<AnyBuffer>> = objects
            .iter()
            .map(|obj| {
                (0..PER_THREAD)
                    .map(|_| AnyBuffer::get(obj).unwrap())
                    .collect()
            })
            .collect();
        for (obj, b) in objects.iter().zip(&base) {
            assert_eq!(refcount(obj), b + PER_THREAD);
        }
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(THREADS));
        let workers: Vec<_> = batches
            .into_iter()
            .map(|batch| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    for b in batch {
                        drop(b);
                    }
                })
            })
            .collect();
        // The main thread keeps running Python code and acquiring buffers meanwhile.
        let scratch = PyByteArray::new(py, b"scratch");
        let mut rounds = 0u64;
        while !workers.iter().all(|w| w.is_finished()) {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "drops did not finish"
            );
            run_python(py, "sum(range(200))");
            drop(AnyBuffer::get(scratch.as_any()).unwrap());
            rounds += 1;
        }
        for w in workers {
            w.join().unwrap();
        }
        let flushed = flush_releases(py);
        println!("main-thread rounds: {rounds}; left for the final flush: {flushed}");
        assert_eq!(pending_releases(), 0);
        // Exactly one release per acquisition: the views' references are all gone, no more.
        for (i, (obj, b)) in objects.iter().zip(&base).enumerate() {
            assert_eq!(refcount(obj), *b, "object {i}");
            if let Ok(ba) = obj.cast::<PyByteArray>() {
                assert_eq!(try_resize(ba), Ok(()));
            } else {
                // numpy refuses an in-place resize while anything references the array.
                obj.call_method1("resize", (32,)).unwrap();
            }
        }
    });
    let elapsed = start.elapsed();
    println!("elapsed: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(120));
    println!("CHILD-OK");
}

#[test]
fn pep688_release_buffer_called_exactly_once_per_acquisition() {
    let out = run_child("child_pep688");
    if out.contains("CHILD-SKIPPED") {
        println!("skipped: PEP 688 needs Python 3.12+ (see the child's note)");
    }
}

#[test]
#[ignore = "child process of pep688_release_buffer_called_exactly_once_per_acquisition"]
fn child_pep688() {
    let ran = Python::attach(|py| {
        let version = py.version_info();
        if version < (3, 12) {
            println!(
                "note: PEP 688 (__buffer__/__release_buffer__) needs Python 3.12+, this is \
                 {}.{}; run with PYBUF_PYTHON=~/.pyenv/versions/3.12.1/bin/python3.12 and a \
                 separate PYBUF_VENV",
                version.major, version.minor
            );
            println!("CHILD-SKIPPED");
            return false;
        }
        let ns = PyDict::new(py);
        py.run(
            c"
import threading
class Exporter:
    def __init__(self):
        self.data = bytearray(b'abcdefgh')
        self.gets = 0
        self.releases = 0
        self.release_threads = []
        self.lock = threading.Lock()
    def __buffer__(self, flags):
        with self.lock:
            self.gets += 1
        return memoryview(self.data)
    def __release_buffer__(self, view):
        with self.lock:
            self.releases += 1
            self.release_threads.append(threading.get_ident())
        view.release()
exporter = Exporter()
",
            Some(&ns),
            None,
        )
        .unwrap();
        let exporter = ns.get_item("exporter").unwrap().unwrap();
        let count = |name: &str| -> usize { exporter.getattr(name).unwrap().extract().unwrap() };
        let ident = |py: Python<'_>| -> u64 {
            py.import("threading")
                .unwrap()
                .call_method0("get_ident")
                .unwrap()
                .extract()
                .unwrap()
        };
        let main_ident = ident(py);

        // Dropped attached on this thread: released at once, here.
        let b = AnyBuffer::get(&exporter).unwrap();
        assert_eq!((count("gets"), count("releases")), (1, 0));
        drop(b);
        assert_eq!((count("gets"), count("releases")), (1, 1));

        // Dropped on another thread while it is attached: released at once, there.
        let b = AnyBuffer::get(&exporter).unwrap();
        let other_ident = py.detach(move || {
            std::thread::spawn(move || {
                Python::attach(|py| {
                    drop(b);
                    ident(py)
                })
            })
            .join()
            .unwrap()
        });
        assert_eq!((count("gets"), count("releases")), (2, 2));

        // Dropped on 4 plain threads, 250 each: queued, then released exactly once each.
        let batches: Vec<Vec<AnyBuffer>> = (0..4)
            .map(|_| {
                (0..250)
                    .map(|_| AnyBuffer::get(&exporter).unwrap())
                    .collect()
            })
            .collect();
        assert_eq!((count("gets"), count("releases")), (1002, 2));
        py.detach(|| {
            let hs: Vec<_> = batches
                .into_iter()
                .map(|batch| std::thread::spawn(move || drop(batch)))
                .collect();
            hs.into_iter().for_each(|h| h.join().unwrap());
        });
        flush_releases(py);
        assert_eq!(pending_releases(), 0);
        assert_eq!(count("gets"), 1002);
        assert_eq!(count("releases"), 1002);
        let threads: Vec<u64> = exporter
            .getattr("release_threads")
            .unwrap()
            .extract()
            .unwrap();
        assert_eq!(threads.len(), 1002);
        assert_eq!(threads[0], main_ident);
        assert_eq!(threads[1], other_ident);
        assert_ne!(other_ident, main_ident);

        // A failed acquisition is never released: an exporter whose __buffer__ raises.
        py.run(
            c"
class Refuses(Exporter):
    def __buffer__(self, flags):
        self.gets += 1
        raise BufferError('no')
refuses = Refuses()
",
            Some(&ns),
            None,
        )
        .unwrap();
        let refuses = ns.get_item("refuses").unwrap().unwrap();
        assert!(AnyBuffer::get(&refuses).is_err());
        flush_releases(py);
        assert_eq!(
            refuses.getattr("gets").unwrap().extract::<usize>().unwrap(),
            1
        );
        assert_eq!(
            refuses
                .getattr("releases")
                .unwrap()
                .extract::<usize>()
                .unwrap(),
            0
        );
        true
    });
    if ran {
        println!("CHILD-OK");
    }
}

#[test]
fn process_exits_with_buffers_alive_and_queued() {
    run_child("child_exit");
}

#[test]
#[ignore = "child process of process_exits_with_buffers_alive_and_queued"]
fn child_exit() {
    let (alive, queued, streaming) = Python::attach(|py| {
        let ba = PyByteArray::new(py, b"hello");
        let get = || AnyBuffer::get(ba.as_any()).unwrap();
        let alive: Vec<_> = (0..100).map(|_| get()).collect();
        let queued: Vec<_> = (0..100).map(|_| get()).collect();
        let streaming: Vec<_> = (0..10_000).map(|_| get()).collect();
        (alive, queued, streaming)
    });
    std::thread::spawn(move || drop(queued)).join().unwrap();
    assert_eq!(pending_releases(), 100);
    // A thread still dropping while the process exits.
    std::thread::spawn(move || {
        for b in streaming {
            drop(b);
            std::thread::yield_now();
        }
    });
    std::mem::forget(alive);
    println!("CHILD-OK");
    std::process::exit(0);
}

#[test]
fn explicit_finalization_with_buffers_alive_and_queued() {
    let out = run_child("child_finalize");
    assert!(out.contains("finalized"), "{out}");
}

#[test]
#[ignore = "child process of explicit_finalization_with_buffers_alive_and_queued"]
fn child_finalize() {
    let (alive, queued, streaming) = Python::attach(|py| {
        let ba = PyByteArray::new(py, b"hello");
        let get = || AnyBuffer::get(ba.as_any()).unwrap();
        let alive: Vec<_> = (0..100).map(|_| get()).collect();
        let queued: Vec<_> = (0..100).map(|_| get()).collect();
        let streaming: Vec<_> = (0..20_000).map(|_| get()).collect();
        (alive, queued, streaming)
    });
    std::thread::spawn(move || drop(queued)).join().unwrap();
    assert_eq!(pending_releases(), 100);
    let streamer = std::thread::spawn(move || {
        for (i, b) in streaming.into_iter().enumerate() {
            drop(b);
            if i % 100 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    std::thread::sleep(Duration::from_millis(20));
    // SAFETY: this thread started the interpreter (first attach in this process) and holds
    // no PyO3 token now; it takes the lock, finalizes, and never calls into Python again.
    let rc = unsafe {
        pyo3::ffi::PyGILState_Ensure();
        pyo3::ffi::Py_FinalizeEx()
    };
    assert_eq!(rc, 0);
    println!("finalized");
    // The 100 queued before finalization were released by pybuf's atexit hook.
    let left = pending_releases();
    let overlapped = !streamer.is_finished();
    drop(alive); // after finalization: leaked, not touched
    streamer.join().unwrap();
    println!(
        "queued after finalization: {left} -> {}; streamer overlapped finalization: {overlapped}",
        pending_releases()
    );
    assert!(
        left < 100 || overlapped,
        "the atexit hook did not drain the queue"
    );
    println!("CHILD-OK");
    std::process::exit(0);
}
