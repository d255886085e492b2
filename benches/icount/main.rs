//! Instruction counts per operation under callgrind: pybuf against raw CPython, PyO3's
//! `PyBuffer`, rust-numpy and an `ndarray` view, every variant in one process (issue 13).
//!
//! Run it with `bash scripts/icount.sh` (which builds this bench target, runs it under
//! `valgrind --tool=callgrind` and prints the Markdown table; `--update` also rewrites the
//! table in BENCHMARKS.md). Run without Valgrind (`cargo bench --bench icount`, or as part
//! of `cargo test --all-targets`), it runs every variant a few times as a smoke test and
//! prints no counts.
//!
//! How a variant is counted: its closure runs `WARMUP` times (first-use work such as lazy
//! statics, per-thread caches and rust-numpy's borrow-checking capsule stays out), then the
//! counters are zeroed (callgrind client request), the closure runs `n` times in
//! [`repeat`], and the counters are dumped; instructions per operation = the dump's total /
//! `n`. The counted region is only that loop, so creating the Python objects, importing
//! numpy and building the live borrows are never counted. Every count includes the loop's
//! own few instructions per iteration (printed under the table). These counts are exact:
//! the same build gives the same numbers in every run, and `n` changes them only through the
//! fixed cost of starting and ending a loop (0.2 instructions per operation at n = 2,000).
//!
//! The rows with live borrows are averages, because a registry that is a randomized search
//! tree costs more for some borrows than for others: the borrow on a held handle takes turns
//! over `PROBES` arrays spread over the address range (among the live ones), and the count is
//! split over several freshly built sets of live borrows ([`Harness::measure_each`]). What
//! remains is a spread of about ±2 % between runs that change the random draws.
//!
//! To add a variant: one `.run(Imp::..., |i| ...)` on a row (`i` is the iteration number,
//! opaque to the optimizer). Only public APIs of pybuf are used.

#[path = "../common/mod.rs"]
mod common;

mod callgrind;
mod report;

use std::ffi::CString;
use std::hint::black_box;
use std::path::PathBuf;

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadwriteArray1};
use pybuf::{AnyBuffer, Buffer1, Buffer2};
use pyo3::buffer::PyBuffer;
use pyo3::{ffi, prelude::*};

use report::{Imp, Row};

/// Iterations per counted variant unless `--n N` says otherwise.
const DEFAULT_N: usize = 20_000;
/// Uncounted iterations before each count.
const WARMUP: usize = 100;
/// Live borrows of other arrays held during the `read()` / `readonly()` rows.
const LIVE_OTHERS: [usize; 3] = [1_000, 10_000, 100_000];
/// Freshly built sets of those live borrows each of these rows is averaged over. A
/// randomized registry (a treap) has a different shape, and so a different mean depth, each
/// time it is built: one set alone gives counts that move by about ±5 % with anything that
/// changes its random draws (such as `--n`).
const LIVE_SEGMENTS: [usize; 3] = [16, 16, 4];
/// Live borrows of the same array held during the last `read()` / `readonly()` row.
const LIVE_SAME: usize = 1_000;
/// Sets of those the row is averaged over: more than for other arrays, because every new
/// borrow of the same array lands at the same place among them (only the shape averages).
const SAME_SEGMENTS: usize = 64;
/// Environment variable naming callgrind's `--callgrind-out-file` (set by the script).
const OUT_VAR: &str = "ICOUNT_CALLGRIND_OUT";

/// Held arrays the borrow rows take turns on (see [`data`]).
const PROBES: usize = 256;

