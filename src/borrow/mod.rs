//! The process-wide registry of zero-copy borrows.
//!
//! Every zero-copy view pybuf hands out (`Buffer::read` / `write`, and the momentary
//! borrows of `item`, `set_item` and the copies) first registers the memory it can touch here
//! with [`acquire`], and keeps the returned [`BorrowToken`] alive as long as the view. The
//! rules are those of Rust references, applied to memory rather than to handles:
//!
//! - shared + shared never conflict;
//! - an exclusive borrow conflicts with every borrow that touches a common byte.
//!
//! So two `Buffer` handles of one `bytearray`, or two numpy views of one base array, can never
//! hand out aliasing `&mut`, while views that merely interleave (`a[::2]` and `a[1::2]`,
//! different columns of one matrix, different fields of a structured array) can be written at
//! the same time.
//!
//! # What a region touches
//!
//! A [`Region`] touches the bytes `[addr, addr + itemsize)` of every element address
//! `addr = ptr + Σ i_k · strides[k]`, `0 ≤ i_k < shape[k]`. Strides may be negative or zero;
//! `ndim` may be 0 (one element). A region with a zero-length dimension (or zero item size)
//! touches nothing and never conflicts.
//!
//! # How overlap is decided
//!
//! Exactly where that is cheap — disjoint byte extents, contiguous blocks, interleaved and
//! strided views (two-term equations are solved in closed form) — then by a bounded-work exact
//! search of a linear Diophantine equation (see [`overlap`]), and conservatively beyond the
//! bound ([`overlap::MAX_WORK`] search steps per pair of borrows): when the search gives up,
//! overlapping byte extents count as a conflict. A false conflict is possible only there; a
//! missed conflict never. [`has_internal_overlap`] answers the same question for two distinct
//! indices of one region (zero strides, `as_strided` tricks), `true` when undecided.
//!
//! Layouts that addresses cannot describe (buffers with suboffsets, whose elements are reached
//! through pointers stored in the buffer) are registered under an opaque key with
//! [`acquire_opaque`]. **Limitation:** an opaque borrow conflicts only with opaque borrows of
//! the same key, never with address borrows, so the memory such a buffer points into is not
//! protected against an address-described borrow of that same memory from another exporter.
//! The key should identify the memory as well as the caller can (for example the buffer's base
//! pointer).
//!
//! # Cost
//!
//! Live borrows sit in interval treaps keyed by byte extent (see [`registry`]): a borrow and
//! its release take `O(log n + k)` expected time for `n` live borrows of which `k` have byte
//! extents meeting the new one, plus the exact check of those `k`. A shared request never even
//! looks at other shared borrows. Regions with up to four dimensions left after normalization
//! (contiguous runs fold into one) are stored without heap allocation, and freed slots are
//! reused, so the steady state allocates nothing.
//!
//! # Synchronization
//!
//! One `std::sync::Mutex`, independent of the Python interpreter lock: it works with the GIL
//! released and on free-threaded CPython. Nothing inside the critical section panics, and a
//! poisoned lock is recovered (the table is consistent between operations), so [`acquire`]
//! and dropping a [`BorrowToken`] never panic.
//!
//! # Trust boundary
//!
//! The registry orders *Rust* borrows made through pybuf against each other, nothing more.
//! Python code, C extensions, or Rust code using the raw buffer pointer (the `unsafe` escape
//! hatch) can write the memory while a pybuf borrow is live; the registry cannot see or
//! prevent that. This is the same boundary every C extension lives with: a `&[T]` handed out
//! here is only as immutable as the Python program lets it be while the borrow lasts.

pub(crate) mod overlap;
pub(crate) mod registry;

#[cfg(test)]
mod tests;

use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::error::{Access, Error};

use overlap::{normalize, Norm, MAX_WORK};
use registry::{Kind, Registry, NIL};

/// The memory a borrow can touch: element addresses `ptr + Σ i_k · strides[k]` for every
/// index within `shape`, each `itemsize` bytes long. `shape` and `strides` must have the same
/// length (a mismatch is treated as touching every address).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Region<'a> {
    pub ptr: usize,
    pub shape: &'a [usize],
    pub strides: &'a [isize],
    pub itemsize: usize,
}

impl Region<'_> {
    #[inline]
    fn normalize(&self) -> Option<Norm> {
        normalize(self.ptr, self.shape, self.strides, self.itemsize)
    }
}

/// The process-wide table.
static REGISTRY: Mutex<Registry> = Mutex::new(Registry::new());

fn lock() -> MutexGuard<'static, Registry> {
    // The table is consistent between operations and nothing in them panics; should a panic
    // ever poison the lock, the table is still usable.
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A live borrow; dropping it unregisters the borrow (from any thread).
#[derive(Debug)]
pub(crate) struct BorrowToken {
    /// Slot in the registry, or [`NIL`] for a borrow of no memory.
    slot: u32,
}

impl BorrowToken {
    /// Whether this token holds a registry entry (`false` for regions that touch no byte).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn is_registered(&self) -> bool {
        self.slot != NIL
    }
}

impl Drop for BorrowToken {
    fn drop(&mut self) {
        if self.slot == NIL {
            return;
        }
        let heap = lock().remove(self.slot);
        // The heap part of a many-dimensional region, if any, is freed here, outside the lock.
        drop(heap);
    }
}

/// Registers a borrow of `region`, or fails with [`Error::BorrowConflict`] if it overlaps a
/// live borrow it conflicts with.
pub(crate) fn acquire(region: Region<'_>, access: Access) -> Result<BorrowToken, Error> {
    match region.normalize() {
        None => Ok(BorrowToken { slot: NIL }),
        Some(norm) => register(norm, Kind::Address, access),
    }
}

/// Registers a borrow of memory that addresses cannot describe (a buffer with suboffsets),
/// identified by `key`. It conflicts with opaque borrows of the same key under the usual
/// rules, and with nothing else (see the module docs for what that leaves unprotected).
pub(crate) fn acquire_opaque(key: usize, access: Access) -> Result<BorrowToken, Error> {
    register(Norm::point(key as u64), Kind::Opaque, access)
}

fn register(norm: Norm, kind: Kind, access: Access) -> Result<BorrowToken, Error> {
    let result = lock().insert(norm, kind, access, MAX_WORK);
    match result {
        Ok(slot) => Ok(BorrowToken { slot }),
        Err(held) => Err(Error::BorrowConflict {
            requested: access,
            held,
        }),
    }
}

/// Runs `f` under a momentary borrow of `region`: the borrow is checked against every live
/// borrow and `f` runs while the registry is locked, so no conflicting borrow can start
/// before it returns; nothing is registered. For short accesses only (one item): `f` holds
/// the process-wide lock, and must not take a borrow itself.
pub(crate) fn with_momentary<R>(
    region: Region<'_>,
    access: Access,
    f: impl FnOnce() -> R,
) -> Result<R, Error> {
    let Some(norm) = region.normalize() else {
        return Ok(f()); // touches no byte
    };
    let registry = lock();
    registry
        .check(&norm, Kind::Address, access, MAX_WORK)
        .map_err(|held| Error::BorrowConflict {
            requested: access,
            held,
        })?;
    let result = f();
    drop(registry);
    Ok(result)
}

/// Whether two distinct indices of `region` address overlapping bytes (exact where cheap and
/// within the solver's work bound, `true` when undecided).
pub(crate) fn has_internal_overlap(region: Region<'_>) -> bool {
    overlap::internal_overlap(region.shape, region.strides, region.itemsize, MAX_WORK).conflicts()
}
