//! Releasing buffers from any thread: drop never blocks, never crashes, releases exactly once.
//!
//! A pybuf handle pins the exporter's memory (a `bytearray` cannot be resized, a numpy array
//! counts an export) until `PyBuffer_Release` is called, and that call needs a thread that is
//! attached to the interpreter. pybuf handles are `Send`, so they are dropped in all sorts of
//! places: worker threads that never touched Python, inside [`Python::detach`], in a
//! destructor that runs while another thread holds the interpreter lock, during and after
//! interpreter shutdown. Dropping one therefore never waits for the interpreter:
//!
//! | Where the handle is dropped | What happens |
//! |---|---|
//! | on a thread attached to the (main) interpreter | released at once (queued instead on a stable-ABI build running on CPython 3.11, see [below](#how-attached-is-decided)) |
//! | anywhere else (plain threads, inside `py.detach`, ...) | queued, released at the next safe point |
//! | after interpreter finalization has begun, or once it has ended | leaked, never touched |
//!
//! The queued releases are carried out, on whichever thread gets there first:
//!
//! - at the **next pybuf acquisition** on any thread (every `Buffer::get`, `AnyBuffer::get`,
//!   ... drains the queue first; when the queue is empty this costs a single atomic load);
//! - at an explicit [`flush_releases`]`(py)`, which returns how many it released;
//! - in a **pending call**: when the queue goes from empty to non-empty, pybuf schedules one
//!   with `Py_AddPendingCall` (which is safe without the interpreter lock), and the main
//!   thread runs it between two bytecodes. So a program that only runs Python code after the
//!   drop still gets its memory back. If CPython's pending-call queue is full, the next drop
//!   tries again; the two points above drain the queue regardless;
//! - when the interpreter starts to shut down (a Python `atexit` hook that pybuf registers on
//!   its first acquisition), so that everything queued until then is released while the
//!   interpreter is still intact.
//!
//! [`pending_releases`] reports how many releases are waiting in the queue.
//!
//! ## Exactly once
//!
//! Each successful acquisition is released exactly once: the handle owns the `Py_buffer`
//! and gives it away on drop (at once, to the queue, or to the leak), and a failed
//! acquisition never becomes a handle, so it is never released.
//!
//! ## Interpreter shutdown: leak by design
//!
//! When the interpreter finalizes (`Py_FinalizeEx`, the end of a Python program, or
//! `sys.exit` in an embedding), pybuf first releases everything queued so far. From then on
//! every drop, on any thread, **leaks** the release: it never calls into the interpreter
//! again, because it may be half torn down or already freed. Leaking is harmless here: the
//! exporters belong to an interpreter that is going away. Buffers still alive when the
//! process exits without finalizing (the usual case for a Rust program that embeds Python
//! with PyO3) are simply never released. The same applies to an embedding that finalizes and
//! initializes the interpreter again (which PyO3 does not support): pybuf stays in the
//! leaking mode for the rest of the process, so a buffer from the old interpreter is never
//! released into the new one.
//!
//! ## How "attached" is decided
//!
//! Without blocking and without the interpreter lock, with facts recorded once at the first
//! acquisition (the main interpreter's address, and whether the runtime keeps the current
//! thread state per thread):
//!
//! - **CPython 3.12 and later** (full API): the current thread state
//!   (`PyThreadState_GetUnchecked`) is a thread-local there, so it is non-NULL exactly when
//!   this thread is attached; then its interpreter is compared with the recorded main one. Two
//!   short calls into the runtime and two loads. The same on free-threaded builds, where
//!   "attached" is per thread anyway.
//! - **CPython 3.11** (full API): the current thread state is one global (whichever thread
//!   holds the GIL), so it must also be the thread state CPython associates with this OS
//!   thread (`PyGILState_GetThisThreadState`) before its interpreter is compared.
//! - **Stable ABI** (`Py_LIMITED_API`, pyo3's `abi3-py311` or later): the limited API has no
//!   getter of the current thread state that tolerates "none" (`PyThreadState_Get` aborts the
//!   process; `PyThreadState_GetDict` on 3.11 creates the dict of whichever thread holds the
//!   GIL), and `PyGILState_Check` is not in the limited API at all (declared in
//!   `cpython/pystate.h`, absent from the stable-ABI manifest through 3.13; besides, it
//!   answers "yes" for every thread once a sub-interpreter has ever existed, and nothing in
//!   the limited API tells when that happened). On 3.12+ the runtime's thread-local
//!   makes `PyThreadState_GetDict()` an exact test (NULL, touching nothing, when this thread
//!   has no current thread state; this thread's dict otherwise), after which
//!   `PyInterpreterState_Get()` is safe and is compared with the main interpreter. On **3.11
//!   under the stable ABI this cannot be decided soundly**: the current thread state is a
//!   global there, and no limited-API call tells this thread's from another's without either
//!   aborting or touching the other thread's state. So there every drop is queued (released
//!   at the next acquisition, flush, pending call or exit), never released at once. A drop on
//!   the main thread schedules the pending call itself, so Python code that runs on the main
//!   thread next (the caller of an extension function, say) finds the buffer released; Rust
//!   code that needs the memory back at once (to resize a `bytearray` it has just dropped a
//!   handle of, without running Python code first) calls [`flush_releases`].
//!
//! `PyGILState_Check` is not used: it answers "yes" whenever sub-interpreters exist or the
//! runtime is not initialized. A thread attached to a sub-interpreter queues the release for
//! the main interpreter, where (as with PyO3) pybuf's buffers come from; queued releases are
//! only carried out attached to the main interpreter. PyO3's `Python::attach` and
//! `try_attach` are never used on the drop path: they block.
//!
//! Before initialization no handle exists; after finalization has begun the gate below is
//! closed and every drop leaks before the check runs, and an attached thread that finds the
//! runtime no longer initialized leaks too.
//!
//! ## Fork
//!
//! `fork()` copies the process with only the forking thread. pybuf installs `pthread_atfork`
//! handlers at the first acquisition (they run for `os.fork()`, `multiprocessing` and any
//! other `fork()` through libc). Before the fork the forking thread takes the borrow
//! registry's lock, so the child inherits a consistent table of borrows (the borrows of
//! vanished threads stay registered there: their guards still exist in the child's memory).
//! In the child, whatever other threads were doing
//! inside pybuf is forgotten: the count of threads inside `Py_AddPendingCall` (the atexit
//! hook would otherwise wait for threads that do not exist), the "pending call scheduled"
//! flag (a call being added at the fork may not have been), an unfinished registration of the
//! atexit hook, and the queue's count is recomputed from the queue itself (a drop being queued
//! at the fork, not yet linked, is leaked in the child, as are releases another thread was
//! carrying out at that moment). The queue's nodes stay: they are views of objects in the
//! child's copy of the interpreter, released there as usual. The handlers only do atomic
//! stores and reads, so they are safe in the child of a multithreaded process.
//!
//! The atexit hook waits for threads inside `Py_AddPendingCall` for at most five seconds;
//! with the fork handler the count always belongs to live threads, each of
//! which leaves within microseconds unless it is descheduled. Should one still be inside after
//! the bound, the hook stops waiting and finalization proceeds: that thread's pending call
//! may then be added while the interpreter shuts down (CPython's own pending-call lock still
//! orders it against the interpreter's handling of the queue). Never waiting forever is
//! preferred to a process that cannot exit.
//!
//! ## Contrast with `pyo3::buffer::PyBuffer`
//!
//! PyO3's `PyBuffer` releases in `Drop` through `Python::attach`, which blocks until the
//! dropping thread gets the interpreter lock. That deadlocks whenever the thread holding the
//! lock waits for the dropping thread — for example the main thread, attached, joining a
//! worker (or waiting on a channel or a mutex) while the worker drops its buffer:
//!
//! ```ignore
//! Python::attach(|py| {
//!     let buf = pyo3::buffer::PyBuffer::<u8>::get(&obj)?;
//!     // The main thread keeps the lock while it waits for the worker ...
//!     std::thread::spawn(move || drop(buf)).join().unwrap();
//!     // ... and the worker waits for the lock in PyBuffer's Drop: deadlock. With a pybuf
//!     // handle, the worker queues the release and returns; it happens at the next
//!     // acquisition or `pybuf::flush_releases(py)`.
//! })
//! ```
//!
//! (The test suite exercises exactly this with pybuf; it never runs the hanging PyO3 version.)

