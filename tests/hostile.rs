//! Hostile exporters (issue 17): a Python type whose raw `bf_getbuffer` fills `Py_buffer` with
//! adversarial values, one case per test. Every case acquires through several `Buffer<T, D>`
//! types, `get_mut` and `AnyBuffer`, then exercises `shape()`, `len()`, `format()`, `Debug`,
//! `to_vec()`, `read()` and `item()` where acquisition succeeded. The outcome must be a clear
//! error (the named `pybuf::Error` variant, with a message that says what the exporter
//! actually sent) or the values Python's own `memoryview` reports; never a panic. Each case
//! collects all its failures and reports them together, and ends by checking that every
//! successful `getbuffer` was released exactly once and no failed one ever.
//!
//! The deep-format case runs in a child process with a time limit, so a hang fails that
//! test instead of the whole suite. The read-only-name regression of issue 12 (finding 1) is
//! at the end: a Python thread renames a numpy subclass while Rust builds `ReadOnly` errors.

mod common;
mod hostile_exporter;
mod rename_storm;

use std::any::Any;
use std::fmt::Debug;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hostile_exporter::{Answer, Buf, Exporter, Obj, Spec};
use ndarray::{Dimension, Ix1, Ix2, IxDyn};
use pybuf::{AnyBuffer, Buffer, Element, Error};
use pyo3::prelude::*;
use pyo3::types::PyDict;

// ---------------------------------------------------------------------------------------------
// Expectations

/// What an operation must give.
#[derive(Clone, Debug)]
enum Want {
    /// Success, with Python's values.
    Ok,
    /// One of these error variants, with a message that says what the exporter sent.
    Err(ErrWant),
    /// Either (where both answers are right, such as a deep format that pybuf may match or
    /// refuse, as long as it finishes).
    OkOr(ErrWant),
}

#[derive(Clone, Debug, Default)]
struct ErrWant {
    /// The acceptable variants (empty: any).
    variants: &'static [&'static str],
    /// Substrings the message must contain.
    has: Vec<&'static str>,
    /// Groups of which the message must contain at least one.
    has_any: Vec<&'static [&'static str]>,
    /// Substrings the message must not contain.
    lacks: Vec<&'static str>,
}

fn err(variants: &'static [&'static str]) -> Want {
    Want::Err(ErrWant {
        variants,
        ..ErrWant::default()
    })
}

impl Want {
    fn or_ok(self) -> Want {
        match self {
            Want::Err(e) | Want::OkOr(e) => Want::OkOr(e),
            Want::Ok => Want::Ok,
        }
    }
    fn has(mut self, s: &'static str) -> Want {
        if let Want::Err(e) | Want::OkOr(e) = &mut self {
            e.has.push(s);
        }
        self
    }
    fn has_any(mut self, any: &'static [&'static str]) -> Want {
        if let Want::Err(e) | Want::OkOr(e) = &mut self {
            e.has_any.push(any);
        }
        self
    }
    fn lacks(mut self, s: &'static str) -> Want {
        if let Want::Err(e) | Want::OkOr(e) = &mut self {
            e.lacks.push(s);
        }
        self
    }
}

const INVALID_LAYOUT: &[&str] = &["InvalidLayout"];
const DIMENSIONS: &[&str] = &["Dimensions"];
/// A number of dimensions `D` cannot take that is also impossible in itself: the caller's
/// `D` mismatch or the impossible layout are both clear, as long as the message is right.
const DIMENSIONS_OR_LAYOUT: &[&str] = &["Dimensions", "InvalidLayout"];
const ELEMENT_TYPE: &[&str] = &["ElementType"];
const ELEMENT_TYPE_OR_LAYOUT: &[&str] = &["ElementType", "InvalidLayout"];
const ITEM_SIZE: &[&str] = &["ItemSize"];
const ITEM_SIZE_OR_LAYOUT: &[&str] = &["ItemSize", "InvalidLayout"];
const FORMAT: &[&str] = &["Format"];
const FORMAT_ELEMENT_TYPE_OR_ITEM_SIZE: &[&str] = &["Format", "ElementType", "ItemSize"];
const FORMAT_OR_ELEMENT_TYPE: &[&str] = &["Format", "ElementType"];
const READ_ONLY: &[&str] = &["ReadOnly"];
const REFUSED: &[&str] = &["Refused"];
const SUBOFFSETS: &[&str] = &["Suboffsets"];
const STRIDE_NOT_MULTIPLE: &[&str] = &["StrideNotMultiple"];
const MISALIGNED: &[&str] = &["Misaligned"];
const SELF_OVERLAPPING: &[&str] = &["SelfOverlapping"];

fn variant(e: &Error) -> &'static str {
    match e {
        Error::NotABuffer { .. } => "NotABuffer",
        Error::Refused { .. } => "Refused",
        Error::ReadOnly { .. } => "ReadOnly",
        Error::Format { .. } => "Format",
        Error::ElementType { .. } => "ElementType",
        Error::ByteOrder { .. } => "ByteOrder",
        Error::ItemSize { .. } => "ItemSize",
        Error::Dimensions { .. } => "Dimensions",
        Error::InvalidLayout { .. } => "InvalidLayout",
        Error::Misaligned { .. } => "Misaligned",
        Error::StrideNotMultiple { .. } => "StrideNotMultiple",
        Error::Suboffsets => "Suboffsets",
        Error::SelfOverlapping { .. } => "SelfOverlapping",
        Error::BorrowConflict { .. } => "BorrowConflict",
        Error::IndexOutOfBounds { .. } => "IndexOutOfBounds",
        Error::LengthMismatch { .. } => "LengthMismatch",
        Error::InvalidValue { .. } => "InvalidValue",
        Error::ViewsAlive { .. } => "ViewsAlive",
        Error::ExportTaken => "ExportTaken",
        Error::Python(_) => "Python",
        _ => "(a newer variant)",
    }
}

/// `Ok` if `e` is what `want` describes, else why not.
fn check_error(e: &Error, want: &Want) -> Result<(), String> {
    let msg = e.to_string();
    let found = format!("{}: {msg}", variant(e));
    let (Want::Err(w) | Want::OkOr(w)) = want else {
        return Err(format!("expected success, got {found}"));
    };
    let mut problems = Vec::new();
    if !w.variants.contains(&variant(e)) {
        problems.push(format!("expected variant {:?}", w.variants));
    }
    for s in &w.has {
        if !msg.contains(s) {
            problems.push(format!("message lacks {s:?}"));
        }
    }
    for any in &w.has_any {
        if !any.iter().any(|s| msg.contains(s)) {
            problems.push(format!("message has none of {any:?}"));
        }
    }
    for s in &w.lacks {
        if msg.contains(s) {
            problems.push(format!("message contains {s:?}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}; got {found}", problems.join(", ")))
    }
}

// ---------------------------------------------------------------------------------------------
// Running one case

/// Runs `f`, turning a panic into an error that carries its message.
fn attempt<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| format!("PANICKED: {}", panic_message(&*p)))
}

fn panic_message(p: &(dyn Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "<non-string panic>".into())
}

/// What Python's `memoryview` reports for a legal case.
#[derive(Clone, Debug)]
struct Reference {
    shape: Vec<usize>,
    /// `tobytes()`: every item's bytes in logical C order.
    bytes: Vec<u8>,
}

fn dim_name<D: Dimension>() -> String {
    match D::NDIM {
        Some(n) => format!("Ix{n}"),
        None => "IxDyn".into(),
    }
}

