//! # pybuf
//!
//! Safe, strongly typed, zero-copy access to anything that speaks Python's buffer protocol
//! (PEP 3118) — numpy arrays, `bytes`, `bytearray`, `memoryview`, `array.array`, `mmap`,
//! ctypes arrays and structures, classes with `__buffer__` — and export of Rust memory to
//! Python the same way.
//!
//! The data path reads in one direction:
//! [format](format) → [element](Element) match → acquisition and validation →
//! typed [`Buffer`] → borrow ([`Buffer::read`], [`Buffer::write`]) or copy
//! ([`Buffer::to_vec`]) → release (on drop, from any thread).

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub use ndarray;

mod any;
mod borrow;
mod buffer;
mod copy;
pub mod element;
pub mod error;
pub mod export;
pub mod format;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod guard;
mod layout;
mod raw;
mod release;

pub use any::{AnyBuffer, ElementKind};
pub use buffer::{Buffer, Buffer0, Buffer1, Buffer2, BufferD};
pub use element::{be, le, Element};
pub use error::{Access, Error};
pub use guard::{ReadGuard, WriteGuard};
pub use layout::MAX_NDIM;
pub use release::{flush_releases, pending_releases};

#[cfg(feature = "derive")]
pub use pybuf_derive::Element;