use std::ffi::{c_int, c_void};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use pyo3::types::{PyAnyMethods, PyCFunction};
use pyo3::{ffi, Python};

/// How an acquired view is given back, called once on a thread attached to the main
/// interpreter: `PyBuffer_Release` for the buffer protocol ([`release_buffer_protocol`]);
/// other sources (DLPack, the array interface) fill a `Py_buffer` themselves and pass their
/// own function (call the producer's deleter, drop the object reference, free what they
/// allocated).
///
/// # Safety
/// Called at most once per acquisition, attached to the main interpreter, which is initialized
/// and not finalizing; the `Py_buffer` is the one its acquisition filled.
pub(crate) type ReleaseFn = unsafe fn(&mut ffi::Py_buffer);

/// [`ReleaseFn`] of the buffer protocol.
///
/// # Safety
/// See [`ReleaseFn`]; `view` was filled by a successful `PyObject_GetBuffer`.
pub(crate) unsafe fn release_buffer_protocol(view: &mut ffi::Py_buffer) {
    // SAFETY: the caller's promise (see `ReleaseFn`).
    unsafe { ffi::PyBuffer_Release(view) }
}

/// An acquired `Py_buffer` and how to release it, owned by the release machinery.
struct OwnedView(Box<ffi::Py_buffer>, ReleaseFn);

impl OwnedView {
    /// Releases the view and recycles its allocation.
    ///
    /// # Safety
    /// As for [`ReleaseFn`]: attached to the main interpreter, initialized, not finalizing.
    unsafe fn release_now(self) {
        let OwnedView(mut view, how) = self;
        // SAFETY: forwarded; the view is consumed, so it is released once.
        unsafe { how(&mut view) };
        crate::source::buffer_protocol::recycle(view);
    }
}

// SAFETY: a `Py_buffer` is plain data: pointers into the exporter's memory and a strong
// reference to the exporter (`obj`). Nothing in it is bound to the thread that acquired it;
// CPython lets any thread attached to the interpreter call `PyBuffer_Release` on it. This
// module only ever does one of two things with an `OwnedView` it was handed: call
// `PyBuffer_Release` on a thread attached to the main interpreter, or free the `Box` (Rust
// memory) without reading the pointers inside. Moving it to another thread first is
// therefore sound.
unsafe impl Send for OwnedView {}

/// One queued release: an intrusive node of a lock-free (Treiber) stack.
struct Node {
    view: OwnedView,
    next: *mut Node,
}

/// The stack of queued releases. Pushed by any thread with a CAS loop; only ever emptied as
/// a whole (`swap` with null), so no node is popped individually and ABA cannot arise.
static HEAD: AtomicPtr<Node> = AtomicPtr::new(ptr::null_mut());

/// `NEEDS_SETUP` (the atexit hook is not registered yet) plus the number of queued releases
/// times `COUNT_UNIT`. Zero means "nothing to do", which is the one load the acquisition
/// fast path makes. A pusher adds its unit *before* its node becomes visible and a drainer
/// subtracts after it has taken the nodes, so the count never underflows; it may briefly
/// include a drop that is still being queued.
static WORK: AtomicUsize = AtomicUsize::new(NEEDS_SETUP);
const NEEDS_SETUP: usize = 1;
const COUNT_UNIT: usize = 2;

