//! The harness of the hostile-exporter tests: what an operation must give ([`Want`]), one
//! case's probes through every accessor of pybuf with failures collected ([`Case`],
//! [`run_case`]), and a child-process runner with a time limit for inputs that may hang.
#![allow(dead_code)]

use std::any::Any;
use std::fmt::Debug;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ndarray::{Dimension, IxDyn};
use pybuf::{AnyBuffer, Buffer, Element, Error};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::common;
use crate::hostile_exporter::{Exporter, Spec, TYPE_NAME};

// ---------------------------------------------------------------------------------------------
// Expectations

/// What an operation must give.
#[derive(Clone, Debug)]
pub enum Want {
    /// Success, with Python's values.
    Ok,
    /// One of these error variants, with a message that says what the exporter sent.
    Err(ErrWant),
    /// Either (where both answers are right, such as a deep format that pybuf may match or
    /// refuse, as long as it finishes).
    OkOr(ErrWant),
}

/// An expected error: its variant and what its message must (not) say.
#[derive(Clone, Debug, Default)]
pub struct ErrWant {
    /// The acceptable variants (empty: any).
    pub variants: &'static [&'static str],
    /// Substrings the message must contain.
    pub has: Vec<&'static str>,
    /// Groups of which the message must contain at least one.
    pub has_any: Vec<&'static [&'static str]>,
    /// Substrings the message must not contain.
    pub lacks: Vec<&'static str>,
}

/// An error of one of `variants` (names of `pybuf::Error` variants).
pub fn err(variants: &'static [&'static str]) -> Want {
    Want::Err(ErrWant {
        variants,
        ..ErrWant::default()
    })
}

impl Want {
    /// Success is right too.
    pub fn or_ok(self) -> Want {
        match self {
            Want::Err(e) | Want::OkOr(e) => Want::OkOr(e),
            Want::Ok => Want::Ok,
        }
    }
    /// The message must contain `s`.
    pub fn has(mut self, s: &'static str) -> Want {
        if let Want::Err(e) | Want::OkOr(e) = &mut self {
            e.has.push(s);
        }
        self
    }
    /// The message must contain one of `any`.
    pub fn has_any(mut self, any: &'static [&'static str]) -> Want {
        if let Want::Err(e) | Want::OkOr(e) = &mut self {
            e.has_any.push(any);
        }
        self
    }
    /// The message must not contain `s`.
    pub fn lacks(mut self, s: &'static str) -> Want {
        if let Want::Err(e) | Want::OkOr(e) = &mut self {
            e.lacks.push(s);
        }
        self
    }
}

pub const INVALID_LAYOUT: &[&str] = &["InvalidLayout"];
pub const DIMENSIONS: &[&str] = &["Dimensions"];
/// A number of dimensions `D` cannot take that is also impossible in itself: the caller's
/// `D` mismatch or the impossible layout are both clear, as long as the message is right.
pub const DIMENSIONS_OR_LAYOUT: &[&str] = &["Dimensions", "InvalidLayout"];
pub const ELEMENT_TYPE: &[&str] = &["ElementType"];
pub const ELEMENT_TYPE_OR_LAYOUT: &[&str] = &["ElementType", "InvalidLayout"];
pub const ITEM_SIZE: &[&str] = &["ItemSize"];
pub const ITEM_SIZE_OR_LAYOUT: &[&str] = &["ItemSize", "InvalidLayout"];
pub const FORMAT: &[&str] = &["Format"];
pub const FORMAT_ELEMENT_TYPE_OR_ITEM_SIZE: &[&str] = &["Format", "ElementType", "ItemSize"];
pub const FORMAT_OR_ELEMENT_TYPE: &[&str] = &["Format", "ElementType"];
pub const READ_ONLY: &[&str] = &["ReadOnly"];
pub const REFUSED: &[&str] = &["Refused"];
pub const SUBOFFSETS: &[&str] = &["Suboffsets"];
pub const STRIDE_NOT_MULTIPLE: &[&str] = &["StrideNotMultiple"];
pub const MISALIGNED: &[&str] = &["Misaligned"];
pub const SELF_OVERLAPPING: &[&str] = &["SelfOverlapping"];

/// The name of `e`'s variant, as the expectations spell it.
pub fn variant(e: &Error) -> &'static str {
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

/// An error of acquisition: what `want` describes, and, for the variants whose message says
/// where the buffer came from, naming the exporter's type (recorded while attached).
fn check_acquisition_error(e: &Error, want: &Want) -> Result<(), String> {
    let names_exporter = matches!(
        e,
        Error::NotABuffer { .. }
            | Error::Refused { .. }
            | Error::ReadOnly { .. }
            | Error::Format { .. }
            | Error::ElementType { .. }
            | Error::ByteOrder { .. }
            | Error::Dimensions { .. }
            | Error::InvalidLayout { .. }
    );
    let quoted = format!("'{TYPE_NAME}'");
    match check_error(e, want) {
        Ok(()) if names_exporter && !e.to_string().contains(&quoted) => Err(format!(
            "message does not name the exporter {quoted}; got {}: {e}",
            variant(e)
        )),
        result => result,
    }
}

/// `Ok` if `e` is what `want` describes, else why not.
pub fn check_error(e: &Error, want: &Want) -> Result<(), String> {
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
pub fn attempt<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| format!("PANICKED: {}", panic_message(&*p)))
}

pub fn panic_message(p: &(dyn Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "<non-string panic>".into())
}

/// What Python's `memoryview` reports for a legal case.
#[derive(Clone, Debug)]
pub struct Reference {
    shape: Vec<usize>,
    /// `tobytes()`: every item's bytes in logical C order.
    bytes: Vec<u8>,
}

