//! # pybuf
//!
//! Safe, strongly typed, zero-copy access to anything that speaks Python's buffer protocol
//! (PEP 3118) — numpy arrays, `bytes`, `bytearray`, `memoryview`, `array.array`, `mmap`,
//! ctypes arrays and structures, classes with `__buffer__` — or DLPack or numpy's array
//! interface (jax, pyarrow, Pillow and other DLPack producers; see
//! [below](#other-protocols-dlpack-and-the-array-interface)), and export of Rust memory to
//! Python the same way ([`export`]).
//!
//! New here? The [user guide](guide) shows the usual jobs: functions that take arrays, outputs,
//! rayon without the interpreter lock, returning arrays, dtypes, records, byte order,
//! embedding, and the errors Python users see.
//!
//! The data path reads in one direction:
//! [format](mod@format) → [element](Element) match → acquisition and validation →
//! typed [`Buffer`] → borrow ([`Buffer::read`], [`Buffer::write`]) or copy
//! ([`Buffer::to_vec`]) → release (on drop, from any thread).
//!
//! ```
//! use pybuf::{Buffer1, Buffer2};
//! use pyo3::prelude::*;
//!
//! Python::attach(|py| -> PyResult<()> {
//!     let m = py.eval(c"memoryview(bytearray(range(6))).cast('B', (2, 3))", None, None)?;
//!     let buf = Buffer2::<u8>::get_mut(&m)?;      // element type and ndim checked here
//!     let row_sums: Vec<u32> = buf.with(|v| {
//!         v.rows().into_iter().map(|r| r.iter().map(|&x| x as u32).sum()).collect()
//!     })?;
//!     assert_eq!(row_sums, [3, 12]);
//!     buf.set_item((1, 2), 50)?;                   // any layout, bounds-checked
//!     assert_eq!(buf.to_vec()?, [0, 1, 2, 3, 4, 50]);
//!     assert!(Buffer1::<f64>::get(&m).is_err());   // wrong type and ndim: a clear error
//!     Ok(())
//! })
//! .unwrap();
//! ```
//!
//! ## Acquisition never trusts the exporter
//!
//! [`Buffer::get`] requests `PyBUF_FULL_RO` and then checks, in order: the exporter's answer,
//! the format (a complete PEP 3118 parser, [`format::parse`]), the element type (byte order
//! and standard versus native sizes included: `'<q'`, `'l'` and `'=q'` are all `i64` here,
//! `'>d'` is not `f64`), the item size, the number of dimensions and the layout (NULL format,
//! shape and strides, 0-d, suboffsets, negative shapes, `shape × stride` overflow, up to 64
//! dimensions). Facts that only rule out zero-copy views — misalignment, strides that are not
//! multiples of the item size, suboffsets, self-overlap — are checked when a view is asked for;
//! copies and [`Buffer::item`] work for every layout.
//!
//! ## What pybuf guarantees
//!
//! **Guaranteed**, for every object and whatever its exporter hands over (the checks above):
//!
//! - **No undefined behaviour from the safe API.** Every acquisition is validated before a
//!   handle exists; a view exists only for a layout that is aligned for `T`, whose strides are
//!   multiples of the item size and whose items are all valid `T`s (a `bool` byte other than
//!   0 or 1 is an error, never a `bool`); a mutable view only for writable memory whose items
//!   do not overlap each other (zero strides never get one) and whose element type has no
//!   padding bytes ([`Element::HAS_PADDING`]). Exporters that lie about their layout within
//!   what the protocol can express (impossible shapes and strides, overflowing extents, `ndim`
//!   above 64, formats that disagree with `itemsize`, formats that hang a naive matcher) get a
//!   specific [`Error`], never a panic.
//! - **Rust borrows of Python memory obey Rust's rules, across handles and threads.** A
//!   process-wide registry records every zero-copy borrow ([`Buffer::read`],
//!   [`Buffer::write`], the closure forms) by the bytes it can touch — for buffers with
//!   suboffsets (PIL style) by the pointer cells it reads and the data runs they lead to. A
//!   shared borrow conflicts with an overlapping exclusive one, an exclusive borrow with any
//!   overlapping borrow ([`Error::BorrowConflict`]). Overlap is decided exactly for strided
//!   layouts (so `a[::2]` and `a[1::2]` can both be written at once) up to a work bound, and
//!   conservatively beyond it: a false conflict is possible there, a missed one never. Copies
//!   ([`Buffer::to_vec`], [`Buffer::copy_from_slice`], ...) and [`Buffer::item`] /
//!   [`Buffer::set_item`] take momentary borrows, so they cannot race a live guard of the same
//!   memory either, whichever handle or thread they go through. The registry has its own lock
//!   and works without the interpreter lock (free-threaded builds included).
//! - **Nothing uninitialized reaches Python.** Writes of record types with padding store their
//!   fields and leave the destination's padding bytes as they were; exports zero padding.
//! - **Messages never read Python memory after acquisition.** The format and the exporter's
//!   type name are copied at acquisition, so errors can be built on any thread, inside
//!   `py.detach`, while Python renames the type.
//! - **Every acquisition is released exactly once, without blocking**, from any thread: at once
//!   on an attached thread, else at the next safe point; never after interpreter finalization
//!   (leaked instead); and in a child after `fork()`, pybuf's locks and queue are usable.
//!
//! **Not guaranteed — the trust boundary.** The registry sees *Rust borrows taken through
//! pybuf*, by *virtual address*. Outside it, and undefined behaviour if it happens while a
//! guard's view or slice is in use:
//!
//! - Python or C code writing the memory while Rust holds a borrow: another thread running
//!   Python or a C extension, and — without any other thread — Python code that runs while
//!   the guard lives (a callback, `py.run`, a `__del__` during garbage collection; see the next
//!   section). This is the boundary every C extension lives with.
//! - The same physical memory at two virtual addresses: a file mapped twice (two `mmap.mmap`
//!   objects of one file), shared memory opened twice, a `memfd` mapped twice. Two handles of
//!   two mappings can hold a `&mut [u8]` and a `&[u8]` of the same pages. Workaround: take
//!   every buffer of such memory from one mapping object (slices of one `mmap`, or
//!   `memoryview` slices of it), or copy.
//! - Borrows taken through other libraries: rust-numpy's `PyReadonlyArray` /
//!   `PyReadwriteArray`, `pyo3::buffer::PyBuffer`'s slices, raw pointers from
//!   [`Buffer::as_ptr`] and the other `unsafe` accessors. pybuf's registry does not see them,
//!   and their checkers do not see pybuf's borrows.
//! - Exporters that break the buffer protocol itself: memory that is not valid for the extent
//!   they describe, or that they free or move while the buffer is held
//!   (`ndarray.resize(refcheck=False)` from Python, say).
//!
//! ## Python code that runs while a guard lives
//!
//! No second thread is needed to cross that boundary: any Python code that runs while a
//! [`ReadGuard`] or [`WriteGuard`] lives — a callback the Rust code calls, `py.run`, a
//! `__del__` run by the garbage collector during any Python call — can write the memory, for
//! example `a.view(np.uint8)[0] = 2`. pybuf cannot see it. What follows:
//!
//! - A write while a view or slice taken from the guard is in use (held in a variable across
//!   the call) is **undefined behaviour** for Rust, not merely a stale value: the compiler may
//!   assume memory behind a `&[T]` does not change (and that behind a `&mut [T]` nothing else
//!   reads). This holds for every element type, on the same thread too.
//! - A guard holds no reference itself: each [`view`](ReadGuard::view) or
//!   [`as_slice`](ReadGuard::as_slice) call makes a new one. A view taken *after* the Python
//!   code ran reads what it wrote — except that the element validity checked when the guard
//!   was made no longer holds: a `bool` item may now be 2, and a view holding it is undefined
//!   behaviour. Types with no invalid values (numbers, [`Bool`], records of them) have nothing
//!   to check. So: hold guards, not views, across calls into Python, and read masks as
//!   [`Bool`], whose every byte is valid, when a guard is held across such calls.
//!
//! ## Threads and the interpreter lock
//!
//! [`Buffer`], [`AnyBuffer`], [`ReadGuard`] and [`WriteGuard`] are `Send + Sync`: acquire
//! while attached, then release the lock for heavy work with `py.detach(|| ...)` and use the
//! guard's views inside (with rayon, for example). Dropping a handle never blocks: on an
//! attached thread the buffer is released at once (except on a stable-ABI build running on
//! CPython 3.11, [below](#stable-abi-abi3)), anywhere else the release is queued for
//! the next safe point ([`flush_releases`], [`pending_releases`]).
//!
//! ```
//! use pybuf::Buffer1;
//! use pyo3::prelude::*;
//!
//! Python::attach(|py| -> PyResult<()> {
//!     let data = py.eval(c"bytearray(range(100))", None, None)?;
//!     let buf = Buffer1::<u8>::get_mut(&data)?;
//!     let total: u64 = py.detach(|| -> Result<u64, pybuf::Error> {
//!         let mut guard = buf.write()?;
//!         guard.view_mut().mapv_inplace(|x| x / 2);
//!         Ok(guard.view().iter().map(|&x| x as u64).sum())
//!     })?;
//!     assert_eq!(total, (0..100u64).map(|x| x / 2).sum::<u64>());
//!     Ok(())
//! })
//! .unwrap();
//! ```