/// The Python side, created before anything is counted.
///
/// Borrows on held handles are measured on `PROBES` arrays in turn, spread over the
/// allocation (and so the address) order; the live borrows are of the other arrays, shuffled
/// so that any prefix of them is spread over the addresses too. A registry keyed by address
/// costs more at some positions than at others: this averages over positions instead of
/// measuring one by chance.
fn data(py: Python<'_>) -> Bound<'_, pyo3::types::PyModule> {
    let live = LIVE_OTHERS[LIVE_OTHERS.len() - 1];
    let code = format!(
        "
import random

import numpy as np

a8 = np.arange(8, dtype=np.float64)
a34 = np.arange(12, dtype=np.float64).reshape(3, 4)
b16 = bytes(range(16))
ba16 = bytearray(range(16))

# a8 behind its __array_interface__ dict only (a property, as array libraries do)
class ArrayInterfaceOnly:
    @property
    def __array_interface__(self):
        return a8.__array_interface__

# a8 behind its __array_struct__ capsule only
class ArrayStructOnly:
    @property
    def __array_struct__(self):
        return a8.__array_struct__

ai8 = ArrayInterfaceOnly()
as8 = ArrayStructOnly()

arrays = [np.zeros(16) for _ in range({live} + {PROBES})]
probes = arrays[:: len(arrays) // {PROBES}][:{PROBES}]
probe_ids = {{id(a) for a in probes}}
others = [a for a in arrays if id(a) not in probe_ids]
random.Random(0).shuffle(others)
del arrays, probe_ids
"
    );
    common::module(py, &CString::new(code).unwrap())
}

/// The loop every counted variant runs in: `f(i)` for `i` in `0..n`, with `i` opaque to
/// the optimizer.
#[inline(never)]
fn repeat<F: FnMut(usize)>(n: usize, f: &mut F) {
    for i in 0..n {
        f(black_box(i));
    }
}

enum Mode {
    /// Under callgrind: counts come from its dumps.
    Count(callgrind::Dumps),
    /// Natively: every variant runs `WARMUP` times, nothing is counted.
    Smoke,
}

struct Harness {
    n: usize,
    mode: Mode,
    instrumenting: bool,
    /// Dumps taken so far (callgrind numbers them from 1).
    dumps_taken: usize,
    rows: Vec<Row>,
}

impl Harness {
    /// Instructions per call of `f`, or `None` in a smoke run.
    fn measure(&mut self, f: impl FnMut(usize)) -> Option<f64> {
        self.measure_each(1, || (), f)
    }

    /// Instructions per call of `f`, counted in `segments` loops of `n / segments`
    /// iterations, each after a fresh `setup()` whose result lives through its loop
    /// (uncounted, like the warm-up). The count is the mean over the states `setup` builds.
    fn measure_each<S>(
        &mut self,
        mut segments: usize,
        mut setup: impl FnMut() -> S,
        mut f: impl FnMut(usize),
    ) -> Option<f64> {
        if matches!(self.mode, Mode::Smoke) {
            segments = 1;
        }
        let per_segment = (self.n / segments).max(1);
        let mut total = 0u64;
        for _ in 0..segments {
            let state = setup();
            repeat(WARMUP, &mut f);
            let Mode::Count(dumps) = &mut self.mode else {
                continue;
            };
            if !self.instrumenting {
                callgrind::start_instrumentation();
                self.instrumenting = true;
            }
            self.dumps_taken += 1;
            let trigger = CString::new(format!("icount-{}", self.dumps_taken)).unwrap();
            callgrind::zero_stats();
            repeat(per_segment, &mut f);
            let counted = dumps.take(&trigger).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                counted > 0,
                "callgrind counted nothing: is instrumentation on?"
            );
            total += counted;
            drop(state);
        }
        match self.mode {
            Mode::Count(_) => Some(total as f64 / (segments * per_segment) as f64),
            Mode::Smoke => None,
        }
    }

    /// Starts the row for operation `op`.
    fn row(&mut self, op: &str) -> RowBuilder<'_> {
        self.rows.push(Row {
            op: op.to_string(),
            cells: Vec::new(),
        });
        RowBuilder { h: self }
    }
}

struct RowBuilder<'h> {
    h: &'h mut Harness,
}