/// `CLOSED` (finalization has begun: never touch the interpreter again) plus the number of
/// threads currently inside `Py_AddPendingCall`. The atexit hook sets `CLOSED` and then
/// waits for that number to reach zero, so no pending call is ever added to an interpreter
/// whose finalization has gone past its atexit hooks.
static GATE: AtomicUsize = AtomicUsize::new(0);
const CLOSED: usize = 1 << (usize::BITS - 1);

/// Whether a pending call is scheduled and has not started yet.
static SCHEDULED: AtomicBool = AtomicBool::new(false);
/// Whether the atexit hook is registered (pending calls are only scheduled once it is).
static HOOK_REGISTERED: AtomicBool = AtomicBool::new(false);
/// Whether some thread has started registering the atexit hook.
static SETUP_STARTED: AtomicBool = AtomicBool::new(false);

/// The main interpreter, recorded at the first acquisition attached to it (NULL before: then
/// no thread counts as attached to it, and drops queue).
static MAIN_INTERP: AtomicPtr<ffi::PyInterpreterState> = AtomicPtr::new(ptr::null_mut());
/// Whether the runtime keeps the current thread state in a thread-local (CPython 3.12+),
/// recorded with `MAIN_INTERP`.
static THREAD_LOCAL_CURRENT: AtomicBool = AtomicBool::new(false);
/// Whether the fork handlers are installed.
static FORK_HANDLERS: AtomicBool = AtomicBool::new(false);

/// How long the atexit hook waits for threads inside `Py_AddPendingCall`.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Releases one acquired `Py_buffer`, from `Drop`: at once when this thread is attached to
/// the main interpreter, otherwise queued for the next safe point; leaked once interpreter
/// finalization has begun. Never blocks.
///
/// `view` must come from a successful `PyObject_GetBuffer` (at an acquisition that called
/// [`on_acquire`]) that has not been released; ownership of the box makes a second release
/// impossible.
#[inline]
pub(crate) fn release(view: Box<ffi::Py_buffer>, how: ReleaseFn) {
    let view = OwnedView(view, how);
    if is_closed() {
        return leak(view);
    }
    if attached_to_main() {
        // SAFETY: always safe to call: it reads one runtime flag.
        if unsafe { ffi::Py_IsInitialized() } == 0 {
            // Attached but no longer initialized: this is the finalizing thread, past the
            // atexit hooks (which would have closed the gate, unless they were cleared).
            return leak(view);
        }
        // SAFETY: this thread is attached to the main interpreter, which is initialized and
        // not finalizing; `view` came from a successful acquisition and is released here
        // once, as we own it and consume it.
        unsafe { view.release_now() };
    } else {
        enqueue(view);
    }
}

/// Called at every pybuf acquisition (`raw::Acquired::new` calls it just before
/// `PyObject_GetBuffer`): registers the atexit hook the first time and carries out queued
/// releases. Costs one relaxed atomic load when there is nothing to do.
#[inline]
pub(crate) fn on_acquire(py: Python<'_>) {
    if WORK.load(Ordering::Relaxed) != 0 {
        on_acquire_slow(py);
    }
}

#[cold]
#[inline(never)]
fn on_acquire_slow(py: Python<'_>) {
    setup(py);
    drain(py);
}

/// Carries out every queued release now, and returns how many it released.
///
/// Queued releases also happen on their own (at the next acquisition, in a pending call,
/// at interpreter shutdown); call this to get the memory back at a point of your choosing,
/// for example before resizing a `bytearray` that a worker thread has just stopped using.
/// Returns 0 once interpreter finalization has begun (the queue is then leaked, see the
/// [module documentation](self)).
pub fn flush_releases(py: Python<'_>) -> usize {
    setup(py);
    drain(py)
}

/// The number of buffers dropped away from the interpreter whose release is still queued.
///
/// It includes a drop that is being queued at this very moment, and after interpreter
/// finalization it counts the releases that were left behind (leaked) in the queue.
pub fn pending_releases() -> usize {
    WORK.load(Ordering::SeqCst) / COUNT_UNIT
}

/// Whether the current thread is attached to the main interpreter. Never blocks, safe to call
/// at any time (before initialization, during and after finalization). See the module docs.
#[cfg(not(Py_LIMITED_API))]
#[inline]
fn attached_to_main() -> bool {
    // SAFETY: `PyThreadState_GetUnchecked` reads the current thread state (a thread-local on
    // 3.12+, an atomic global on 3.11) and never fails, even with no interpreter.
    let current = unsafe { ffi::compat::PyThreadState_GetUnchecked() };
    if current.is_null() {
        return false;
    }
    // SAFETY: safe without the lock: it returns NULL when the runtime has no thread-state key,
    // else the value of a thread-specific key.
    if !THREAD_LOCAL_CURRENT.load(Ordering::Relaxed)
        && current != unsafe { ffi::PyGILState_GetThisThreadState() }
    {
        // 3.11 (or not yet recorded): another thread's state (3.11 keeps one global), or a
        // thread state CPython does not associate with this thread: not attached as far as we
        // can prove, so queue.
        return false;
    }
    // SAFETY: `current` is this thread's own live thread state (current on this thread:
    // thread-local on 3.12+, checked against this thread's own above otherwise), so it cannot
    // be deleted under us; reading its interpreter is safe.
    let interp = unsafe { ffi::PyThreadState_GetInterpreter(current) };
    interp == MAIN_INTERP.load(Ordering::Relaxed)
}