//! ## Stable ABI (abi3)
//!
//! pybuf compiles unchanged when your pyo3 enables `abi3-py311` (or a later abi3 level), for
//! one wheel that runs on every CPython from 3.11 on; there is no pybuf feature to enable. A
//! lower abi3 level (`abi3-py39`, `abi3-py310`) stops the build with one message: the buffer
//! protocol is in the limited API only from CPython 3.11. Every guarantee holds there, with
//! one behavioural difference, on CPython 3.11 itself: a handle dropped on a thread attached
//! to the interpreter is queued like a drop anywhere else (the limited API of 3.11 cannot
//! tell whether the dropping thread is attached; see [`release`]), so it is released at the
//! next acquisition, [`flush_releases`], pending call or exit rather than at once. Call
//! `flush_releases(py)` before resizing a `bytearray` whose handle you have just dropped, when
//! that code must also run from an abi3 wheel on 3.11. Exporter type names in messages are
//! read through `PyType_GetFlags` and `__module__`/`__qualname__` there, computed once per
//! static type; what the limited API costs per acquisition is in `BENCHMARKS.md`.
//!

//! ## Other protocols: DLPack and the array interface
//!
//! Not every array speaks the buffer protocol. [`Buffer::get`], [`Buffer::get_mut`],
//! `FromPyObject` and [`AnyBuffer::get`] try, in this order:
//!
//! 1. **the buffer protocol** (numpy, `bytes`, jax's float and integer arrays, ...): first
//!    and unchanged, so the objects that have it pay nothing for the others. For a typed
//!    handle of a `numpy.ndarray` with a native built-in scalar dtype, pybuf reads numpy's
//!    array struct directly instead ([`Source::Numpy`], as rust-numpy does), skipping the
//!    format string numpy builds on every buffer request; it answers exactly what the buffer
//!    protocol would (tests compare the two on every dtype and layout) and leaves every other
//!    case, and every failure, to the buffer protocol;
//! 2. **DLPack** (`__dlpack__`: jax, PyTorch, CuPy, pyarrow arrays, anything implementing the
//!    array API standard), only for objects without the buffer protocol, or whose buffer
//!    protocol refused the request (jax refuses buffers of bfloat16, which DLPack carries);
//! 3. **`__array_struct__`** (numpy's `PyArrayInterface` capsule);
//! 4. **`__array_interface__`** (numpy's version-3 dict: Pillow images, older array
//!    libraries).
//!
//! When none fits: `expected an object supporting the buffer protocol, DLPack or the array
//! interface, got 'list'` ([`Error::NotABuffer`]). [`Buffer::from_dlpack`],
//! [`Buffer::from_array_struct`] and [`Buffer::from_array_interface`] (and their `_mut`
//! forms, and the same on [`AnyBuffer`]) use one protocol only; [`Buffer::source`] says which
//! one a handle came through ([`Source`]).
//!
//! Each protocol is translated into what the buffer protocol would have said about the same
//! memory (the format `"<f"` for float32, byte strides), and then goes through the same
//! checks, errors, views, copies, borrow registry and release rules as a buffer. The handle
//! holds a strong reference to the object for its lifetime. DLPack follows its
//! specification: `__dlpack_device__()` must name memory the CPU can read (`kDLCPU`,
//! `kDLCUDAHost`, `kDLCUDAManaged`; otherwise [`Error::Device`]), `__dlpack__` is asked for
//! `max_version=(1, 1)` (and `copy=False` for writing), versioned and legacy capsules are
//! accepted, and the producer's deleter runs exactly once, when the handle is released (as
//! [above](#threads-and-the-interpreter-lock): at once when attached, else at the next safe
//! point, never after finalization). bfloat16 is
//! read as `half::bf16`; it has no PEP 3118 code, so only DLPack delivers it.
//!
//! What each costs per acquire + release of an 8-element float64 numpy array (instructions
//! under `valgrind --tool=callgrind`, CPython 3.11, numpy 2.x; `scripts/icount.sh`, table in
//! `BENCHMARKS.md`): numpy's own array struct about 440, the raw buffer protocol 637, DLPack
//! about 6,000 (two Python method calls, `__dlpack_device__()` and `__dlpack__` with keyword
//! arguments, and numpy building and freeing the managed tensor), `__array_struct__` about
//! 15,000 and `__array_interface__` about 37,000 when they are Python properties (most of it
//! numpy building the capsule or the dict).
//!
//! ```
//! use pybuf::Buffer2;
//! use pyo3::prelude::*;
//!
//! /// The mean of a 2-D float32 array, whichever library holds it.
//! #[pyfunction]
//! fn mean(image: Buffer2<f32>) -> PyResult<f64> {
//!     let sum = image.with(|v| v.iter().map(|&x| f64::from(x)).sum::<f64>())?;
//!     Ok(sum / image.len() as f64)
//! }
//!
//! Python::attach(|py| -> PyResult<()> {
//!     let mean = wrap_pyfunction!(mean, py)?;
//!     let numpy = py.import("numpy")?.call_method1("full", ((2, 3), 0.5, "float32"))?;
//!     let jax = py.import("jax.numpy")?.call_method1("full", ((2, 3), 0.5, "float32"))?;
//!     let pil = py.import("PIL.Image")?.call_method1("new", ("F", (3, 2), 0.5))?;
//!     // (a PIL image has no buffer protocol: it is read through `__array_interface__`)
//!     assert_eq!(Buffer2::<f32>::get(&pil)?.source(), pybuf::Source::ArrayInterface);
//!     for array in [numpy, jax, pil] {
//!         assert_eq!(mean.call1((array,))?.extract::<f64>()?, 0.5);
//!     }
//!     Ok(())
//! })
//! .unwrap();
//! ```

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