pub fn dim_name<D: Dimension>() -> String {
    match D::NDIM {
        Some(n) => format!("Ix{n}"),
        None => "IxDyn".into(),
    }
}

pub struct Case<'py> {
    pub name: &'static str,
    pub py: Python<'py>,
    g: Bound<'py, PyDict>,
    pub ex: Exporter<'py>,
    /// The format bytes the exporter sends (`None`: NULL).
    format: Option<Vec<u8>>,
    reference: Option<Reference>,
    /// The outcome of `read()` on a successfully acquired buffer.
    pub view: Want,
    /// The outcome of `write()` on a successfully acquired writable buffer.
    pub write: Want,
    /// The outcome of `AnyBuffer::item_layout()`.
    pub item_layout: Want,
    /// Whether copies, items and views may read the data (false when the exporter's pointer
    /// tables are garbage: following them is the exporter's promise, not pybuf's to check).
    pub touch_data: bool,
    failures: Vec<String>,
}

/// Runs one case: `f` makes the probes, then the release counts are checked and every
/// failure is reported together.
pub fn run_case(name: &'static str, spec: Spec, f: impl FnOnce(&mut Case<'_>)) {
    Python::attach(|py| {
        let mut case = Case {
            name,
            py,
            g: PyDict::new(py),
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
    pub fn fail(&mut self, label: &str, problem: impl Into<String>) {
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
    pub fn get<T: Element + Debug, D: Dimension>(&mut self, want: Want) {
        self.probe::<T, D>(false, want);
    }

    /// `Buffer::<T, D>::get_mut`.
    pub fn get_mut<T: Element + Debug, D: Dimension>(&mut self, want: Want) {
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
                if let Err(problem) = check_acquisition_error(&e, &want) {
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
            Ok(debug) if !debug.contains("Buffer") => self.fail(label, format!("Debug: {debug}")),
            Ok(_) => {}
            Err(p) => self.fail(label, format!("Debug: {p}")),
        }
        let format = self.spec_format();
        match attempt(|| buf.format().to_string()) {
            Ok(f) if f == format => {}
            Ok(f) => self.fail(
                label,
                format!("format() is {f:?}, the exporter sent {format:?}"),
            ),
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
            self.fail(
                label,
                format!("shape() {:?}, Python {shape:?}", buf.shape()),
            );
        }
        if buf.len() != len {
            self.fail(
                label,
                format!("len() {}, Python's shape holds {len}", buf.len()),
            );
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
            Ok(Ok(v)) => self.fail(
                label,
                format!("to_vec() {v:?}, Python {:?}", reference.bytes),
            ),
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
        // (a view of more items than this is only checked for its length, so a wrongly
        // accepted huge layout of zero-sized items cannot make the test run for ever)
        const COLLECT_AT_MOST: usize = 1 << 16;
        let got = attempt(|| {
            buf.read().map(|guard| {
                let view = guard.view();
                if view.len() != buf.len() || buf.len() > COLLECT_AT_MOST {
                    return (Err(view.len()), None);
                }
                let items: Vec<T> = view.iter().copied().collect();
                let slice = guard.as_slice().map(<[T]>::to_vec);
                (Ok(items), slice)
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
                let items = match items {
                    Ok(items) => items,
                    Err(n) if n != buf.len() => {
                        return self.fail(
                            label,
                            format!("read() view of {n} items, len() {}", buf.len()),
                        );
                    }
                    Err(_) => return,
                };
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
                format!(
                    "writing the same values changed the memory to {:?}",
                    now.bytes
                ),
            ),
            _ => {}
        }
    }

    /// `AnyBuffer::get` (or `get_mut`), its accessors, and `typed::<u8, IxDyn>()`.
    pub fn any(&mut self, want: Want, typed: Want) {
        self.any_probe(false, want, typed);
    }

    pub fn any_mut(&mut self, want: Want) {
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
                if let Err(problem) = check_acquisition_error(&e, &want) {
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
        match attempt(|| any.format().to_string()) {
            Ok(f) if f == format => {}
            Ok(f) => self.fail(
                label,
                format!("format() is {f:?}, the exporter sent {format:?}"),
            ),
            Err(p) => self.fail(label, format!("format(): {p}")),
        }
        if let Err(p) = attempt(|| (any.element_kind(), any.alignment(), any.is_c_contiguous())) {
            self.fail(label, format!("element_kind/alignment/contiguity: {p}"));
        }
        let item_want = self.item_layout.clone();
        match attempt(|| {
            any.item_layout()
                .map(|i| i.describe())
                .map_err(|e| (variant(e), e.to_string()))
        }) {
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
                        self.fail(
                            label,
                            format!("shape() {s:?}, Python {:?}", reference.shape),
                        );
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
                if let Err(problem) = check_acquisition_error(&e, &typed) {
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
    pub fn drop_on_another_thread(&mut self) {
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
    pub fn read_only_writes(&mut self) {
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
            (
                "copy_from_slice",
                attempt(|| buf.copy_from_slice(&vec![0; buf.len()])),
            ),
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
// Inputs that may hang: a child process with a time limit

/// Set in a child process to the name of the one test it runs.
pub const CHILD: &str = "PYBUF_HOSTILE_CHILD";

/// Generous (the inputs take milliseconds when handled right): only a hang reaches it.
pub const CHILD_LIMIT: Duration = Duration::from_secs(30);

/// Whether this process is the child started for test `name`.
pub fn is_child(name: &str) -> bool {
    std::env::var(CHILD).as_deref() == Ok(name)
}

/// Runs the test `name` of this binary alone in a child process; fails if it fails or has not
/// finished after [`CHILD_LIMIT`] (then it is killed, so a hang holding the interpreter lock
/// cannot stall the other tests). Under valgrind the child runs natively (memcheck does not
/// follow children unless asked to).
pub fn in_child_process(name: &str) {
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
