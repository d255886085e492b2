//! A hostile buffer exporter for the tests: a Python type, `hostile.Exporter`, defined from Rust
//! with `PyType_FromSpec`, whose raw `bf_getbuffer` slot fills `Py_buffer` with whatever its
//! instance's [`Spec`] says (NULL data, lying lengths, 65 dimensions, negative shapes,
//! overflowing strides, broken formats, failures without an exception, ...), and whose
//! `bf_releasebuffer` slot checks that only views it handed out come back, each once.
//!
//! Every acquisition gets a token in `Py_buffer.internal`; [`Counts`] records what happened,
//! so a test can assert that every successful `getbuffer` was released exactly once and a
//! failed one never. The memory an instance hands out (data, shape, strides, suboffsets,
//! format, pointer table) is owned by its [`State`], which outlives the Python object as long
//! as the test holds the `Arc`: even a view that (wrongly) outlived its exporter would still
//! point to live memory, so a pybuf bug shows up as a failed count rather than as a crash.
#![allow(dead_code)]

use std::collections::HashSet;
use std::ffi::{c_int, c_void};
use std::ptr;
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// The exporter's `tp_name`.
pub const TYPE_NAME: &str = "hostile.Exporter";

/// Bytes of readable memory before the data, so that a layout whose items lie below `buf`
/// (backward strides from the start) reads memory the test owns, with known contents.
pub const GUARD: usize = 64;

/// Where `Py_buffer.buf` points.
#[derive(Clone, Debug)]
pub enum Buf {
    /// `offset` bytes from the start of the data (may be negative, into the guard bytes).
    At(isize),
    /// NULL.
    Null,
    /// A made-up address, never dereferenced by a correct reader (the layout must be refused).
    Address(usize),
    /// A table of row pointers (PIL-style suboffsets): each entry is the address of the data
    /// at that offset, or NULL.
    Table(Vec<Option<usize>>),
}

/// What `bf_getbuffer` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Fill the view from the spec and return 0.
    Fill,
    /// Raise `BufferError("hostile refusal")` and return -1, leaving the view untouched.
    Fail,
    /// Return -1 without setting an exception.
    FailWithoutException,
    /// Fill the whole view (with a strong reference in `obj`), then raise `BufferError` and
    /// return -1: a reader that releases what a failed call left behind is caught.
    FailAfterFilling,
    /// Raise `BufferError` for writable requests; fill (read-only) for the others.
    RefuseWritable,
}

/// What `Py_buffer.obj` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Obj {
    /// The exporter itself (a new strong reference), as the protocol asks.
    Exporter,
    /// NULL (then CPython's `PyBuffer_Release` never calls `bf_releasebuffer`).
    Null,
}

/// One adversarial `Py_buffer`, as `bf_getbuffer` will fill it.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The bytes the data pointer can point into (after [`GUARD`] bytes of guard pattern).
    pub data: Vec<u8>,
    pub buf: Buf,
    pub len: isize,
    pub itemsize: isize,
    pub ndim: c_int,
    /// The format bytes (without the NUL), or `None` for a NULL format.
    pub format: Option<Vec<u8>>,
    pub shape: Option<Vec<isize>>,
    pub strides: Option<Vec<isize>>,
    pub suboffsets: Option<Vec<isize>>,
    pub readonly: c_int,
    pub obj: Obj,
    pub answer: Answer,
}

impl Spec {
    /// A legal, writable 1-D buffer of the bytes 10..16 (format `B`): the starting point that
    /// each case changes.
    pub fn bytes_1d() -> Spec {
        Spec {
            data: (10..16).collect(),
            buf: Buf::At(0),
            len: 6,
            itemsize: 1,
            ndim: 1,
            format: Some(b"B".to_vec()),
            shape: Some(vec![6]),
            strides: Some(vec![1]),
            suboffsets: None,
            readonly: 0,
            obj: Obj::Exporter,
            answer: Answer::Fill,
        }
    }