impl RowBuilder<'_> {
    /// Measures `f` as `imp`'s variant of this row's operation.
    fn run(self, imp: Imp, f: impl FnMut(usize)) -> Self {
        self.run_each(imp, 1, || (), f)
    }

    /// [`run`](Self::run) with [`Harness::measure_each`]'s segments and setup.
    fn run_each<S>(
        self,
        imp: Imp,
        segments: usize,
        setup: impl FnMut() -> S,
        f: impl FnMut(usize),
    ) -> Self {
        let first_dump = self.h.dumps_taken + 1;
        let per_op = self.h.measure_each(segments, setup, f);
        let row = self.h.rows.last_mut().unwrap();
        assert!(
            !row.cells.iter().any(|(i, _)| *i == imp),
            "{imp:?} twice in row {:?}",
            row.op
        );
        row.cells.push((imp, per_op));
        if let Some(x) = per_op {
            let dumps = match self.h.dumps_taken {
                last if last == first_dump => format!("{last}"),
                last => format!("{first_dump}-{last}"),
            };
            eprintln!("icount: dump {dumps:>5}: {x:>8.1}  {imp:?}  {}", row.op);
        }
        self
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n = match args.iter().position(|a| a == "--n") {
        Some(k) => args
            .get(k + 1)
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n > 0)
            .expect("--n takes a positive number"),
        None => DEFAULT_N,
    };
    let mode = if callgrind::running_on_valgrind() {
        let out = std::env::var_os(OUT_VAR).unwrap_or_else(|| {
            panic!("under Valgrind, {OUT_VAR} must name callgrind's --callgrind-out-file")
        });
        Mode::Count(callgrind::Dumps::new(PathBuf::from(out)))
    } else {
        Mode::Smoke
    };
    let mut h = Harness {
        n,
        mode,
        instrumenting: false,
        dumps_taken: 0,
        rows: Vec::new(),
    };
    let loop_overhead = h.measure(|i| {
        black_box(i);
    });
    if let Some(x) = loop_overhead {
        eprintln!("icount: dump     1: {x:>8.1}  the empty loop");
    }
    let versions = Python::attach(|py| run_all(py, &mut h));

    match h.mode {
        Mode::Smoke => println!(
            "icount: smoke run, {} rows ran {WARMUP} times each natively; for instruction \
             counts run `bash scripts/icount.sh`",
            h.rows.len()
        ),
        Mode::Count(_) => {
            println!("{}", report::table(&h.rows));
            println!(
                "Instructions per operation, {} counted iterations per cell; {versions}. \
                 Every cell includes the loop's own {:.1} instructions per iteration.",
                report::thousands(h.n),
                loop_overhead.unwrap_or(f64::NAN)
            );
        }
    }
}

/// `"CPython 3.11.7, numpy 2.4.6"` (with `", stable ABI (abi3-py311 build)"` after the
/// CPython version when pyo3 builds for the limited API).
fn versions(py: Python<'_>) -> String {
    let python = py.version_info();
    let numpy: String = py
        .import("numpy")
        .and_then(|m| m.getattr("__version__"))
        .and_then(|v| v.extract())
        .unwrap_or_else(|_| "?".to_string());
    let abi = if cfg!(Py_LIMITED_API) {
        ", stable ABI (abi3-py311 build)"
    } else {
        ""
    };
    format!(
        "CPython {}.{}.{}{abi}, numpy {numpy}",
        python.major, python.minor, python.patch
    )
}

/// Every row, in table order. Returns the interpreter and numpy versions.
fn run_all(py: Python<'_>, h: &mut Harness) -> String {
    let data = data(py);
    let a8 = common::attr(&data, "a8");
    let a34 = common::attr(&data, "a34");
    let b16 = common::attr(&data, "b16");
    let ba16 = common::attr(&data, "ba16");
    let list = |name: &str| -> Vec<Bound<'_, PyAny>> {
        common::attr(&data, name)
            .try_iter()
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let probes = list("probes");
    let others = list("others");
    assert!(others.len() >= LIVE_OTHERS[LIVE_OTHERS.len() - 1]);

    acquisition(h, &a8, &a34, &b16, &ba16);
    interchange(
        h,
        &a8,
        &common::attr(&data, "ai8"),
        &common::attr(&data, "as8"),
    );
    borrow(h, &a8, &probes, &others);
    element_access(h, &a8);
    versions(py)
}