/// Stable-ABI version of the check above (see the module docs: exact on 3.12+, always
/// "no" on 3.11).
#[cfg(Py_LIMITED_API)]
#[inline]
fn attached_to_main() -> bool {
    if !THREAD_LOCAL_CURRENT.load(Ordering::Relaxed) {
        // 3.11: undecidable in the limited API without blocking; queue.
        return false;
    }
    // SAFETY: on 3.12+ the current thread state is a thread-local: with none,
    // `PyThreadState_GetDict` returns NULL touching nothing; with one, this thread is attached
    // and the call reads (or creates) its own dict.
    if unsafe { ffi::PyThreadState_GetDict() }.is_null() {
        return false;
    }
    // SAFETY: attached (above), so the current interpreter exists.
    let interp = unsafe { ffi::PyInterpreterState_Get() };
    interp == MAIN_INTERP.load(Ordering::Relaxed)
}

/// Whether `py`'s thread is attached to the main interpreter (slow paths only).
fn on_main_interpreter(_py: Python<'_>) -> bool {
    let main = MAIN_INTERP.load(Ordering::Relaxed);
    // SAFETY: attached (`_py`), so the current interpreter exists.
    !main.is_null() && unsafe { ffi::PyInterpreterState_Get() } == main
}

/// Records the main interpreter and the runtime's kind of current thread state, and installs
/// the fork handlers, once (attached, at the first acquisitions).
fn record_runtime(py: Python<'_>) {
    if MAIN_INTERP.load(Ordering::Relaxed).is_null() {
        let version = py.version_info();
        THREAD_LOCAL_CURRENT.store(version >= (3, 12), Ordering::Relaxed);
        #[cfg(not(Py_LIMITED_API))]
        // SAFETY: attached; reads the runtime's main-interpreter pointer.
        let main = unsafe { ffi::PyInterpreterState_Main() };
        #[cfg(Py_LIMITED_API)]
        // SAFETY: attached, so the current interpreter exists; only recorded if it is the
        // main one (ID 0).
        let main = unsafe {
            let current = ffi::PyInterpreterState_Get();
            if ffi::PyInterpreterState_GetID(current) == 0 {
                current
            } else {
                ptr::null_mut()
            }
        };
        MAIN_INTERP.store(main, Ordering::Relaxed);
    }
    if !FORK_HANDLERS.swap(true, Ordering::AcqRel) {
        fork::install();
    }
}

fn is_closed() -> bool {
    GATE.load(Ordering::SeqCst) & CLOSED != 0
}

/// Gives up on a release: frees the `Box` (Rust memory) without touching the interpreter.
/// The exporter keeps its export count; that is the documented leak.
fn leak(view: OwnedView) {
    drop(view);
}

/// Queues a release from a thread that is not attached, and makes sure it will be carried
/// out (pending call) if that can be arranged without blocking.
fn enqueue(view: OwnedView) {
    // SAFETY: always safe to call: it reads one runtime flag. (A racy read of a plain int,
    // as in PyO3's own checks; a stale "initialized" is covered by the atexit gate.)
    if unsafe { ffi::Py_IsInitialized() } == 0 {
        // Not initialized: finalizing, finalized, or never started. Nothing may run later
        // that could release it into the right interpreter.
        return leak(view);
    }
    WORK.fetch_add(COUNT_UNIT, Ordering::SeqCst);
    let node = Box::into_raw(Box::new(Node {
        view,
        next: ptr::null_mut(),
    }));
    let mut head = HEAD.load(Ordering::Relaxed);
    loop {
        // SAFETY: `node` is ours until the CAS below publishes it.
        unsafe { (*node).next = head };
        match HEAD.compare_exchange_weak(head, node, Ordering::SeqCst, Ordering::Relaxed) {
            Ok(_) => break,
            Err(actual) => head = actual,
        }
    }
    schedule();
}

/// Schedules one pending call that drains the queue, unless one is already scheduled.
fn schedule() {
    if !HOOK_REGISTERED.load(Ordering::Acquire) {
        // Without the atexit gate, adding a pending call could race with finalization. Every
        // handle comes from an acquisition, which registers the hook, so this is rare; the
        // queue still drains at the next acquisition or flush.
        return;
    }
    if SCHEDULED.load(Ordering::SeqCst) || SCHEDULED.swap(true, Ordering::SeqCst) {
        return;
    }
    let gate = GATE.fetch_add(1, Ordering::SeqCst);
    let mut added = false;
    // SAFETY: `Py_IsInitialized` is always safe. `Py_AddPendingCall` may be called without
    // the interpreter lock, from any thread, while the runtime is initialized; the gate
    // guarantees finalization has not passed its atexit hooks (the hook waits for us to leave
    // the gate before finalization proceeds), so the interpreter's pending-call state is
    // alive for the whole call.
    unsafe {
        if gate & CLOSED == 0 && ffi::Py_IsInitialized() != 0 {
            added = ffi::Py_AddPendingCall(Some(pending_call), ptr::null_mut()) == 0;
        }
    }
    GATE.fetch_sub(1, Ordering::SeqCst);
    if !added {
        // Pending-call queue full (or closing): let the next queued drop try again.
        SCHEDULED.store(false, Ordering::SeqCst);
    }
}

/// The pending call: runs on the main thread, attached to the main interpreter.
extern "C" fn pending_call(_arg: *mut c_void) -> c_int {
    // Reset before draining: a drop whose node this drain misses sees `false` and schedules
    // again (all SeqCst, so a pusher that saw `true` pushed before this store, hence before
    // the drain's swap).
    SCHEDULED.store(false, Ordering::SeqCst);
    // SAFETY: CPython calls pending calls from its evaluation loop, on the main thread, with
    // the thread attached (holding the GIL); the token does not escape this call. `drain`
    // checks that the interpreter is the main one before releasing anything.
    let py = unsafe { Python::assume_attached() };
    drain(py);
    0
}