    /// Sets the format from a string.
    pub fn format(mut self, format: &str) -> Spec {
        self.format = Some(format.as_bytes().to_vec());
        self
    }
}

/// What the exporter saw, for the release checks.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    /// `bf_getbuffer` calls.
    pub requests: usize,
    /// Calls that returned 0 with `obj` set (each must be released exactly once).
    pub filled: usize,
    /// Calls that returned 0 with `obj` NULL (CPython never calls `bf_releasebuffer` for them).
    pub filled_without_obj: usize,
    /// Calls that returned -1.
    pub failed: usize,
    /// Failed calls that left a strong reference in `obj` ([`Answer::FailAfterFilling`]).
    pub leaked_refs: usize,
    /// `bf_releasebuffer` calls for views this exporter handed out.
    pub released: usize,
    /// `bf_releasebuffer` calls for a failed view, an unknown one or a second time.
    pub bad_releases: Vec<String>,
    /// Successful views not released yet.
    pub outstanding: usize,
}

struct Tokens {
    counts: Counts,
    next: usize,
    live: HashSet<usize>,
    failed: HashSet<usize>,
    released: HashSet<usize>,
}

/// An owned allocation handed out to C by address (never through a Rust reference after
/// creation, so writes by the reader or by [`Exporter::rewrite_format`] are plain memory
/// writes to it).
struct Raw<T> {
    ptr: *mut T,
    len: usize,
}

impl<T> Raw<T> {
    fn new(values: Vec<T>) -> Raw<T> {
        let len = values.len();
        let ptr = Box::into_raw(values.into_boxed_slice()).cast::<T>();
        Raw { ptr, len }
    }
}

impl<T> Drop for Raw<T> {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `len` come from `Box::into_raw` of a boxed slice in `new`, and
        // this is the only place that frees it.
        drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(self.ptr, self.len)) });
    }
}

/// The memory one instance hands out, and its counters.
pub struct State {
    spec: Spec,
    data: Raw<u8>,
    format: Option<Raw<u8>>,
    shape: Option<Raw<isize>>,
    strides: Option<Raw<isize>>,
    suboffsets: Option<Raw<isize>>,
    table: Option<Raw<usize>>,
    tokens: Mutex<Tokens>,
}

// SAFETY: the raw allocations are owned by the state and only read or written through raw
// pointers (by the exporter slots under the interpreter lock, by the reader under its own
// rules, by `rewrite_format` from the test); the counters are behind a mutex.
unsafe impl Send for State {}
// SAFETY: as for `Send`.
unsafe impl Sync for State {}

/// Room for rewriting the format in place.
const FORMAT_CAPACITY: usize = 512;

impl State {
    fn new(spec: Spec) -> State {
        let mut data = vec![0u8; GUARD + spec.data.len() + GUARD];
        for (i, b) in data.iter_mut().enumerate() {
            *b = 0xa0 ^ (i as u8); // guard pattern
        }
        data[GUARD..GUARD + spec.data.len()].copy_from_slice(&spec.data);
        let data = Raw::new(data);
        let format = spec.format.as_ref().map(|f| {
            let mut bytes = f.clone();
            bytes.resize(bytes.len().max(FORMAT_CAPACITY), 0);
            Raw::new(bytes)
        });
        // Entries for 65 dimensions at least, so a reader that trusts a bad `ndim` still reads
        // memory the test owns.
        let pad = |v: &Vec<isize>| {
            let mut v = v.clone();
            let n = v.len().max(65);
            v.resize(n, 1);
            Raw::new(v)
        };
        let table = match &spec.buf {
            Buf::Table(rows) => {
                // addresses inside the data allocation (the test's offsets)
                let base = data.ptr as usize + GUARD;
                Some(Raw::new(
                    rows.iter()
                        .map(|r| r.map_or(0, |offset| base + offset))
                        .collect(),
                ))
            }
            _ => None,
        };
        State {
            shape: spec.shape.as_ref().map(pad),
            strides: spec.strides.as_ref().map(pad),
            suboffsets: spec.suboffsets.as_ref().map(pad),
            format,
            data,
            table,
            spec,
            tokens: Mutex::new(Tokens {
                counts: Counts::default(),
                next: 1,
                live: HashSet::new(),
                failed: HashSet::new(),
                released: HashSet::new(),
            }),
        }
    }