/// Acquire + release of the same 8 × f64 array through the other protocols, against the raw
/// buffer protocol: what DLPack and the array interface cost per call (there is no PyO3 or
/// rust-numpy peer for them).
fn interchange(
    h: &mut Harness,
    a8: &Bound<'_, PyAny>,
    interface: &Bound<'_, PyAny>,
    capsule: &Bound<'_, PyAny>,
) {
    let raw_ro = |obj: &Bound<'_, PyAny>| {
        black_box(common::raw_acquire_release(black_box(obj)));
    };
    h.row("DLPack: `from_dlpack` + drop, 8 × f64 ndarray (`Buffer1<f64>`)")
        .run(Imp::Raw, |_| raw_ro(a8))
        .run(Imp::Pybuf, |_| {
            drop(black_box(
                Buffer1::<f64>::from_dlpack(black_box(a8)).unwrap(),
            ))
        });
    h.row("`__array_interface__` dict: `get` + drop, 8 × f64 (`Buffer1<f64>`)")
        .run(Imp::Raw, |_| raw_ro(a8))
        .run(Imp::Pybuf, |_| {
            drop(black_box(
                Buffer1::<f64>::get(black_box(interface)).unwrap(),
            ))
        });
    h.row("`__array_struct__` capsule: `get` + drop, 8 × f64 (`Buffer1<f64>`)")
        .run(Imp::Raw, |_| raw_ro(a8))
        .run(Imp::Pybuf, |_| {
            drop(black_box(Buffer1::<f64>::get(black_box(capsule)).unwrap()))
        });
}

/// Acquire + release (read-only and writable), typed and untyped.
fn acquisition(
    h: &mut Harness,
    a8: &Bound<'_, PyAny>,
    a34: &Bound<'_, PyAny>,
    b16: &Bound<'_, PyAny>,
    ba16: &Bound<'_, PyAny>,
) {
    let raw_ro = |obj: &Bound<'_, PyAny>| {
        black_box(common::raw_acquire_release(black_box(obj)));
    };
    let raw_rw = |obj: &Bound<'_, PyAny>| {
        black_box(common::raw_acquire_release_with(
            black_box(obj),
            ffi::PyBUF_FULL,
        ));
    };

    h.row("`get` + drop, 8 × f64 ndarray (`Buffer1<f64>`)")
        .run(Imp::Raw, |_| raw_ro(a8))
        .run(Imp::PyO3, |_| {
            drop(black_box(PyBuffer::<f64>::get(black_box(a8)).unwrap()))
        })
        .run(Imp::Pybuf, |_| {
            drop(black_box(Buffer1::<f64>::get(black_box(a8)).unwrap()))
        });
    h.row("`get` + drop, 3 × 4 f64 ndarray (`Buffer2<f64>`)")
        .run(Imp::Raw, |_| raw_ro(a34))
        .run(Imp::PyO3, |_| {
            drop(black_box(PyBuffer::<f64>::get(black_box(a34)).unwrap()))
        })
        .run(Imp::Pybuf, |_| {
            drop(black_box(Buffer2::<f64>::get(black_box(a34)).unwrap()))
        });
    h.row("`get` + drop, 16-byte `bytes` (`Buffer1<u8>`)")
        .run(Imp::Raw, |_| raw_ro(b16))
        .run(Imp::PyO3, |_| {
            drop(black_box(PyBuffer::<u8>::get(black_box(b16)).unwrap()))
        })
        .run(Imp::Pybuf, |_| {
            drop(black_box(Buffer1::<u8>::get(black_box(b16)).unwrap()))
        });

    for (what, obj) in [("8 × f64 ndarray", a8), ("3 × 4 f64 ndarray", a34)] {
        h.row(&format!("`AnyBuffer::get` + drop, {what}"))
            .run(Imp::Raw, |_| raw_ro(obj))
            .run(Imp::PyO3, |_| {
                drop(black_box(PyBuffer::<f64>::get(black_box(obj)).unwrap()))
            })
            .run(Imp::Pybuf, |_| {
                drop(black_box(AnyBuffer::get(black_box(obj)).unwrap()))
            });
    }
    h.row("`AnyBuffer::get` + drop, 16-byte `bytes`")
        .run(Imp::Raw, |_| raw_ro(b16))
        .run(Imp::PyO3, |_| {
            drop(black_box(PyBuffer::<u8>::get(black_box(b16)).unwrap()))
        })
        .run(Imp::Pybuf, |_| {
            drop(black_box(AnyBuffer::get(black_box(b16)).unwrap()))
        });

    // Writable: the floor requests `PyBUF_FULL`; PyO3 has no writable request, so its
    // variant is `PyBuffer::get` (`PyBUF_FULL_RO`) plus the `readonly()` check a caller
    // who writes must make.
    h.row("`get_mut` + drop, 8 × f64 ndarray (`Buffer1<f64>`)")
        .run(Imp::Raw, |_| raw_rw(a8))
        .run(Imp::PyO3, |_| {
            let b = PyBuffer::<f64>::get(black_box(a8)).unwrap();
            assert!(!b.readonly());
            drop(black_box(b))
        })
        .run(Imp::Pybuf, |_| {
            drop(black_box(Buffer1::<f64>::get_mut(black_box(a8)).unwrap()))
        });
    h.row("`get_mut` + drop, 3 × 4 f64 ndarray (`Buffer2<f64>`)")
        .run(Imp::Raw, |_| raw_rw(a34))
        .run(Imp::PyO3, |_| {
            let b = PyBuffer::<f64>::get(black_box(a34)).unwrap();
            assert!(!b.readonly());
            drop(black_box(b))
        })
        .run(Imp::Pybuf, |_| {
            drop(black_box(Buffer2::<f64>::get_mut(black_box(a34)).unwrap()))
        });
    h.row("`get_mut` + drop, 16-byte `bytearray` (`Buffer1<u8>`)")
        .run(Imp::Raw, |_| raw_rw(ba16))
        .run(Imp::PyO3, |_| {
            let b = PyBuffer::<u8>::get(black_box(ba16)).unwrap();
            assert!(!b.readonly());
            drop(black_box(b))
        })
        .run(Imp::Pybuf, |_| {
            drop(black_box(Buffer1::<u8>::get_mut(black_box(ba16)).unwrap()))
        });
    h.row("`AnyBuffer::get_mut` + drop, 8 × f64 ndarray")
        .run(Imp::Raw, |_| raw_rw(a8))
        .run(Imp::PyO3, |_| {
            let b = PyBuffer::<f64>::get(black_box(a8)).unwrap();
            assert!(!b.readonly());
            drop(black_box(b))
        })
        .run(Imp::Pybuf, |_| {
            drop(black_box(AnyBuffer::get_mut(black_box(a8)).unwrap()))
        });
}

