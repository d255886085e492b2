//! Issue 12, finding 1: `write()`, `set_item()` and `copy_from_slice()` on a read-only buffer
//! build `Error::ReadOnly` with the exporter's type name. A Python thread renames the numpy
//! subclass (`__name__`, `__qualname__`) and swaps the array's `__class__` in a loop, which
//! frees the old name strings, while Rust makes those calls, detached (`py.detach`) and
//! attached. Every message must name a type the exporter really had (no torn or freed name);
//! under valgrind, no read of freed memory.
#![allow(dead_code)]

use std::collections::HashSet;

use pybuf::{AnyBuffer, Buffer1, Error};
use pyo3::prelude::*;
use pyo3::types::PyDict;

const SETUP: &str = r#"
import threading
import numpy as np

class ReadOnlyArray(np.ndarray):
    pass

class OtherReadOnlyArray(np.ndarray):
    pass

# Stems of several lengths; each rename makes a fresh string (stem + "_" + counter) that only
# the type holds, so the next rename frees it.
STEMS = ["N" + c * k for c in "ABCDEFGH" for k in (3, 17, 61, 200)]
a = np.arange(64, dtype=np.int64).view(ReadOnlyArray)
a.flags.writeable = False
progress = [0]
stop = threading.Event()

def storm():
    i = 0
    while not stop.is_set():
        n = len(STEMS)
        ReadOnlyArray.__name__ = STEMS[i % n] + "_" + str(i)
        ReadOnlyArray.__qualname__ = STEMS[(7 * i + 3) % n] + "_" + str(i)
        OtherReadOnlyArray.__name__ = STEMS[(5 * i + 1) % n] + "_" + str(i)
        OtherReadOnlyArray.__qualname__ = STEMS[(3 * i + 2) % n] + "_" + str(i)
        a.__class__ = OtherReadOnlyArray if i & 1 else ReadOnlyArray
        i += 1
        progress[0] = i

thread = threading.Thread(target=storm, daemon=True)
thread.start()
"#;

/// Whether `name` is one the storm gives: a stem (`N` and one letter repeated as many times as
/// in a stem) and `_` and a counter, or one of the original class names.
fn well_formed(name: &str, stems: &HashSet<String>) -> bool {
    if name == "ReadOnlyArray" || name == "OtherReadOnlyArray" {
        return true;
    }
    match name.split_once('_') {
        Some((stem, counter)) => {
            stems.contains(stem)
                && !counter.is_empty()
                && counter.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// Whether the message names a type the exporter really had (optionally with its module).
fn coherent(msg: &str, stems: &HashSet<String>) -> Result<(), String> {
    let prefix = "expected a writable buffer, got a read-only buffer from '";
    let name = msg
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix('\''))
        .ok_or_else(|| format!("unexpected message {msg:?}"))?;
    let bare = name.strip_prefix("storm.").unwrap_or(name);
    if well_formed(bare, stems) {
        Ok(())
    } else {
        Err(format!("torn or unknown type name {name:?} in {msg:?}"))
    }
}

fn check(result: Result<(), Error>, names: &HashSet<String>, bad: &mut Vec<String>) {
    match result {
        Err(e @ Error::ReadOnly { .. }) => {
            if let Err(problem) = coherent(&e.to_string(), names) {
                bad.push(problem);
            }
        }
        Err(e) => bad.push(format!("expected ReadOnly, got {e}")),
        Ok(()) => bad.push("a write to read-only memory succeeded".into()),
    }
}

/// `batches` times: acquire while attached, then `per_batch` rounds of the three writes
/// detached and a few attached.
pub fn run(batches: usize, per_batch: usize) {
    Python::attach(|py| {
        let g = PyDict::new(py);
        g.set_item("__name__", "storm").unwrap();
        py.run(&std::ffi::CString::new(SETUP).unwrap(), Some(&g), None)
            .unwrap();
        let stems: Vec<String> = g.get_item("STEMS").unwrap().unwrap().extract().unwrap();
        let names: HashSet<String> = stems.into_iter().collect();
        let a = g.get_item("a").unwrap().unwrap();
        let src = vec![0i64; 64];
        let mut bad = Vec::new();
        let mut calls = 0usize;
        for _ in 0..batches {
            let buf = Buffer1::<i64>::get(&a).expect("a read-only numpy array");
            let any = AnyBuffer::get(&a).expect("a read-only numpy array");
            // the name recorded at acquisition, attached
            check(Buffer1::<i64>::get_mut(&a).map(drop), &names, &mut bad);
            check(AnyBuffer::get_mut(&a).map(drop), &names, &mut bad);
            let detached_bad = py.detach(|| {
                let mut bad = Vec::new();
                for _ in 0..per_batch {
                    check(buf.write().map(drop), &names, &mut bad);
                    check(buf.set_item(0, 1), &names, &mut bad);
                    check(buf.copy_from_slice(&src), &names, &mut bad);
                }
                bad
            });
            bad.extend(detached_bad);
            for _ in 0..per_batch.min(10) {
                check(buf.write().map(drop), &names, &mut bad);
                check(buf.set_item(63, 1), &names, &mut bad);
                check(buf.copy_from_slice(&src), &names, &mut bad);
            }
            calls += 3 * per_batch + 3 * per_batch.min(10) + 2;
            drop(any);
        }
        py.run(c"stop.set(); thread.join()", Some(&g), None)
            .unwrap();
        let renames: usize = py
            .eval(c"progress[0]", Some(&g), None)
            .unwrap()
            .extract()
            .unwrap();
        assert!(renames > 0, "the rename thread never ran");
        assert!(
            bad.is_empty(),
            "{} of {calls} read-only errors (with {renames} renames) were wrong, e.g. {:?}",
            bad.len(),
            &bad[..bad.len().min(5)]
        );
        // the array is unchanged: all the writes were refused
        let unchanged: bool = py
            .eval(c"bool((a == np.arange(64)).all())", Some(&g), None)
            .unwrap()
            .extract()
            .unwrap();
        assert!(unchanged);
    });
}