    fn tokens(&self) -> MutexGuard<'_, Tokens> {
        // a poisoned lock still holds consistent counts (no panic happens while it is held)
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The data pointer of the spec.
    fn buf(&self) -> *mut c_void {
        match &self.spec.buf {
            Buf::At(offset) => (self.data.ptr as usize + GUARD).wrapping_add_signed(*offset) as _,
            Buf::Null => ptr::null_mut(),
            Buf::Address(a) => *a as _,
            Buf::Table(_) => self
                .table
                .as_ref()
                .map_or(ptr::null_mut(), |t| t.ptr.cast()),
        }
    }

    /// `bf_getbuffer`.
    ///
    /// # Safety
    /// Called by CPython with the interpreter lock held, `exporter` an instance of the type
    /// and `view` a writable `Py_buffer`.
    unsafe fn get_buffer(
        &self,
        exporter: *mut ffi::PyObject,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> c_int {
        let mut tokens = self.tokens();
        tokens.counts.requests += 1;
        let token = tokens.next;
        tokens.next += 1;
        let writable_request = flags & ffi::PyBUF_WRITABLE != 0;
        let answer = match self.spec.answer {
            Answer::RefuseWritable if writable_request => Answer::Fail,
            Answer::RefuseWritable => Answer::Fill,
            answer => answer,
        };
        let fill = |v: &mut ffi::Py_buffer| {
            v.buf = self.buf();
            v.obj = match self.spec.obj {
                Obj::Exporter => {
                    // SAFETY: `exporter` is a live object; the view owns this reference.
                    unsafe { ffi::Py_INCREF(exporter) };
                    exporter
                }
                Obj::Null => ptr::null_mut(),
            };
            v.len = self.spec.len;
            v.itemsize = self.spec.itemsize;
            v.readonly = if self.spec.answer == Answer::RefuseWritable {
                1
            } else {
                self.spec.readonly
            };
            v.ndim = self.spec.ndim;
            v.format = self
                .format
                .as_ref()
                .map_or(ptr::null_mut(), |f| f.ptr.cast());
            v.shape = self.shape.as_ref().map_or(ptr::null_mut(), |s| s.ptr);
            v.strides = self.strides.as_ref().map_or(ptr::null_mut(), |s| s.ptr);
            v.suboffsets = self.suboffsets.as_ref().map_or(ptr::null_mut(), |s| s.ptr);
            v.internal = token as *mut c_void;
        };
        // SAFETY: CPython passes a valid, writable `Py_buffer`.
        let v = unsafe { &mut *view };
        match answer {
            Answer::Fill => {
                fill(v);
                if v.obj.is_null() {
                    tokens.counts.filled_without_obj += 1;
                } else {
                    tokens.counts.filled += 1;
                    tokens.live.insert(token);
                }
                0
            }
            Answer::Fail | Answer::RefuseWritable => {
                tokens.counts.failed += 1;
                tokens.failed.insert(token);
                // SAFETY: attached (CPython calls slots with the lock held).
                unsafe { raise_buffer_error() };
                -1
            }
            Answer::FailWithoutException => {
                tokens.counts.failed += 1;
                tokens.failed.insert(token);
                -1
            }
            Answer::FailAfterFilling => {
                fill(v);
                tokens.counts.failed += 1;
                if !v.obj.is_null() {
                    tokens.counts.leaked_refs += 1;
                }
                tokens.failed.insert(token);
                // SAFETY: attached.
                unsafe { raise_buffer_error() };
                -1
            }
        }
    }

    /// `bf_releasebuffer`.
    fn release_buffer(&self, view: &ffi::Py_buffer) {
        let token = view.internal as usize;
        let mut tokens = self.tokens();
        if tokens.live.remove(&token) {
            tokens.released.insert(token);
            tokens.counts.released += 1;
        } else {
            let why = if tokens.failed.contains(&token) {
                "a view whose getbuffer failed"
            } else if tokens.released.contains(&token) {
                "a view released before"
            } else {
                "a view this exporter never handed out"
            };
            tokens
                .counts
                .bad_releases
                .push(format!("release of token {token}: {why}"));
        }
    }

    /// A snapshot of the counters.
    pub fn counts(&self) -> Counts {
        let tokens = self.tokens();
        let mut counts = tokens.counts.clone();
        counts.outstanding = tokens.live.len();
        counts
    }
}

/// Sets `BufferError("hostile refusal")`.
///
/// # Safety
/// The caller is attached to the interpreter.
unsafe fn raise_buffer_error() {
    // SAFETY: attached (caller); both arguments are valid (a borrowed exception type and a
    // NUL-terminated message).
    unsafe { ffi::PyErr_SetString(ffi::PyExc_BufferError, c"hostile refusal".as_ptr()) };
}

/// The instance layout of `hostile.Exporter`.
#[repr(C)]
struct ExporterObject {
    ob_base: ffi::PyObject,
    /// From `Arc::into_raw`; NULL for an instance not made by [`Exporter::new`].
    state: *const State,
}

/// The instance's state, or NULL.
///
/// # Safety
/// `obj` is a live instance of `hostile.Exporter`.
unsafe fn state_of<'a>(obj: *mut ffi::PyObject) -> Option<&'a State> {
    // SAFETY: instances of the type have the `ExporterObject` layout (basicsize); a non-NULL
    // state is kept alive by the instance's `Arc` until dealloc.
    unsafe { (*obj.cast::<ExporterObject>()).state.as_ref() }
}

unsafe extern "C" fn get_buffer(
    exporter: *mut ffi::PyObject,
    view: *mut ffi::Py_buffer,
    flags: c_int,
) -> c_int {
    // SAFETY: CPython calls the slot on an instance of this type, attached.
    match unsafe { state_of(exporter) } {
        // SAFETY: as above; `view` is CPython's writable `Py_buffer`.
        Some(state) => unsafe { state.get_buffer(exporter, view, flags) },
        None => {
            // SAFETY: attached.
            unsafe { raise_buffer_error() };
            -1
        }
    }
}

unsafe extern "C" fn release_buffer(exporter: *mut ffi::PyObject, view: *mut ffi::Py_buffer) {
    // SAFETY: CPython calls the slot on the view's `obj`, an instance of this type, with the
    // `Py_buffer` it is releasing.
    if let Some(state) = unsafe { state_of(exporter) } {
        // SAFETY: as above.
        state.release_buffer(unsafe { &*view });
    }
}

unsafe extern "C" fn dealloc(obj: *mut ffi::PyObject) {
    // SAFETY: the last reference to an instance of this type is gone; we own it.
    unsafe {
        let this = obj.cast::<ExporterObject>();
        let state = std::mem::replace(&mut (*this).state, ptr::null());
        if !state.is_null() {
            drop(Arc::from_raw(state));
        }
        let tp = ffi::Py_TYPE(obj);
        let free: ffi::freefunc = std::mem::transmute(ffi::PyType_GetSlot(tp, ffi::Py_tp_free));
        free(obj.cast());
        // heap types: each instance holds a reference to its type
        ffi::Py_DECREF(tp.cast());
    }
}

static TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// The `hostile.Exporter` type, created on first use.
fn exporter_type(py: Python<'_>) -> &Bound<'_, PyType> {
    TYPE.get_or_init(py, || {
        let mut slots = [
            ffi::PyType_Slot {
                slot: ffi::Py_bf_getbuffer,
                pfunc: get_buffer as *mut c_void,
            },
            ffi::PyType_Slot {
                slot: ffi::Py_bf_releasebuffer,
                pfunc: release_buffer as *mut c_void,
            },
            ffi::PyType_Slot {
                slot: ffi::Py_tp_dealloc,
                pfunc: dealloc as *mut c_void,
            },
            ffi::PyType_Slot::default(),
        ];
        let mut spec = ffi::PyType_Spec {
            // a static string: CPython 3.11 keeps the pointer as `tp_name`
            name: c"hostile.Exporter".as_ptr(),
            basicsize: std::mem::size_of::<ExporterObject>() as c_int,
            itemsize: 0,
            flags: ffi::Py_TPFLAGS_DEFAULT as _,
            slots: slots.as_mut_ptr(),
        };
        // SAFETY: attached; the spec and slots are valid for the call (CPython copies the
        // slots, and keeps only the static name).
        let tp = unsafe { ffi::PyType_FromSpec(&mut spec) };
        // SAFETY: a new reference, or NULL with an exception set.
        unsafe { Bound::from_owned_ptr_or_err(py, tp) }
            .expect("PyType_FromSpec")
            .cast_into::<PyType>()
            .expect("a type")
            .unbind()
    })
    .bind(py)
}

/// A handle on one hostile instance: the Python object and its state.
pub struct Exporter<'py> {
    pub obj: Bound<'py, PyAny>,
    pub state: Arc<State>,
}

impl<'py> Exporter<'py> {
    /// A new `hostile.Exporter` instance that answers every buffer request as `spec` says.
    pub fn new(py: Python<'py>, spec: Spec) -> Exporter<'py> {
        let state = Arc::new(State::new(spec));
        let tp = exporter_type(py);
        // SAFETY: attached; `tp` is a live heap type whose basicsize holds `ExporterObject`.
        // `PyType_GenericAlloc` returns a zeroed instance (state NULL) with a reference to
        // its type, or NULL with an exception set.
        let obj = unsafe {
            let obj = ffi::PyType_GenericAlloc(tp.as_ptr().cast(), 0);
            if !obj.is_null() {
                (*obj.cast::<ExporterObject>()).state = Arc::into_raw(state.clone());
            }
            Bound::from_owned_ptr_or_err(py, obj)
        }
        .expect("PyType_GenericAlloc");
        Exporter { obj, state }
    }

    /// The counters.
    pub fn counts(&self) -> Counts {
        self.state.counts()
    }

    /// Overwrites the format bytes in place (the exporter changing its mind after handing the
    /// view out); `bytes` must fit the allocation and contain no NUL.
    pub fn rewrite_format(&self, bytes: &[u8]) {
        let format = self.state.format.as_ref().expect("a format to rewrite");
        assert!(bytes.len() < format.len && !bytes.contains(&0));
        // SAFETY: the format allocation holds `format.len` bytes and is only accessed through
        // raw pointers; the caller holds no `&str` into it across this call (tests call it
        // between pybuf calls, on the thread that owns every handle).
        unsafe {
            ptr::copy_nonoverlapping(bytes.as_ptr(), format.ptr, bytes.len());
            *format.ptr.add(bytes.len()) = 0;
        }
    }

    /// Drops the strong references that [`Answer::FailAfterFilling`] left in failed views
    /// (nobody may release them), once the test has checked that nobody did.
    pub fn reclaim_leaked_refs(&self) {
        let counts = self.counts();
        assert!(counts.bad_releases.is_empty());
        for _ in 0..counts.leaked_refs {
            // SAFETY: each leaked reference is a strong reference to this object that no one
            // else will drop (no failed view was released: checked above); we hold another.
            unsafe { ffi::Py_DECREF(self.obj.as_ptr()) };
        }
        self.state.tokens().counts.leaked_refs = 0;
    }
}