/// Acquire + borrow + release, and borrow + release on held handles with 0 to 100,000
/// other borrows live.
fn borrow(
    h: &mut Harness,
    a8: &Bound<'_, PyAny>,
    probes: &[Bound<'_, PyAny>],
    others: &[Bound<'_, PyAny>],
) {
    h.row("`get` + `read()` + drop vs `extract::<PyReadonlyArray1<f64>>()`, 8 × f64")
        .run(Imp::RustNumpy, |_| {
            let ro = black_box(a8)
                .extract::<PyReadonlyArray1<'_, f64>>()
                .unwrap();
            drop(black_box(ro))
        })
        .run(Imp::Pybuf, |_| {
            let buf = Buffer1::<f64>::get(black_box(a8)).unwrap();
            drop(black_box(buf.read().unwrap()));
        });
    h.row("`get_mut` + `write()` + drop vs `extract::<PyReadwriteArray1<f64>>()`, 8 × f64")
        .run(Imp::RustNumpy, |_| {
            let rw = black_box(a8)
                .extract::<PyReadwriteArray1<'_, f64>>()
                .unwrap();
            drop(black_box(rw))
        })
        .run(Imp::Pybuf, |_| {
            let buf = Buffer1::<f64>::get_mut(black_box(a8)).unwrap();
            drop(black_box(buf.write().unwrap()));
        });

    // Borrows on held handles (pybuf) and already-cast arrays (rust-numpy): the probes in
    // turn (see [`data`]).
    let held: Vec<Buffer1<f64>> = probes.iter().map(|p| Buffer1::get(p).unwrap()).collect();
    let held_np: Vec<&Bound<'_, PyArray1<f64>>> = probes
        .iter()
        .map(|p| p.cast::<PyArray1<f64>>().unwrap())
        .collect();
    let k = held.len();
    h.row("`read()` on a held handle vs `readonly()`, no other borrow live")
        .run(Imp::RustNumpy, |i| {
            drop(black_box(black_box(&held_np)[i % k].readonly()))
        })
        .run(Imp::Pybuf, |i| {
            drop(black_box(black_box(&held)[i % k].read().unwrap()))
        });

    let held_mut = Buffer1::<f64>::get_mut(a8).unwrap();
    let np8 = a8.cast::<PyArray1<f64>>().unwrap();
    h.row("`write()` on a held handle vs `readwrite()`, no other borrow live")
        .run(Imp::RustNumpy, |_| {
            drop(black_box(black_box(np8).readwrite()))
        })
        .run(Imp::Pybuf, |_| {
            drop(black_box(black_box(&held_mut).write().unwrap()))
        });

    // Live shared borrows of other arrays, on both sides at once (each library sees only its
    // own). Acquiring the handles borrows nothing.
    let handles: Vec<Buffer1<f64>> = others[..LIVE_OTHERS[LIVE_OTHERS.len() - 1]]
        .iter()
        .map(|o| Buffer1::get(o).unwrap())
        .collect();
    for (live, segments) in LIVE_OTHERS.into_iter().zip(LIVE_SEGMENTS) {
        h.row(&format!(
            "`read()` on a held handle vs `readonly()`, {} live borrows of other arrays",
            report::thousands(live)
        ))
        .run_each(
            Imp::RustNumpy,
            segments,
            || {
                others[..live]
                    .iter()
                    .map(|o| o.cast::<PyArray1<f64>>().unwrap().readonly())
                    .collect::<Vec<_>>()
            },
            |i| drop(black_box(black_box(&held_np)[i % k].readonly())),
        )
        .run_each(
            Imp::Pybuf,
            segments,
            || {
                handles[..live]
                    .iter()
                    .map(|b| b.read().unwrap())
                    .collect::<Vec<_>>()
            },
            |i| drop(black_box(black_box(&held)[i % k].read().unwrap())),
        );
    }
    drop(handles);

    // Live shared borrows of the same array, each through its own handle.
    let handles: Vec<Buffer1<f64>> = (0..LIVE_SAME).map(|_| Buffer1::get(a8).unwrap()).collect();
    let held8 = Buffer1::<f64>::get(a8).unwrap();
    h.row(&format!(
        "`read()` on a held handle vs `readonly()`, {} live borrows of the same array",
        report::thousands(LIVE_SAME)
    ))
    .run_each(
        Imp::RustNumpy,
        SAME_SEGMENTS,
        || (0..LIVE_SAME).map(|_| np8.readonly()).collect::<Vec<_>>(),
        |_| drop(black_box(black_box(np8).readonly())),
    )
    .run_each(
        Imp::Pybuf,
        SAME_SEGMENTS,
        || {
            handles
                .iter()
                .map(|b| b.read().unwrap())
                .collect::<Vec<_>>()
        },
        |_| drop(black_box(black_box(&held8).read().unwrap())),
    );
}

/// One element: pybuf's safe `item(i)` (no borrow held) against indexing an `ndarray` view
/// that a held `read()` guard provides.
fn element_access(h: &mut Harness, a8: &Bound<'_, PyAny>) {
    let buf = Buffer1::<f64>::get(a8).unwrap();
    let len = buf.len();
    let guard = buf.read().unwrap();
    let view = guard.view();
    let row = h
        .row("`item(i)` vs indexing a live view `v[i]`, 8 × f64")
        .run(Imp::View, |i| {
            black_box(black_box(&view)[i % len]);
        });
    // `item` runs with no borrow live, as in a loop that calls nothing else.
    drop(guard);
    row.run(Imp::Pybuf, |i| {
        black_box(black_box(&buf).item(i % len).unwrap());
    });
}