/// Registers the atexit hook once (on the first acquisition).
fn setup(py: Python<'_>) {
    if WORK.load(Ordering::Relaxed) & NEEDS_SETUP == 0 {
        return;
    }
    record_runtime(py);
    if !on_main_interpreter(py) || SETUP_STARTED.swap(true, Ordering::AcqRel) {
        // The hook belongs in the main interpreter (and a stable-ABI build records it only
        // from there): a first acquisition in a sub-interpreter leaves it to a later one.
        return;
    }
    let registered = (|| -> pyo3::PyResult<()> {
        let hook = PyCFunction::new_closure(
            py,
            Some(c"pybuf_release_at_exit"),
            Some(c"pybuf: release queued buffers before the interpreter finalizes"),
            |args, _kwargs| {
                // SAFETY: atexit hooks run attached to the interpreter that registered them.
                let py = unsafe { Python::assume_attached() };
                let _ = args;
                close(py);
            },
        )?;
        py.import("atexit")?.call_method1("register", (hook,))?;
        Ok(())
    })();
    if registered.is_ok() {
        HOOK_REGISTERED.store(true, Ordering::Release);
    }
    // On failure (e.g. no `atexit` during a broken start-up), pybuf still drains at
    // acquisitions and flushes; it only does without pending calls.
    WORK.fetch_and(!NEEDS_SETUP, Ordering::SeqCst);
}

/// The atexit hook: closes the gate, waits for threads inside `Py_AddPendingCall`, then
/// releases what is queued while the interpreter is still intact.
fn close(py: Python<'_>) {
    GATE.fetch_or(CLOSED, Ordering::SeqCst);
    let start = std::time::Instant::now();
    let mut rounds = 0u32;
    while GATE.load(Ordering::SeqCst) & !CLOSED != 0 {
        // A scheduler is inside `Py_AddPendingCall`, which takes only a short internal lock
        // that this thread does not hold: it leaves within microseconds unless descheduled.
        // (After a fork the child handler has reset the count, so it counts live threads.)
        if start.elapsed() > CLOSE_WAIT {
            break; // the documented fallback: stop waiting rather than never exit
        }
        rounds += 1;
        if rounds < 1000 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
    }
    drain_all(py);
}

/// Carries out every queued release unless finalization has begun.
fn drain(py: Python<'_>) -> usize {
    // SAFETY: always safe to call.
    if is_closed() || unsafe { ffi::Py_IsInitialized() } == 0 || !on_main_interpreter(py) {
        return 0;
    }
    drain_all(py)
}

fn drain_all(_py: Python<'_>) -> usize {
    let mut node = HEAD.swap(ptr::null_mut(), Ordering::SeqCst);
    let mut released = 0;
    while !node.is_null() {
        // SAFETY: every node was made by `Box::into_raw` in `enqueue`, and the swap above
        // gave this thread sole ownership of the whole list.
        let Node { view, next } = *unsafe { Box::from_raw(node) };
        node = next;
        // SAFETY: `_py` proves this thread is attached; `drain` checked the interpreter is
        // initialized and not finalizing (or we are in its atexit hook); each view came from a
        // successful acquisition and is released once, here, as the node is consumed.
        unsafe { view.release_now() };
        released += 1;
    }
    if released > 0 {
        WORK.fetch_sub(released * COUNT_UNIT, Ordering::SeqCst);
    }
    released
}

/// The child side of the fork handlers (see the module docs): forgets what threads that do
/// not exist in the child were doing inside the release machinery. Only atomic operations and
/// reads of the queue, which no other thread can change here (the child has one thread).
fn after_fork_child() {
    GATE.fetch_and(CLOSED, Ordering::SeqCst);
    SCHEDULED.store(false, Ordering::SeqCst);
    let mut queued = 0usize;
    let mut node = HEAD.load(Ordering::SeqCst);
    while !node.is_null() {
        queued += 1;
        // SAFETY: every node in the list was fully written by `enqueue` before the CAS that
        // linked it, and only a drain frees nodes, after taking them off the list; no other
        // thread exists in the child to do either.
        node = unsafe { (*node).next };
    }
    let mut setup = WORK.load(Ordering::SeqCst) & NEEDS_SETUP;
    if setup != 0 {
        if HOOK_REGISTERED.load(Ordering::SeqCst) {
            setup = 0; // the registering thread got that far
        } else {
            SETUP_STARTED.store(false, Ordering::SeqCst); // let the child register it
        }
    }
    WORK.store(setup | (queued * COUNT_UNIT), Ordering::SeqCst);
}

/// Installation of the `pthread_atfork` handlers.
#[cfg(unix)]
mod fork {
    use std::ffi::c_int;

    extern "C" {
        fn pthread_atfork(
            prepare: Option<extern "C" fn()>,
            parent: Option<extern "C" fn()>,
            child: Option<extern "C" fn()>,
        ) -> c_int;
    }

    extern "C" fn prepare() {
        crate::borrow::before_fork();
    }

    extern "C" fn parent() {
        crate::borrow::after_fork(false);
    }

    extern "C" fn child() {
        crate::borrow::after_fork(true);
        super::after_fork_child();
    }

    /// Installs the handlers (once: the caller guarantees it). If libc refuses (out of
    /// memory), pybuf simply stays as fork-unsafe as it was without them.
    pub(super) fn install() {
        // SAFETY: registers three `extern "C" fn()` that never unwind (nothing in them
        // panics); `pthread_atfork` may be called at any time.
        unsafe {
            pthread_atfork(Some(prepare), Some(parent), Some(child));
        }
    }
}

#[cfg(not(unix))]
mod fork {
    /// No `fork()` here.
    pub(super) fn install() {}
}

#[cfg(test)]
mod tests {
    //! These tests observe process-wide state (the queue, `pending_releases`, the
    //! interpreter's lifetime), so each runs alone in a child process: the visible test
    //! re-executes this test binary with `--exact <child> --ignored`.