struct Case<'py> {
    name: &'static str,
    py: Python<'py>,
    g: Bound<'py, PyDict>,
    ex: Exporter<'py>,
    /// The format bytes the exporter sends (`None`: NULL).
    format: Option<Vec<u8>>,
    reference: Option<Reference>,
    /// The outcome of `read()` on a successfully acquired buffer.
    view: Want,
    /// The outcome of `write()` on a successfully acquired writable buffer.
    write: Want,
    /// The outcome of `AnyBuffer::item_layout()`.
    item_layout: Want,
    /// Whether copies, items and views may read the data (false when the exporter's pointer
    /// tables are garbage: following them is the exporter's promise, not pybuf's to check).
    touch_data: bool,
    failures: Vec<String>,
}

/// Runs one case: `f` makes the probes, then the release counts are checked and every
/// failure is reported together.
fn run_case(name: &'static str, spec: Spec, f: impl FnOnce(&mut Case<'_>)) {
    Python::attach(|py| {
        let mut case = Case {
            name,
            py,
            g: common::namespace(py),
            format: spec.format.clone(),
            ex: Exporter::new(py, spec),
            reference: None,
            view: Want::Ok,
            write: Want::Ok,
            item_layout: Want::Ok,
            touch_data: true,
            failures: Vec::new(),
        };
        f(&mut case);
        case.finish();
    });
}

impl<'py> Case<'py> {
    fn fail(&mut self, label: &str, problem: impl Into<String>) {
        self.failures.push(format!("{label}: {}", problem.into()));
    }

    /// `memoryview(obj)`'s shape and bytes, computed once.
    fn reference(&mut self) -> Result<Reference, String> {
        if let Some(r) = &self.reference {
            return Ok(r.clone());
        }
        let r = self.python_now()?;
        self.reference = Some(r.clone());
        Ok(r)
    }

    fn python_now(&self) -> Result<Reference, String> {
        self.g.set_item("x", &self.ex.obj).unwrap();
        let code = c"with memoryview(x) as m:\n    r = (list(m.shape), m.tobytes())\n";
        self.py
            .run(code, Some(&self.g), None)
            .map_err(|e| format!("Python's memoryview failed: {e}"))?;
        let (shape, bytes): (Vec<usize>, Vec<u8>) = self
            .g
            .get_item("r")
            .unwrap()
            .unwrap()
            .extract()
            .map_err(|e: PyErr| e.to_string())?;
        Ok(Reference { shape, bytes })
    }

    /// The format the exporter sent, as pybuf should report it (a NULL format means `B`).
    fn spec_format(&self) -> String {
        String::from_utf8_lossy(self.format.as_deref().unwrap_or(b"B")).into_owned()
    }

    /// No Python exception may be left pending by a pybuf call.
    fn check_no_pending_exception(&mut self, label: &str) {
        if let Some(e) = PyErr::take(self.py) {
            self.fail(label, format!("left a Python exception set: {e}"));
        }
    }

    /// `Buffer::<T, D>::get`.
    fn get<T: Element + Debug, D: Dimension>(&mut self, want: Want) {
        self.probe::<T, D>(false, want);
    }

    /// `Buffer::<T, D>::get_mut`.
    fn get_mut<T: Element + Debug, D: Dimension>(&mut self, want: Want) {
        self.probe::<T, D>(true, want);
    }

    fn probe<T: Element + Debug, D: Dimension>(&mut self, writable: bool, want: Want) {
        let label = format!(
            "Buffer::<{}, {}>::{}",
            T::type_name(),
            dim_name::<D>(),
            if writable { "get_mut" } else { "get" }
        );
        let obj = self.ex.obj.clone();
        let got = attempt(|| {
            if writable {
                Buffer::<T, D>::get_mut(&obj)
            } else {
                Buffer::<T, D>::get(&obj)
            }
        });
        self.check_no_pending_exception(&label);
        match got {
            Err(panic) => self.fail(&label, panic),
            Ok(Err(e)) => {
                if let Err(problem) = check_error(&e, &want) {
                    self.fail(&label, problem);
                }
                if let Err(panic) = attempt(|| PyErr::from(e)) {
                    self.fail(&label, format!("into PyErr: {panic}"));
                }
            }
            Ok(Ok(buf)) => {
                if let Want::Err(w) = &want {
                    self.fail(&label, format!("acquired, expected an error {w:?}"));
                }
                self.exercise(&label, &buf, writable);
            }
        }
        self.check_no_pending_exception(&label);
    }

    /// Every accessor of an acquired buffer, against Python's values.
    fn exercise<T: Element + Debug, D: Dimension>(
        &mut self,
        label: &str,
        buf: &Buffer<T, D>,
        writable: bool,
    ) {
        let size = std::mem::size_of::<T>();
        match attempt(|| format!("{buf:?}")) {
            Ok(debug) if !debug.contains("Buffer") => {
                self.fail(label, format!("Debug: {debug}"))
            }
            Ok(_) => {}
            Err(p) => self.fail(label, format!("Debug: {p}")),
        }
        let format = self.spec_format();
        match attempt(|| buf.format().to_string()) {
            Ok(f) if f == format => {}
            Ok(f) => self.fail(label, format!("format() is {f:?}, the exporter sent {format:?}")),
            Err(p) => self.fail(label, format!("format(): {p}")),
        }
        if !self.touch_data {
            self.check_view(label, buf, None);
            return;
        }
        let reference = match self.reference() {
            Ok(r) => r,
            Err(e) => return self.fail(label, e),
        };
        let mut shape = reference.shape.clone();
        if shape.is_empty() && D::NDIM == Some(1) {
            shape = vec![1]; // a scalar read as 1-D
        }
        let len: usize = shape.iter().product();
        if buf.shape() != shape.as_slice() {
            self.fail(label, format!("shape() {:?}, Python {shape:?}", buf.shape()));
        }
        if buf.len() != len {
            self.fail(label, format!("len() {}, Python's shape holds {len}", buf.len()));
        }
        if reference.bytes.len() != len * size {
            self.fail(
                label,
                format!(
                    "Python has {} bytes for {len} items of {size} bytes",
                    reference.bytes.len()
                ),
            );
            return;
        }
        match attempt(|| buf.to_vec()) {
            Ok(Ok(v)) if common::as_bytes(&v) == reference.bytes => {}
            Ok(Ok(v)) => self.fail(label, format!("to_vec() {v:?}, Python {:?}", reference.bytes)),
            Ok(Err(e)) => self.fail(label, format!("to_vec(): {}: {e}", variant(&e))),
            Err(p) => self.fail(label, format!("to_vec(): {p}")),
        }
        if len > 0 {
            let first = D::zeros(buf.ndim());
            let mut last = D::zeros(buf.ndim());
            for (i, &n) in last.slice_mut().iter_mut().zip(buf.shape()) {
                *i = n - 1;
            }
            for (which, index, at) in [("first", first, 0), ("last", last, len - 1)] {
                let expected = &reference.bytes[at * size..(at + 1) * size];
                match attempt(|| buf.item(index.clone())) {
                    Ok(Ok(v)) if common::as_bytes(&[v]) == expected => {
                        if writable {
                            self.set_back(label, buf, index, v);
                        }
                    }
                    Ok(Ok(v)) => {
                        self.fail(label, format!("item({which}) {v:?}, Python {expected:?}"))
                    }
                    Ok(Err(e)) => self.fail(label, format!("item({which}): {}: {e}", variant(&e))),
                    Err(p) => self.fail(label, format!("item({which}): {p}")),
                }
            }
        }
        self.check_view(label, buf, Some(&reference.bytes));
        if writable {
            self.check_writes(label, buf);
        }
    }

    /// `set_item` of the value just read (so the memory does not change).
    fn set_back<T: Element + Debug, D: Dimension>(
        &mut self,
        label: &str,
        buf: &Buffer<T, D>,
        index: D,
        v: T,
    ) {
        match attempt(|| buf.set_item(index, v)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.fail(label, format!("set_item: {}: {e}", variant(&e))),
            Err(p) => self.fail(label, format!("set_item: {p}")),
        }
    }