/// The `half` crate (feature `half`), for the `half::f16` element type.
#[cfg(feature = "half")]
pub use half;
pub use ndarray;
/// The `num-complex` crate (feature `complex`), for the `Complex<f32>` and `Complex<f64>`
/// element types.
#[cfg(feature = "complex")]
pub use num_complex;

mod acquire;
mod any;
mod boolean;
mod borrow;
mod buffer;
#[cfg(test)]
mod child_test;
mod copy;
mod dispatch;
pub mod dlpack;
pub mod element;
pub mod error;
pub mod export;
pub mod format;
#[doc = include_str!("../docs/guide.md")]
pub mod guide {}
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod guard;
mod layout;
pub mod release;
mod source;
mod view_or_copy;

pub use any::{AnyBuffer, ElementKind};
pub use boolean::Bool;
pub use buffer::{
    Buffer, Buffer0, Buffer1, Buffer2, Buffer3, BufferD, BufferMut, BufferMut1, BufferMut2,
    BufferMut3, BufferMutD,
};
pub use element::{be, le, Element};
pub use error::{Access, Error};
pub use export::ExportedBuffer;
pub use guard::{ReadGuard, WriteGuard};
pub use layout::MAX_NDIM;
pub use release::{flush_releases, pending_releases};
pub use source::Source;
pub use view_or_copy::ViewOrCopy;

#[cfg(feature = "derive")]
pub use pybuf_derive::Element;