    use super::*;
    use pyo3::exceptions::PyBufferError;
    use pyo3::prelude::*;
    use pyo3::types::PyByteArray;
    use std::ffi::CString;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    /// Runs the ignored test `release::tests::<child>` alone in a fresh process and checks
    /// that it exited successfully and printed `marker`.
    fn run_child(child: &str, marker: &str) -> String {
        crate::child_test::run(&format!("release::tests::{child}"), marker)
    }

    /// A raw acquisition, as the core types do it: `PyObject_GetBuffer` into a box, then
    /// `on_acquire`.
    fn acquire(obj: &Bound<'_, PyAny>) -> Box<ffi::Py_buffer> {
        // SAFETY: `Py_buffer` is plain old data; all-zero is a valid "empty" value that
        // `PyObject_GetBuffer` overwrites.
        let mut view: Box<ffi::Py_buffer> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: attached (`obj` is bound); `view` points to writable `Py_buffer` storage.
        let rc = unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), &mut *view, ffi::PyBUF_FULL_RO) };
        assert_eq!(
            rc,
            0,
            "PyObject_GetBuffer failed: {:?}",
            PyErr::take(obj.py())
        );
        on_acquire(obj.py());
        view
    }

    /// Whether a drop on an attached thread releases at once: everywhere but a stable-ABI
    /// build on CPython 3.11, where every drop is queued (see the module docs).
    fn attached_releases_at_once(py: Python<'_>) -> bool {
        !(cfg!(Py_LIMITED_API) && py.version_info() < (3, 12))
    }

    /// A view that may cross threads in the tests (see `OwnedView`'s `Send` argument).
    struct Carry(OwnedView);
    impl Carry {
        fn new(view: Box<ffi::Py_buffer>) -> Self {
            Carry(OwnedView(view, release_buffer_protocol))
        }
        fn release(self) {
            release(self.0 .0, self.0 .1);
        }
    }

    /// Python's own answer to "can this bytearray be resized?": `Ok` when it can, the
    /// exception's type name otherwise.
    fn try_resize(ba: &Bound<'_, PyByteArray>) -> Result<(), String> {
        let py = ba.py();
        let code = c"ba.extend(b'x')\ndel ba[-1]\n";
        let locals = pyo3::types::PyDict::new(py);
        locals.set_item("ba", ba).unwrap();
        match py.run(code, None, Some(&locals)) {
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

    fn refcount(obj: &Bound<'_, PyAny>) -> isize {
        // SAFETY: attached; reading the reference count of a live object.
        unsafe { ffi::Py_REFCNT(obj.as_ptr()) }
    }

    fn run_python(py: Python<'_>, code: &str) {
        let code = CString::new(code).unwrap();
        py.run(&code, None, None).unwrap();
    }

    #[test]
    fn dropped_on_plain_thread_then_flushed() {
        run_child("child_plain_thread_flush", "CHILD-OK");
    }

    #[test]
    #[ignore = "child process of dropped_on_plain_thread_then_flushed"]
    fn child_plain_thread_flush() {
        Python::attach(|py| {
            let ba = PyByteArray::new(py, b"hello");
            let view = Carry::new(acquire(ba.as_any()));
            assert_eq!(try_resize(&ba), Err("BufferError".to_string()));
            // Dropped on a thread that never touched Python: queued, not released.
            std::thread::spawn(move || view.release()).join().unwrap();
            assert_eq!(pending_releases(), 1);
            assert_eq!(flush_releases(py), 1);
            assert_eq!(pending_releases(), 0);
            assert_eq!(flush_releases(py), 0);
            assert_eq!(try_resize(&ba), Ok(()));
        });
        println!("CHILD-OK");
    }

    #[test]
    fn dropped_on_plain_thread_then_next_acquisition_drains() {
        run_child("child_next_acquisition", "CHILD-OK");
    }

    #[test]
    #[ignore = "child process of dropped_on_plain_thread_then_next_acquisition_drains"]
    fn child_next_acquisition() {
        Python::attach(|py| {
            let ba = PyByteArray::new(py, b"hello");
            let other = PyByteArray::new(py, b"other");
            // The first acquisition registers the atexit hook.
            let first = acquire(other.as_any());
            release(first, release_buffer_protocol);
            let view = Carry::new(acquire(ba.as_any()));
            std::thread::spawn(move || view.release()).join().unwrap();
            assert_eq!(pending_releases(), 1);
            let again = acquire(other.as_any()); // drains the queue
            assert_eq!(pending_releases(), 0);
            assert_eq!(try_resize(&ba), Ok(()));
            assert_eq!(try_resize(&other), Err("BufferError".to_string()));
            release(again, release_buffer_protocol); // attached: at once
            if !attached_releases_at_once(py) {
                // (stable ABI on 3.11: queued, until the next drain; no Python code runs
                // before the flush, so no pending call can drain it first)
                assert_eq!(pending_releases(), 1);
                assert_eq!(flush_releases(py), 1);
            }
            assert_eq!(pending_releases(), 0);
            assert_eq!(try_resize(&other), Ok(()));
        });
        println!("CHILD-OK");
    }

    #[test]
    fn dropped_on_plain_thread_then_pending_call_drains() {
        run_child("child_pending_call", "CHILD-OK");
    }

    #[test]
    #[ignore = "child process of dropped_on_plain_thread_then_pending_call_drains"]
    fn child_pending_call() {
        Python::attach(|py| {
            let ba = PyByteArray::new(py, b"hello");
            let view = Carry::new(acquire(ba.as_any()));
            std::thread::spawn(move || view.release()).join().unwrap();
            assert_eq!(pending_releases(), 1);
            // Only Python code from here on: no acquisition, no flush. (This thread
            // initialized the interpreter, so it is the one that runs pending calls.)
            let start = Instant::now();
            while pending_releases() != 0 {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "pending call never ran"
                );
                run_python(py, "sum(range(1000))");
            }
            assert_eq!(try_resize(&ba), Ok(()));
        });
        println!("CHILD-OK");
    }

    #[test]
    fn dropped_inside_detach_is_queued() {
        run_child("child_detach", "CHILD-OK");
    }

    #[test]
    #[ignore = "child process of dropped_inside_detach_is_queued"]
    fn child_detach() {
        Python::attach(|py| {
            let ba = PyByteArray::new(py, b"hello");
            let view = Carry::new(acquire(ba.as_any()));
            py.detach(move || view.release());
            assert_eq!(pending_releases(), 1);
            assert_eq!(flush_releases(py), 1);
            assert_eq!(try_resize(&ba), Ok(()));
            // Attached: released at once, nothing queued.
            let view = acquire(ba.as_any());
            assert_eq!(try_resize(&ba), Err("BufferError".to_string()));
            release(view, release_buffer_protocol);
            if !attached_releases_at_once(py) {
                // (stable ABI on 3.11: queued, until the next drain; no Python code runs
                // before the flush, so no pending call can drain it first)
                assert_eq!(pending_releases(), 1);
                assert_eq!(flush_releases(py), 1);
            }
            assert_eq!(pending_releases(), 0);
            assert_eq!(try_resize(&ba), Ok(()));
        });
        println!("CHILD-OK");
    }

    #[test]
    fn drop_completes_while_lock_holder_waits_for_dropper() {
        run_child("child_lock_holder_waits", "CHILD-OK");
    }

    #[test]
    #[ignore = "child process of drop_completes_while_lock_holder_waits_for_dropper"]
    fn child_lock_holder_waits() {
        Python::attach(|py| {
            let ba = PyByteArray::new(py, b"hello");
            let view = Carry::new(acquire(ba.as_any()));
            let (done_tx, done_rx) = mpsc::channel();
            let worker = std::thread::spawn(move || {
                view.release();
                done_tx.send(()).unwrap();
            });
            // This thread keeps the interpreter lock while it waits for the dropping thread
            // (PyO3's PyBuffer would deadlock here: its Drop waits for this lock).
            done_rx
                .recv_timeout(Duration::from_secs(20))
                .expect("the drop blocked while another thread held the interpreter lock");
            worker.join().unwrap();
            assert_eq!(pending_releases(), 1);
            assert_eq!(flush_releases(py), 1);
            assert_eq!(try_resize(&ba), Ok(()));
        });
        println!("CHILD-OK");
    }

    #[test]
    fn many_threads_drop_concurrently() {
        run_child("child_many_threads", "CHILD-OK");
    }

    #[test]
    #[ignore = "child process of many_threads_drop_concurrently"]
    fn child_many_threads() {
        const THREADS: usize = 8;
        const PER_THREAD: usize = 10_000;
        let start = Instant::now();
        Python::attach(|py| {
            let arrays: Vec<_> = (0..THREADS)
                .map(|i| PyByteArray::new(py, &[i as u8; 16]))
                .collect();
            let scratch = PyByteArray::new(py, b"scratch");
            let base: Vec<isize> = arrays.iter().map(|a| refcount(a.as_any())).collect();
            let batches: Vec<Vec<Carry>> = arrays
                .iter()
                .map(|a| {
                    (0..PER_THREAD)
                        .map(|_| Carry::new(acquire(a.as_any())))
                        .collect()
                })
                .collect();
            for (a, b) in arrays.iter().zip(&base) {
                assert_eq!(refcount(a.as_any()), b + PER_THREAD as isize);
                assert_eq!(try_resize(a), Err("BufferError".to_string()));
            }
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(THREADS));
            let workers: Vec<_> = batches
                .into_iter()
                .map(|batch| {
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        barrier.wait();
                        for view in batch {
                            view.release();
                        }
                    })
                })
                .collect();
            // Meanwhile this thread keeps running Python code and acquiring (each
            // acquisition drains; pending calls drain between bytecodes).
            let mut rounds = 0u64;
            while !workers.iter().all(|w| w.is_finished()) {
                assert!(
                    start.elapsed() < Duration::from_secs(120),
                    "drops did not finish"
                );
                run_python(py, "sum(range(200))");
                release(acquire(scratch.as_any()), release_buffer_protocol);
                rounds += 1;
            }
            for w in workers {
                w.join().unwrap();
            }
            let flushed = flush_releases(py);
            println!("main thread rounds: {rounds}, left for the final flush: {flushed}");
            assert_eq!(pending_releases(), 0);
            // Exactly one release per acquisition: every reference the views held is gone,
            // and no more (a double release would take the count below the baseline).
            for (a, b) in arrays.iter().zip(&base) {
                assert_eq!(refcount(a.as_any()), *b);
                assert_eq!(try_resize(a), Ok(()));
            }
            assert_eq!(try_resize(&scratch), Ok(()));
        });
        println!("elapsed: {:?}", start.elapsed());
        println!("CHILD-OK");
    }

    #[test]
    fn pep688_release_buffer_called_once_per_acquisition() {
        let out = run_child("child_pep688", "CHILD-");
        assert!(
            out.contains("CHILD-OK") || out.contains("CHILD-SKIPPED"),
            "unexpected child output:\n{out}"
        );
    }

    #[test]
    #[ignore = "child process of pep688_release_buffer_called_once_per_acquisition"]
    fn child_pep688() {
        let ran = Python::attach(|py| {
            let version = py.version_info();
            if version < (3, 12) {
                println!(
                    "note: PEP 688 (__buffer__/__release_buffer__) needs Python 3.12+, this is \
                     {}.{}; run with PYBUF_PYTHON pointing at 3.12+ and a separate PYBUF_VENV",
                    version.major, version.minor
                );
                println!("CHILD-SKIPPED");
                return false;
            }
            let code = c"
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
";
            let ns = pyo3::types::PyDict::new(py);
            py.run(code, Some(&ns), None).unwrap();
            let exporter = ns.get_item("exporter").unwrap().unwrap();
            let count =
                |name: &str| -> usize { exporter.getattr(name).unwrap().extract().unwrap() };
            let main_ident: u64 = py
                .import("threading")
                .unwrap()
                .call_method0("get_ident")
                .unwrap()
                .extract()
                .unwrap();

            // 1. Dropped attached, on this thread: released at once, here.
            let v = acquire(&exporter);
            assert_eq!((count("gets"), count("releases")), (1, 0));
            release(v, release_buffer_protocol);
            assert_eq!((count("gets"), count("releases")), (1, 1));

            // 2. Dropped on another thread that attaches: released at once, there.
            let v = Carry::new(acquire(&exporter));
            let other_ident = py.detach(move || {
                std::thread::spawn(move || {
                    Python::attach(|py| {
                        v.release();
                        py.import("threading")
                            .unwrap()
                            .call_method0("get_ident")
                            .unwrap()
                            .extract::<u64>()
                            .unwrap()
                    })
                })
                .join()
                .unwrap()
            });
            assert_eq!((count("gets"), count("releases")), (2, 2));

            // 3. Dropped on 4 plain threads, 250 each: queued, then released once each.
            let views: Vec<Vec<Carry>> = (0..4)
                .map(|_| (0..250).map(|_| Carry::new(acquire(&exporter))).collect())
                .collect();
            assert_eq!((count("gets"), count("releases")), (1002, 2));
            py.detach(|| {
                let handles: Vec<_> = views
                    .into_iter()
                    .map(|batch| {
                        std::thread::spawn(move || batch.into_iter().for_each(Carry::release))
                    })
                    .collect();
                handles.into_iter().for_each(|h| h.join().unwrap());
            });
            let flushed = flush_releases(py);
            assert_eq!(pending_releases(), 0);
            assert_eq!(count("gets"), 1002);
            assert_eq!(count("releases"), 1002, "flushed {flushed}");
            let threads: Vec<u64> = exporter
                .getattr("release_threads")
                .unwrap()
                .extract()
                .unwrap();
            assert_eq!(threads[0], main_ident);
            assert_eq!(threads[1], other_ident);
            assert_ne!(other_ident, main_ident);
            true
        });
        if ran {
            println!("CHILD-OK");
        }
    }

    #[test]
    fn process_exit_with_buffers_alive_and_queued() {
        run_child("child_exit_alive", "CHILD-EXITING");
    }

    #[test]
    #[ignore = "child process of process_exit_with_buffers_alive_and_queued"]
    fn child_exit_alive() {
        let (alive, queued, streaming) = Python::attach(|py| {
            let ba = PyByteArray::new(py, b"hello");
            let alive: Vec<Carry> = (0..100).map(|_| Carry::new(acquire(ba.as_any()))).collect();
            let queued: Vec<Carry> = (0..100).map(|_| Carry::new(acquire(ba.as_any()))).collect();
            let streaming: Vec<Carry> = (0..10_000)
                .map(|_| Carry::new(acquire(ba.as_any())))
                .collect();
            (alive, queued, streaming)
        });
        std::thread::spawn(move || queued.into_iter().for_each(Carry::release))
            .join()
            .unwrap();
        assert_eq!(pending_releases(), 100);
        // A thread still dropping while the process exits.
        std::thread::spawn(move || {
            for v in streaming {
                v.release();
                std::thread::yield_now();
            }
        });
        std::mem::forget(alive);
        println!("CHILD-EXITING");
        std::process::exit(0);
    }

    #[test]
    fn finalize_with_buffers_alive_and_queued() {
        let out = run_child("child_finalize", "CHILD-OK");
        assert!(out.contains("finalized"), "{out}");
    }

    #[test]
    #[ignore = "child process of finalize_with_buffers_alive_and_queued"]
    fn child_finalize() {
        let (alive, queued, streaming) = Python::attach(|py| {
            let ba = PyByteArray::new(py, b"hello");
            let alive: Vec<Carry> = (0..100).map(|_| Carry::new(acquire(ba.as_any()))).collect();
            let queued: Vec<Carry> = (0..100).map(|_| Carry::new(acquire(ba.as_any()))).collect();
            let streaming: Vec<Carry> = (0..20_000)
                .map(|_| Carry::new(acquire(ba.as_any())))
                .collect();
            (alive, queued, streaming)
        });
        std::thread::spawn(move || queued.into_iter().for_each(Carry::release))
            .join()
            .unwrap();
        assert_eq!(pending_releases(), 100);
        // A thread dropping all through finalization (about 1 ms per 100 drops).
        let streamer = std::thread::spawn(move || {
            for (i, v) in streaming.into_iter().enumerate() {
                v.release();
                if i % 100 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        std::thread::sleep(Duration::from_millis(20));
        // SAFETY: this thread initialized the interpreter (first attach in this process) and
        // holds no PyO3 token now; it takes the lock and finalizes, and never calls into
        // Python (or PyO3) afterwards.
        let rc = unsafe {
            ffi::PyGILState_Ensure();
            ffi::Py_FinalizeEx()
        };
        assert_eq!(rc, 0);
        println!("finalized");
        // Whatever was queued before the atexit hook was released by it (or by a pending
        // call before it); drops from now on leak.
        let left = pending_releases();
        let running = !streamer.is_finished();
        for v in alive {
            v.release();
        }
        std::thread::spawn(|| ()).join().unwrap();
        streamer.join().unwrap();
        println!(
            "left in the queue after finalization: {left} -> {} (streamer still dropping \
             after finalization: {running})",
            pending_releases()
        );
        // Only drops racing the atexit hook can be stuck in the queue; the 100 queued
        // before finalization began are not.
        assert!(left <= 20_000, "{left}");
        println!("CHILD-OK");
        std::process::exit(0);
    }
}