    /// `read()`: as the case says, and then the view's items in logical order.
    fn check_view<T: Element + Debug, D: Dimension>(
        &mut self,
        label: &str,
        buf: &Buffer<T, D>,
        bytes: Option<&[u8]>,
    ) {
        let want = self.view.clone();
        let got = attempt(|| {
            buf.read().map(|guard| {
                let items: Vec<T> = guard.view().iter().copied().collect();
                let slice = guard.as_slice().map(<[T]>::to_vec);
                (items, slice)
            })
        });
        match got {
            Err(p) => self.fail(label, format!("read(): {p}")),
            Ok(Err(e)) => {
                if let Err(problem) = check_error(&e, &want) {
                    self.fail(label, format!("read(): {problem}"));
                }
            }
            Ok(Ok((items, slice))) => {
                if let Want::Err(w) = &want {
                    self.fail(label, format!("read() succeeded, expected {w:?}"));
                }
                if let Some(bytes) = bytes {
                    if common::as_bytes(&items) != bytes {
                        self.fail(label, format!("read() view {items:?}, Python {bytes:?}"));
                    }
                    if let Some(s) = slice {
                        if common::as_bytes(&s) != bytes {
                            self.fail(label, format!("read() slice {s:?}, Python {bytes:?}"));
                        }
                    }
                }
            }
        }
    }

    /// Writes that leave the memory as it was: `copy_from_slice(to_vec())`, `write()`.
    fn check_writes<T: Element + Debug, D: Dimension>(&mut self, label: &str, buf: &Buffer<T, D>) {
        match attempt(|| buf.to_vec().and_then(|v| buf.copy_from_slice(&v))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.fail(label, format!("copy_from_slice: {}: {e}", variant(&e))),
            Err(p) => self.fail(label, format!("copy_from_slice: {p}")),
        }
        let want = self.write.clone();
        match attempt(|| buf.write().map(drop)) {
            Err(p) => self.fail(label, format!("write(): {p}")),
            Ok(Err(e)) => {
                if let Err(problem) = check_error(&e, &want) {
                    self.fail(label, format!("write(): {problem}"));
                }
            }
            Ok(Ok(())) => {
                if let Want::Err(w) = &want {
                    self.fail(label, format!("write() succeeded, expected {w:?}"));
                }
            }
        }
        match (self.python_now(), self.reference.clone()) {
            (Ok(now), Some(before)) if now.bytes != before.bytes => self.fail(
                label,
                format!("writing the same values changed the memory to {:?}", now.bytes),
            ),
            _ => {}
        }
    }

    /// `AnyBuffer::get` (or `get_mut`), its accessors, and `typed::<u8, IxDyn>()`.
    fn any(&mut self, want: Want, typed: Want) {
        self.any_probe(false, want, typed);
    }

    fn any_mut(&mut self, want: Want) {
        self.any_probe(true, want, Want::Ok);
    }

    fn any_probe(&mut self, writable: bool, want: Want, typed: Want) {
        let label = if writable {
            "AnyBuffer::get_mut"
        } else {
            "AnyBuffer::get"
        };
        let obj = self.ex.obj.clone();
        let got = attempt(|| {
            if writable {
                AnyBuffer::get_mut(&obj)
            } else {
                AnyBuffer::get(&obj)
            }
        });
        self.check_no_pending_exception(label);
        let any = match got {
            Err(panic) => return self.fail(label, panic),
            Ok(Err(e)) => {
                if let Err(problem) = check_error(&e, &want) {
                    self.fail(label, problem);
                }
                return;
            }
            Ok(Ok(any)) => any,
        };
        let typed = match &want {
            Want::Err(w) => {
                self.fail(label, format!("acquired, expected an error {w:?}"));
                err(&[]).or_ok() // reported once: whatever typed() does now
            }
            _ => typed,
        };
        if let Err(p) = attempt(|| format!("{any:?}")) {
            self.fail(label, format!("Debug: {p}"));
        }
        let format = self.spec_format();
        match attempt(|| any.format().into_owned()) {
            Ok(f) if f == format => {}
            Ok(f) => self.fail(label, format!("format() is {f:?}, the exporter sent {format:?}")),
            Err(p) => self.fail(label, format!("format(): {p}")),
        }
        if let Err(p) = attempt(|| (any.element_kind(), any.alignment(), any.is_c_contiguous())) {
            self.fail(label, format!("element_kind/alignment/contiguity: {p}"));
        }
        let item_want = self.item_layout.clone();
        match attempt(|| any.item_layout().map(|i| i.describe()).map_err(|e| (variant(e), e.to_string()))) {
            Err(p) => self.fail(label, format!("item_layout(): {p}")),
            Ok(Ok(_)) => {
                if let Want::Err(w) = &item_want {
                    self.fail(label, format!("item_layout() parsed, expected {w:?}"));
                }
            }
            Ok(Err((v, msg))) => {
                if let Want::Ok = item_want {
                    self.fail(label, format!("item_layout(): {v}: {msg}"));
                }
            }
        }
        if self.touch_data {
            match self.reference() {
                Err(e) => self.fail(label, e),
                Ok(reference) => {
                    if any.shape() != reference.shape.as_slice() {
                        let s = any.shape().to_vec();
                        self.fail(label, format!("shape() {s:?}, Python {:?}", reference.shape));
                    }
                    match attempt(|| any.to_bytes(ndarray::Order::C)) {
                        Ok(Ok(b)) if b == reference.bytes => {}
                        Ok(Ok(b)) => self.fail(
                            label,
                            format!("to_bytes() {b:?}, Python {:?}", reference.bytes),
                        ),
                        Ok(Err(e)) => self.fail(label, format!("to_bytes(): {e}")),
                        Err(p) => self.fail(label, format!("to_bytes(): {p}")),
                    }
                }
            }
        }
        let typed_label = format!("{label} -> typed::<u8, IxDyn>");
        match attempt(|| any.typed::<u8, IxDyn>()) {
            Err(p) => self.fail(&typed_label, p),
            Ok(Err(e)) => {
                if let Err(problem) = check_error(&e, &typed) {
                    self.fail(&typed_label, problem);
                }
            }
            Ok(Ok(buf)) => {
                if let Want::Err(w) = &typed {
                    self.fail(&typed_label, format!("converted, expected {w:?}"));
                }
                self.exercise(&typed_label, &buf, false);
            }
        }
        self.check_no_pending_exception(label);
    }

    /// Acquires, then drops the handles on a thread that never attaches: the releases are
    /// queued, and `finish` flushes them.
    fn drop_on_another_thread(&mut self) {
        let label = "drop on another thread";
        let obj = self.ex.obj.clone();
        match attempt(|| (Buffer::<u8, IxDyn>::get(&obj), AnyBuffer::get(&obj))) {
            Ok((Ok(buf), Ok(any))) => {
                let dropped = std::thread::spawn(move || drop((buf, any))).join();
                if dropped.is_err() {
                    self.fail(label, "the drop panicked");
                }
            }
            other => self.fail(label, format!("acquisition: {other:?}")),
        }
    }

    /// On a read-only buffer, every write names the exporter's type.
    fn read_only_writes(&mut self) {
        let label = "read-only writes";
        let obj = self.ex.obj.clone();
        let buf = match attempt(|| Buffer::<u8, IxDyn>::get(&obj)) {
            Ok(Ok(buf)) => buf,
            Ok(Err(e)) => return self.fail(label, format!("get: {e}")),
            Err(p) => return self.fail(label, format!("get: {p}")),
        };
        let want = err(READ_ONLY).has("'hostile.Exporter'");
        let index = IxDyn(&vec![0; buf.ndim()]);
        let results = [
            ("write()", attempt(|| buf.write().map(drop))),
            ("set_item", attempt(|| buf.set_item(index, 0))),
            ("copy_from_slice", attempt(|| buf.copy_from_slice(&vec![0; buf.len()]))),
        ];
        for (op, result) in results {
            match result {
                Err(p) => self.fail(label, format!("{op}: {p}")),
                Ok(Ok(())) => self.fail(label, format!("{op} succeeded on read-only memory")),
                Ok(Err(e)) => {
                    if let Err(problem) = check_error(&e, &want) {
                        self.fail(label, format!("{op}: {problem}"));
                    }
                }
            }
        }
    }

    /// Releases everything, then checks the exporter's counts and reports all failures.
    fn finish(mut self) {
        pybuf::flush_releases(self.py);
        let counts = self.ex.counts();
        let mut release_problems = Vec::new();
        if !counts.bad_releases.is_empty() {
            release_problems.push(format!("bad releases: {:?}", counts.bad_releases));
        }
        if counts.outstanding != 0 || counts.released != counts.filled {
            release_problems.push(format!(
                "{} successful getbuffer calls, {} released ({} outstanding)",
                counts.filled, counts.released, counts.outstanding
            ));
        }
        for p in release_problems {
            self.fail("release counts", p);
        }
        if counts.bad_releases.is_empty() {
            self.ex.reclaim_leaked_refs();
        }
        if !self.failures.is_empty() {
            panic!(
                "case {}: {} failure(s) ({counts:?}):\n  - {}",
                self.name,
                self.failures.len(),
                self.failures.join("\n  - ")
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Legal layouts: Python's values

#[test]
fn legal_bytes_1d() {
    run_case("legal_bytes_1d", Spec::bytes_1d(), |c| {
        c.get::<u8, IxDyn>(Want::Ok);
        c.get::<u8, Ix1>(Want::Ok);
        c.get::<u8, Ix2>(err(DIMENSIONS).has("expected a 2-D").has("1-D").has("(6,)"));
        c.get::<u16, IxDyn>(err(ELEMENT_TYPE).has("'B'").has("u16"));
        c.get_mut::<u8, IxDyn>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
        c.any_mut(Want::Ok);
        c.drop_on_another_thread();
    });
}

/// `H` items, every other one of a 2×6 block (byte strides 12 and 4).
fn u16_2d_strided() -> Spec {
    Spec {
        data: (0..24).collect(),
        len: 12,
        itemsize: 2,
        ndim: 2,
        shape: Some(vec![2, 3]),
        strides: Some(vec![12, 4]),
        ..Spec::bytes_1d().format("H")
    }
}

#[test]
fn legal_u16_2d_strided() {
    run_case("legal_u16_2d_strided", u16_2d_strided(), |c| {
        c.get::<u16, Ix2>(Want::Ok);
        c.get::<u16, IxDyn>(Want::Ok);
        c.get::<u16, Ix1>(err(DIMENSIONS).has("2-D").has("(2, 3)"));
        c.get::<u8, IxDyn>(err(ELEMENT_TYPE).has("'H'"));
        c.get_mut::<u16, Ix2>(Want::Ok);
        c.any(Want::Ok, err(ELEMENT_TYPE));
    });
}

#[test]
fn null_format_means_bytes() {
    let spec = Spec {
        format: None,
        ..Spec::bytes_1d()
    };
    run_case("null_format_means_bytes", spec, |c| {
        c.get::<u8, IxDyn>(Want::Ok);
        c.get_mut::<u8, Ix1>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
    });
}

#[test]
fn null_shape_1d_is_len_over_itemsize() {
    let spec = Spec {
        shape: None,
        strides: None,
        ..Spec::bytes_1d()
    };
    run_case("null_shape_1d", spec, |c| {
        c.get::<u8, IxDyn>(Want::Ok);
        c.get::<u8, Ix1>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
    });
}

#[test]
fn null_strides_2d_are_c_order() {
    let spec = Spec {
        ndim: 2,
        shape: Some(vec![2, 3]),
        strides: None,
        ..Spec::bytes_1d()
    };
    run_case("null_strides_2d", spec, |c| {
        c.get::<u8, Ix2>(Want::Ok);
        c.get::<u8, IxDyn>(Want::Ok);
        c.get_mut::<u8, Ix2>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
    });
}

#[test]
fn ndim_64_is_legal() {
    let mut shape = vec![1; 64];
    shape[0] = 6;
    let spec = Spec {
        ndim: 64,
        shape: Some(shape),
        strides: Some(vec![1; 64]),
        ..Spec::bytes_1d()
    };
    run_case("ndim_64", spec, |c| {
        c.get::<u8, IxDyn>(Want::Ok);
        c.get::<u8, Ix1>(err(DIMENSIONS).has("64-D"));
        c.get::<u8, Ix2>(err(DIMENSIONS).has("64-D"));
        c.get_mut::<u8, IxDyn>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
    });
}

#[test]
fn ndim_0_scalar() {
    let spec = Spec {
        data: vec![42],
        len: 1,
        ndim: 0,
        shape: None,
        strides: None,
        ..Spec::bytes_1d()
    };
    run_case("ndim_0_scalar", spec, |c| {
        c.get::<u8, IxDyn>(Want::Ok);
        c.get::<u8, Ix1>(Want::Ok); // a scalar reads as one item
        c.get::<u8, Ix2>(err(DIMENSIONS).has("0-D"));
        c.get_mut::<u8, IxDyn>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
    });
}

#[test]
fn null_buf_with_no_items() {
    let spec = Spec {
        buf: Buf::Null,
        len: 0,
        shape: Some(vec![0]),
        ..Spec::bytes_1d()
    };
    run_case("null_buf_empty", spec, |c| {
        c.get::<u8, IxDyn>(Want::Ok);
        c.get_mut::<u8, Ix1>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
    });
}

#[test]
fn stride_isize_max_on_a_single_item() {
    let spec = Spec {
        len: 1,
        shape: Some(vec![1]),
        strides: Some(vec![isize::MAX]),
        ..Spec::bytes_1d()
    };
    run_case("stride_isize_max_single_item", spec, |c| {
        c.get::<u8, IxDyn>(Want::Ok);
        c.get_mut::<u8, Ix1>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
    });
}

#[test]
fn backward_strides_from_the_end() {
    let spec = Spec {
        buf: Buf::At(5),
        strides: Some(vec![-1]),
        ..Spec::bytes_1d()
    };
    run_case("backward_strides_from_the_end", spec, |c| {
        c.get::<u8, IxDyn>(Want::Ok);
        c.get_mut::<u8, Ix1>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
    });
}

/// `buf` at the start of the data and stride -1: the items are the bytes *before* `buf` (the
/// exporter's guard bytes here). pybuf must walk down from `buf`, as Python does.
#[test]
fn backward_strides_from_the_start() {
    let spec = Spec {
        buf: Buf::At(0),
        strides: Some(vec![-1]),
        ..Spec::bytes_1d()
    };
    run_case("backward_strides_from_the_start", spec, |c| {
        c.get::<u8, IxDyn>(Want::Ok);
        c.get_mut::<u8, Ix1>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
    });
}

#[test]
fn zero_strides() {
    let spec = Spec {
        len: 4,
        shape: Some(vec![4]),
        strides: Some(vec![0]),
        ..Spec::bytes_1d()
    };
    run_case("zero_strides", spec, |c| {
        c.write = err(SELF_OVERLAPPING);
        c.get::<u8, IxDyn>(Want::Ok);
        c.get_mut::<u8, Ix1>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
    });
}

#[test]
fn stride_not_a_multiple_of_the_itemsize() {
    let spec = Spec {
        data: (0..8).collect(),
        itemsize: 2,
        shape: Some(vec![3]),
        strides: Some(vec![3]),
        ..Spec::bytes_1d().format("H")
    };
    run_case("stride_not_multiple", spec, |c| {
        c.view = err(STRIDE_NOT_MULTIPLE).has("3");
        c.write = c.view.clone();
        c.get::<u16, Ix1>(Want::Ok);
        c.get_mut::<u16, IxDyn>(Want::Ok);
        c.get::<u8, Ix1>(err(ELEMENT_TYPE));
        c.any(Want::Ok, err(ELEMENT_TYPE));
    });
}

#[test]
fn misaligned_u16() {
    let spec = Spec {
        data: (0..8).collect(),
        buf: Buf::At(1),
        itemsize: 2,
        shape: Some(vec![3]),
        strides: Some(vec![2]),
        ..Spec::bytes_1d().format("H")
    };
    run_case("misaligned_u16", spec, |c| {
        c.view = err(MISALIGNED);
        c.write = c.view.clone();
        c.get::<u16, Ix1>(Want::Ok);
        c.get_mut::<u16, IxDyn>(Want::Ok);
        c.any(Want::Ok, err(ELEMENT_TYPE));
    });
}

#[test]
fn suboffsets_all_negative_mean_direct() {
    let spec = Spec {
        ndim: 2,
        shape: Some(vec![2, 3]),
        strides: Some(vec![3, 1]),
        suboffsets: Some(vec![-1, -1]),
        ..Spec::bytes_1d()
    };
    run_case("suboffsets_all_negative", spec, |c| {
        c.get::<u8, Ix2>(Want::Ok);
        c.get_mut::<u8, IxDyn>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
    });
}

/// PIL-style rows through a pointer table, in swapped order.
#[test]
fn suboffsets_pointer_table() {
    let spec = Spec {
        buf: Buf::Table(vec![Some(3), Some(0)]),
        ndim: 2,
        shape: Some(vec![2, 3]),
        strides: Some(vec![std::mem::size_of::<usize>() as isize, 1]),
        suboffsets: Some(vec![0, -1]),
        ..Spec::bytes_1d()
    };
    run_case("suboffsets_pointer_table", spec, |c| {
        c.view = err(SUBOFFSETS);
        c.write = c.view.clone();
        c.get::<u8, Ix2>(Want::Ok);
        c.get::<u8, IxDyn>(Want::Ok);
        c.get_mut::<u8, Ix2>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
    });
}

/// A pointer table of NULL rows. What the pointers point to is the exporter's promise (no
/// reader can check it), so only what does not follow them is exercised: acquisition,
/// `shape()`, `format()`, `Debug` and the refusal of views.
#[test]
fn suboffsets_with_null_row_pointers() {
    let spec = Spec {
        buf: Buf::Table(vec![None, None]),
        ndim: 2,
        shape: Some(vec![2, 3]),
        strides: Some(vec![std::mem::size_of::<usize>() as isize, 1]),
        suboffsets: Some(vec![0, -1]),
        ..Spec::bytes_1d()
    };
    run_case("suboffsets_null_rows", spec, |c| {
        c.touch_data = false;
        c.view = err(SUBOFFSETS);
        c.get::<u8, Ix2>(Want::Ok);
        c.get::<u8, IxDyn>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
    });
}

#[test]
fn zero_size_items() {
    let spec = Spec {
        len: 0,
        itemsize: 0,
        ndim: 2,
        shape: Some(vec![2, 3]),
        strides: Some(vec![0, 0]),
        ..Spec::bytes_1d().format("0B")
    };
    run_case("zero_size_items", spec, |c| {
        c.get::<[u8; 0], IxDyn>(Want::Ok);
        c.get::<[u8; 0], Ix2>(Want::Ok);
        c.get::<u8, Ix2>(err(ELEMENT_TYPE));
        c.any(Want::Ok, err(ELEMENT_TYPE));
    });
}

/// Finding 5a: items that are arrays of zero-sized `bool` arrays (numpy's
/// `np.dtype(('?', (2, 0)))`): copies validate items of zero bytes without panicking.
#[test]
fn zero_size_bool_arrays() {
    let spec = Spec {
        len: 0,
        itemsize: 0,
        shape: Some(vec![3]),
        strides: Some(vec![0]),
        ..Spec::bytes_1d().format("(2,0)?")
    };
    run_case("zero_size_bool_arrays", spec, |c| {
        c.get::<[[bool; 0]; 2], Ix1>(Want::Ok);
        c.get::<[[bool; 0]; 2], IxDyn>(Want::Ok);
        c.get::<[bool; 0], Ix1>(err(ELEMENT_TYPE).or_ok()); // no bytes either way
        c.any(Want::Ok, err(ELEMENT_TYPE));
    });
}

/// The exporter leaves `obj` NULL: the buffer still works, `obj()` is None, and (CPython's
/// rule) `bf_releasebuffer` is never called for it.
#[test]
fn null_obj() {
    let spec = Spec {
        obj: Obj::Null,
        ..Spec::bytes_1d()
    };
    run_case("null_obj", spec, |c| {
        c.get::<u8, IxDyn>(Want::Ok);
        c.get_mut::<u8, Ix1>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
        match attempt(|| Buffer::<u8, Ix1>::get(&c.ex.obj).map(|b| b.obj(c.py).is_none())) {
            Ok(Ok(true)) => {}
            other => c.fail("obj()", format!("expected Python None, got {other:?}")),
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Impossible layouts: a clear error that says what the exporter sent

/// Every acquisition of `u8` items fails with `want`, whatever the dimension type.
fn all_u8_fail(c: &mut Case<'_>, want: Want) {
    c.get::<u8, IxDyn>(want.clone());
    c.get::<u8, Ix1>(want.clone());
    c.get_mut::<u8, IxDyn>(want.clone());
    c.any(want.clone(), Want::Ok);
    c.any_mut(want);
}

#[test]
fn null_buf_with_items() {
    let spec = Spec {
        buf: Buf::Null,
        ..Spec::bytes_1d()
    };
    run_case("null_buf_with_items", spec, |c| {
        all_u8_fail(c, err(INVALID_LAYOUT).has("NULL").has("6"));
        c.get::<u8, Ix2>(err(DIMENSIONS_OR_LAYOUT).has("1-D"));
    });
}

#[test]
fn len_larger_than_shape_times_itemsize() {
    let spec = Spec {
        len: 100,
        ..Spec::bytes_1d()
    };
    run_case("len_too_large", spec, |c| {
        all_u8_fail(c, err(INVALID_LAYOUT).has("100").has("6"));
    });
}

#[test]
fn len_smaller_than_shape_times_itemsize() {
    let spec = Spec {
        len: 3,
        ..Spec::bytes_1d()
    };
    run_case("len_too_small", spec, |c| {
        all_u8_fail(c, err(INVALID_LAYOUT).has("3").has("6"));
    });
}

#[test]
fn len_negative() {
    let spec = Spec {
        len: -1,
        ..Spec::bytes_1d()
    };
    run_case("len_negative", spec, |c| {
        all_u8_fail(c, err(INVALID_LAYOUT).has("-1"));
    });
}

#[test]
fn ndim_0_with_wrong_len() {
    let spec = Spec {
        data: vec![1, 2, 3, 4],
        len: 4,
        ndim: 0,
        shape: None,
        strides: None,
        ..Spec::bytes_1d()
    };
    run_case("ndim_0_wrong_len", spec, |c| {
        all_u8_fail(c, err(INVALID_LAYOUT).has("4"));
    });
}

/// Finding 6: 65 dimensions must be reported as 65, never as "a 0-D buffer ... shape ()".
#[test]
fn ndim_65() {
    let mut shape = vec![1; 65];
    shape[0] = 6;
    let spec = Spec {
        ndim: 65,
        shape: Some(shape),
        strides: Some(vec![1; 65]),
        ..Spec::bytes_1d()
    };
    const SAYS_65: &[&str] = &["65-D", "65 dimensions"];
    run_case("ndim_65", spec, |c| {
        c.get::<u8, IxDyn>(err(INVALID_LAYOUT).has_any(SAYS_65));
        c.get_mut::<u8, IxDyn>(err(INVALID_LAYOUT).has_any(SAYS_65));
        let dims = err(DIMENSIONS_OR_LAYOUT).has_any(SAYS_65).lacks("0-D").lacks("()");
        c.get::<u8, Ix1>(dims.clone());
        c.get::<u8, Ix2>(dims);
        c.get::<u16, IxDyn>(err(ELEMENT_TYPE_OR_LAYOUT).has_any(SAYS_65).lacks("0-D"));
        c.any(err(INVALID_LAYOUT).has_any(SAYS_65), Want::Ok);
    });
}

/// Finding 6: ndim -1 is reported as -1.
#[test]
fn ndim_negative() {
    let spec = Spec {
        ndim: -1,
        ..Spec::bytes_1d()
    };
    run_case("ndim_negative", spec, |c| {
        c.get::<u8, IxDyn>(err(INVALID_LAYOUT).has("-1"));
        c.get::<u8, Ix1>(err(DIMENSIONS_OR_LAYOUT).has("-1").lacks("0-D"));
        c.get::<u8, Ix2>(err(DIMENSIONS_OR_LAYOUT).has("-1").lacks("0-D"));
        c.get::<u16, IxDyn>(err(ELEMENT_TYPE_OR_LAYOUT).has("-1").lacks("0-D"));
        c.any(err(INVALID_LAYOUT).has("-1"), Want::Ok);
    });
}

/// Finding 6: shape NULL with ndim 2 is a 2-D buffer without a shape, not "0-D ... ()".
#[test]
fn null_shape_with_ndim_2() {
    let spec = Spec {
        ndim: 2,
        shape: None,
        strides: None,
        ..Spec::bytes_1d()
    };
    const SAYS_2: &[&str] = &["2-D", "2 dimensions"];
    run_case("null_shape_ndim_2", spec, |c| {
        c.get::<u8, IxDyn>(err(INVALID_LAYOUT).has_any(SAYS_2));
        c.get::<u8, Ix2>(err(INVALID_LAYOUT).has_any(SAYS_2));
        c.get::<u8, Ix1>(err(DIMENSIONS_OR_LAYOUT).has_any(SAYS_2).lacks("0-D"));
        c.get::<u16, IxDyn>(err(ELEMENT_TYPE_OR_LAYOUT).has_any(SAYS_2).lacks("0-D"));
        c.any(err(INVALID_LAYOUT).has_any(SAYS_2), Want::Ok);
    });
}

/// Finding 6: a negative shape entry is shown as the negative number, never as 0.
#[test]
fn shape_negative() {
    let spec = Spec {
        len: 3,
        shape: Some(vec![-3]),
        ..Spec::bytes_1d()
    };
    run_case("shape_negative", spec, |c| {
        all_u8_fail(c, err(INVALID_LAYOUT).has("-3"));
        c.get::<u8, Ix2>(err(DIMENSIONS_OR_LAYOUT).has("-3"));
        c.get::<u16, IxDyn>(err(ELEMENT_TYPE_OR_LAYOUT).has("-3"));
    });
}

#[test]
fn shape_negative_2d() {
    let spec = Spec {
        ndim: 2,
        shape: Some(vec![2, -3]),
        strides: Some(vec![3, 1]),
        ..Spec::bytes_1d()
    };
    run_case("shape_negative_2d", spec, |c| {
        c.get::<u8, IxDyn>(err(INVALID_LAYOUT).has("-3"));
        c.get::<u8, Ix2>(err(INVALID_LAYOUT).has("-3"));
        c.get::<u8, Ix1>(err(DIMENSIONS_OR_LAYOUT).has("-3"));
        c.get::<u16, Ix2>(err(ELEMENT_TYPE_OR_LAYOUT).has("-3"));
        c.any(err(INVALID_LAYOUT).has("-3"), Want::Ok);
    });
}

#[test]
fn shape_product_overflows() {
    let spec = Spec {
        ndim: 2,
        shape: Some(vec![1 << 62, 4]),
        strides: Some(vec![4, 1]),
        ..Spec::bytes_1d()
    };
    run_case("shape_product_overflows", spec, |c| {
        c.get::<u8, IxDyn>(err(INVALID_LAYOUT).has("4611686018427387904"));
        c.get::<u8, Ix2>(err(INVALID_LAYOUT).has("4611686018427387904"));
        c.get::<u8, Ix1>(err(DIMENSIONS_OR_LAYOUT).has("4611686018427387904"));
        c.any(err(INVALID_LAYOUT).has("4611686018427387904"), Want::Ok);
    });
}

#[test]
fn shape_isize_max() {
    let spec = Spec {
        ndim: 2,
        shape: Some(vec![isize::MAX, 2]),
        strides: Some(vec![2, 1]),
        ..Spec::bytes_1d()
    };
    run_case("shape_isize_max", spec, |c| {
        c.get::<u8, IxDyn>(err(INVALID_LAYOUT).has("9223372036854775807"));
        c.get::<u8, Ix2>(err(INVALID_LAYOUT).has("9223372036854775807"));
        c.any(err(INVALID_LAYOUT).has("9223372036854775807"), Want::Ok);
    });
}

#[test]
fn stride_isize_max() {
    let spec = Spec {
        len: 2,
        shape: Some(vec![2]),
        strides: Some(vec![isize::MAX]),
        ..Spec::bytes_1d()
    };
    run_case("stride_isize_max", spec, |c| {
        all_u8_fail(c, err(INVALID_LAYOUT).has("9223372036854775807"));
    });
}

#[test]
fn stride_isize_min() {
    let spec = Spec {
        len: 2,
        shape: Some(vec![2]),
        strides: Some(vec![isize::MIN]),
        ..Spec::bytes_1d()
    };
    run_case("stride_isize_min", spec, |c| {
        all_u8_fail(c, err(INVALID_LAYOUT).has("-9223372036854775808"));
    });
}

#[test]
fn shape_times_stride_overflows() {
    let spec = Spec {
        len: 3,
        shape: Some(vec![3]),
        strides: Some(vec![1 << 62]),
        ..Spec::bytes_1d()
    };
    run_case("shape_times_stride_overflows", spec, |c| {
        all_u8_fail(c, err(INVALID_LAYOUT).has("4611686018427387904"));
    });
}

/// Backward strides from a tiny address: the items would lie below address 0.
#[test]
fn backward_strides_wrap_below_zero() {
    let spec = Spec {
        buf: Buf::Address(16),
        len: 2,
        shape: Some(vec![2]),
        strides: Some(vec![-32]),
        ..Spec::bytes_1d()
    };
    run_case("backward_strides_wrap", spec, |c| {
        all_u8_fail(c, err(INVALID_LAYOUT).has("wrap"));
    });
}

#[test]
fn forward_strides_wrap_above_the_top() {
    let spec = Spec {
        buf: Buf::Address(usize::MAX - 15),
        len: 4,
        shape: Some(vec![4]),
        strides: Some(vec![8]),
        ..Spec::bytes_1d()
    };
    run_case("forward_strides_wrap", spec, |c| {
        all_u8_fail(c, err(INVALID_LAYOUT).has("wrap"));
    });
}

/// Finding 4: zero-sized items (`0B`, itemsize 0) in a shape of more than `isize::MAX` items.
#[test]
fn zero_size_items_beyond_isize_max() {
    let spec = Spec {
        len: 0,
        itemsize: 0,
        ndim: 2,
        shape: Some(vec![1 << 62, 3]),
        strides: Some(vec![0, 0]),
        ..Spec::bytes_1d().format("0B")
    };
    const SAYS_COUNT: &[&str] = &["4611686018427387904", "13835058055282163712"];
    run_case("zero_size_items_beyond_isize_max", spec, |c| {
        c.get::<[u8; 0], IxDyn>(err(INVALID_LAYOUT).has_any(SAYS_COUNT));
        c.get::<[u8; 0], Ix2>(err(INVALID_LAYOUT).has_any(SAYS_COUNT));
        c.get::<u8, Ix2>(err(ELEMENT_TYPE_OR_LAYOUT).has_any(SAYS_COUNT));
        c.any(err(INVALID_LAYOUT).has_any(SAYS_COUNT), Want::Ok);
    });
}

// ---------------------------------------------------------------------------------------------
// Item sizes and formats

#[test]
fn itemsize_zero_with_format_b() {
    let spec = Spec {
        len: 0,
        itemsize: 0,
        ..Spec::bytes_1d()
    };
    run_case("itemsize_zero", spec, |c| {
        c.item_layout = err(ITEM_SIZE);
        c.get::<u8, IxDyn>(err(ITEM_SIZE).has("'B'").has("itemsize 0"));
        c.get::<u8, Ix1>(err(ITEM_SIZE).has("'B'").has("itemsize 0"));
        c.any(Want::Ok, err(ITEM_SIZE).has("itemsize 0"));
    });
}

#[test]
fn itemsize_negative() {
    let spec = Spec {
        itemsize: -1,
        ..Spec::bytes_1d()
    };
    run_case("itemsize_negative", spec, |c| {
        c.get::<u8, IxDyn>(err(ITEM_SIZE_OR_LAYOUT).has("-1"));
        c.get::<u8, Ix1>(err(ITEM_SIZE_OR_LAYOUT).has("-1"));
        c.get_mut::<u8, IxDyn>(err(ITEM_SIZE_OR_LAYOUT).has("-1"));
        c.any(err(INVALID_LAYOUT).has("-1"), Want::Ok);
    });
}

#[test]
fn itemsize_disagrees_with_the_format() {
    let spec = Spec {
        data: (0..12).collect(),
        len: 12,
        itemsize: 2,
        strides: Some(vec![2]),
        ..Spec::bytes_1d().format("i")
    };
    run_case("itemsize_mismatch", spec, |c| {
        c.item_layout = err(ITEM_SIZE);
        c.get::<i32, Ix1>(err(ITEM_SIZE).has("'i'").has("4").has("itemsize 2"));
        c.get::<i32, IxDyn>(err(ITEM_SIZE).has("'i'").has("itemsize 2"));
        c.get::<u16, Ix1>(err(ELEMENT_TYPE).has("'i'"));
        c.any(Want::Ok, err(&["ItemSize", "ElementType"]));
    });
}

#[test]
fn itemsize_larger_than_a_scalar_format() {
    let spec = Spec {
        data: (0..24).collect(),
        len: 24,
        itemsize: 4,
        strides: Some(vec![4]),
        ..Spec::bytes_1d()
    };
    run_case("itemsize_larger", spec, |c| {
        c.item_layout = err(ITEM_SIZE);
        c.get::<u8, Ix1>(err(ITEM_SIZE).has("'B'").has("itemsize 4"));
        c.get::<u32, Ix1>(err(ELEMENT_TYPE).has("'B'"));
        c.any(Want::Ok, err(ITEM_SIZE));
    });
}

/// A format pybuf cannot parse: every typed acquisition fails with `want`; `AnyBuffer` still
/// acquires, shows the format and reports the parse error from `item_layout()`/`typed()`.
fn bad_format(name: &'static str, format: &[u8], want: Want) {
    let spec = Spec {
        format: Some(format.to_vec()),
        ..Spec::bytes_1d()
    };
    run_case(name, spec, |c| {
        c.item_layout = want.clone();
        c.get::<u8, IxDyn>(want.clone());
        c.get::<u8, Ix1>(want.clone());
        c.get_mut::<u8, Ix1>(want.clone());
        c.any(Want::Ok, want);
    });
}

#[test]
fn format_non_ascii() {
    bad_format("format_non_ascii", "é".as_bytes(), err(FORMAT).has("é"));
}

#[test]
fn format_non_utf8() {
    bad_format(
        "format_non_utf8",
        b"\xffB",
        err(FORMAT).has_any(&["\u{fffd}", "xff", "0xff", "255"]),
    );
}

#[test]
fn format_unbalanced() {
    let mut failures = Vec::new();
    for format in ["T{B", "T{B}}", "B}", "(2B", "(2)B)", "T{B:a", "T{(2}B"] {
        if let Err(p) = attempt(|| bad_format("format_unbalanced", format.as_bytes(), err(FORMAT).has(format))) {
            failures.push(format!("{format:?}: {p}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn format_huge_repeat_counts() {
    let mut failures = Vec::new();
    for format in [
        "99999999999999999999B",
        "9223372036854775807B",
        "9223372036854775808B",
        "(4294967296,4294967296)B",
        "1000000000000000000x",
        "4611686018427387904H",
    ] {
        let want = err(FORMAT_ELEMENT_TYPE_OR_ITEM_SIZE);
        if let Err(p) = attempt(|| bad_format("format_huge_repeat", format.as_bytes(), want)) {
            failures.push(format!("{format:?}: {p}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn format_nested_beyond_64_levels() {
    let format = format!("{}B{}", "T{".repeat(65), "}".repeat(65));
    bad_format("format_nesting_65", format.as_bytes(), err(FORMAT).has("64"));
}

// ---------------------------------------------------------------------------------------------
// Refusals and read-only memory

#[test]
fn read_only_memory_on_a_writable_request() {
    let spec = Spec {
        readonly: 1,
        ..Spec::bytes_1d()
    };
    run_case("readonly_on_writable_request", spec, |c| {
        let read_only = err(READ_ONLY).has("'hostile.Exporter'");
        c.get::<u8, IxDyn>(Want::Ok);
        c.get_mut::<u8, IxDyn>(read_only.clone());
        c.get_mut::<u8, Ix1>(read_only.clone());
        c.any(Want::Ok, Want::Ok);
        c.any_mut(read_only);
        c.read_only_writes();
    });
}

#[test]
fn refuses_writable_requests() {
    let spec = Spec {
        answer: Answer::RefuseWritable,
        ..Spec::bytes_1d()
    };
    run_case("refuses_writable", spec, |c| {
        let read_only = err(READ_ONLY).has("'hostile.Exporter'");
        c.get::<u8, IxDyn>(Want::Ok);
        c.get_mut::<u8, IxDyn>(read_only.clone());
        c.any(Want::Ok, Want::Ok);
        c.any_mut(read_only);
        c.read_only_writes();
    });
}

#[test]
fn refusal_with_an_exception() {
    let spec = Spec {
        answer: Answer::Fail,
        ..Spec::bytes_1d()
    };
    run_case("refusal", spec, |c| {
        all_u8_fail(c, err(REFUSED).has("'hostile.Exporter'").has("hostile refusal"));
    });
}

/// A refusal that leaves a filled view behind (with a strong reference in `obj`): a failed
/// request must never be released.
#[test]
fn refusal_after_filling_the_view() {
    let spec = Spec {
        answer: Answer::FailAfterFilling,
        ..Spec::bytes_1d()
    };
    run_case("refusal_after_filling", spec, |c| {
        all_u8_fail(c, err(REFUSED).has("'hostile.Exporter'").has("hostile refusal"));
    });
}

/// Finding 5b: -1 without an exception is a refusal with pybuf's own message, not a panic,
/// and leaves no exception set.
#[test]
fn refusal_without_an_exception() {
    let spec = Spec {
        answer: Answer::FailWithoutException,
        ..Spec::bytes_1d()
    };
    run_case("refusal_without_exception", spec, |c| {
        all_u8_fail(c, err(REFUSED).has("'hostile.Exporter'"));
        c.get::<f64, Ix2>(err(REFUSED).has("'hostile.Exporter'"));
    });
}

// ---------------------------------------------------------------------------------------------
// An exporter that rewrites its format after handing the view out

/// Finding 5: `format()` and `Debug` keep what was validated at acquisition; rewriting the
/// exporter's bytes afterwards (to non-UTF-8, or to another valid format) changes neither and
/// panics in neither.
#[test]
fn format_rewritten_after_acquisition() {
    run_case("format_rewritten", Spec::bytes_1d(), |c| {
        let obj = c.ex.obj.clone();
        let typed = Buffer::<u8, Ix1>::get(&obj).expect("a legal buffer");
        let any = AnyBuffer::get(&obj).expect("a legal buffer");
        let bytes_before = typed.to_vec().unwrap();
        for rewrite in [&b"\xff\xfe"[..], b"d", b"T{"] {
            c.ex.rewrite_format(rewrite);
            let label = format!("after rewriting the format to {rewrite:?}");
            match attempt(|| typed.format().to_string()) {
                Ok(f) if f == "B" => {}
                other => c.fail(&label, format!("Buffer::format() {other:?}, validated 'B'")),
            }
            match attempt(|| any.format().into_owned()) {
                Ok(f) if f == "B" => {}
                other => c.fail(&label, format!("AnyBuffer::format() {other:?}, validated 'B'")),
            }
            match attempt(|| format!("{typed:?}")) {
                Ok(d) if d.contains("\"B\"") => {}
                other => c.fail(&label, format!("Buffer Debug {other:?}")),
            }
            match attempt(|| format!("{any:?}")) {
                Ok(d) if d.contains("\"B\"") => {}
                other => c.fail(&label, format!("AnyBuffer Debug {other:?}")),
            }
            match attempt(|| (typed.to_vec(), typed.item(5))) {
                Ok((Ok(v), Ok(last))) if v == bytes_before && last == bytes_before[5] => {}
                other => c.fail(&label, format!("values {other:?}")),
            }
        }
        c.ex.rewrite_format(b"B");
    });
}

// ---------------------------------------------------------------------------------------------
// Formats that must not hang: run in a child process with a time limit

/// Set in a child process to the name of the one test it runs.
const CHILD: &str = "PYBUF_HOSTILE_CHILD";

/// Generous: the fixed matcher takes microseconds; a hang is what this catches.
const CHILD_LIMIT: Duration = Duration::from_secs(60);

/// Whether this process is the child started for test `name`.
fn is_child(name: &str) -> bool {
    std::env::var(CHILD).as_deref() == Ok(name)
}

/// Runs the test `name` of this binary alone in a child process; fails if it fails or has not
/// finished after [`CHILD_LIMIT`] (then it is killed, so a hang holding the interpreter lock
/// cannot stall the other tests). Under valgrind the child runs natively (memcheck does not
/// follow children unless asked to).
fn in_child_process(name: &str) {
    let log_path =
        std::env::temp_dir().join(format!("pybuf-hostile-{name}-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, name)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > CHILD_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    match status {
        None => panic!("{name} did not finish within {CHILD_LIMIT:?} (a hang):\n{output}"),
        Some(s) if !s.success() || !output.contains("1 passed") => {
            panic!("{name} failed in the child process ({s}):\n{output}")
        }
        Some(_) => {}
    }
}

/// Defines a test that runs `$body` in a child process (`in_child_process`), and the test
/// `$child` that is that body: it does nothing unless its parent started the process.
macro_rules! in_child {
    ($(#[$doc:meta])* fn $parent:ident / $child:ident() $body:block) => {
        $(#[$doc])*
        #[test]
        fn $parent() {
            in_child_process(stringify!($child));
        }

        /// The body of the test of the same name without `child_`, run in its own process.
        #[test]
        fn $child() {
            if !is_child(stringify!($child)) {
                return;
            }
            $body
        }
    };
}

/// Data of two-byte items for the deep two-byte formats.
fn two_byte_items(format: &str) -> Spec {
    Spec {
        data: (0..12).collect(),
        len: 12,
        itemsize: 2,
        strides: Some(vec![2]),
        ..Spec::bytes_1d().format(format)
    }
}

in_child! {
    /// Finding 1: `"T{"*64 + "B" + "}"*64` with itemsize 1 (193 bytes) is matched or refused in
    /// time linear in its size; today's matcher costs 3× per level and never finishes.
    fn deep_format_finishes / child_deep_format_finishes() {
        let format = format!("{}B{}", "T{".repeat(64), "}".repeat(64));
        run_case("deep_format", Spec::bytes_1d().format(&format), |c| {
            let either = err(FORMAT_OR_ELEMENT_TYPE).or_ok();
            c.get::<u8, IxDyn>(either.clone());
            c.get::<u8, Ix1>(either.clone());
            c.get::<[u8; 1], Ix1>(either.clone());
            c.get::<u16, Ix1>(err(FORMAT_OR_ELEMENT_TYPE));
            c.any(Want::Ok, either);
        });
    }
}

in_child! {
    /// Two bytes at the bottom of 64 levels of one-field structs.
    fn deep_two_byte_format_finishes / child_deep_two_byte_format_finishes() {
        let format = format!("{}BB{}", "T{".repeat(64), "}".repeat(64));
        run_case("deep_format_two_bytes", two_byte_items(&format), |c| {
            c.get::<[u8; 2], Ix1>(err(FORMAT_OR_ELEMENT_TYPE).or_ok());
            c.get::<u16, Ix1>(err(FORMAT_OR_ELEMENT_TYPE));
            c.get::<u8, Ix1>(err(FORMAT_OR_ELEMENT_TYPE));
            c.any(Want::Ok, err(FORMAT_OR_ELEMENT_TYPE));
        });
    }
}

in_child! {
    /// 63 levels of one-field structs around a sub-array of one-field structs.
    fn deep_format_around_a_subarray_finishes / child_deep_format_around_a_subarray_finishes() {
        let format = format!("{}(2)T{{B}}{}", "T{".repeat(63), "}".repeat(63));
        run_case("deep_format_subarray", two_byte_items(&format), |c| {
            c.get::<[u8; 2], Ix1>(err(FORMAT_OR_ELEMENT_TYPE).or_ok());
            c.get::<u16, Ix1>(err(FORMAT_OR_ELEMENT_TYPE));
            c.any(Want::Ok, err(FORMAT_OR_ELEMENT_TYPE));
        });
    }
}

in_child! {
    /// Huge repeat counts of zero-sized items: nothing may iterate over the count.
    fn huge_repeats_of_zero_size_items_finish / child_huge_repeats_of_zero_size_items_finish() {
        for format in [
            "4611686018427387904T{}",
            "9223372036854775807T{0B}",
            "(3037000499,3037000499)0B",
            "T{4611686018427387904T{}:a:B:b:}",
        ] {
            let zero_size = !format.ends_with(":b:}");
            let spec = Spec {
                len: if zero_size { 0 } else { 6 },
                itemsize: if zero_size { 0 } else { 1 },
                ..Spec::bytes_1d().format(format)
            };
            let either = err(FORMAT_ELEMENT_TYPE_OR_ITEM_SIZE).or_ok();
            run_case("huge_repeat_of_zero_size", spec, |c| {
                c.item_layout = either.clone();
                c.get::<[u8; 0], Ix1>(either.clone());
                c.get::<u8, Ix1>(either.clone());
                c.any(Want::Ok, either.clone());
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Issue 12, finding 1: the type name in read-only errors while Python renames the type

/// A short run of the rename storm (the long one is `tests/hostile_rename.rs`); clean under
/// valgrind only if no error path reads the type's name without the interpreter lock.
#[test]
fn read_only_errors_name_a_coherent_type_during_a_rename_storm() {
    rename_storm::run(40, 100);
}
