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
//! overlapping byte extents count as a conflict. A false conflict is possible only there and
//! in the two conservative cases documented below (suboffset layouts beyond the resolution
//! bound, memory borrowed by threads that vanished at a `fork()`); a missed conflict never. [`has_internal_overlap`] answers the same question for two distinct
//! indices of one region (zero strides, `as_strided` tricks), `true` when undecided.
//!
//! Buffers with suboffsets (PIL-style: elements reached through pointers stored in the
//! buffer) are resolved by [`acquire_layout`] into the regions they really touch: the pointer
//! cells read at each indirect level (borrowed shared, even by a writer: following a pointer
//! reads it) and the data runs the pointers lead to (borrowed with the requested access). So
//! two slices of one PIL array conflict exactly where their rows meet, and a PIL borrow meets
//! an address-described borrow of the same rows or pointer table from any other exporter (see
//! [`indirect`] for the work bound and the conservative fallback beyond it).
//!
//! # Cost
//!
//! Live borrows sit in lists by access and size class, indexed by address chunk once a class
//! is large and searched (see [`registry`]): registering and releasing a borrow take expected
//! constant time whatever the number of live borrows, and a request looks only at the
//! classes of the access it can conflict with, and there only at the buckets its byte extent
//! can meet (a shared request never looks at shared borrows, so with no exclusive borrow live
//! it looks at nothing). The exact overlap check runs only for borrows
//! whose byte extents intersect the new one. Regions with up to four dimensions left after
//! normalization (contiguous runs fold into one) are stored without heap allocation, and
//! freed slots are reused, so the steady state allocates nothing.
//!
//! A momentary shared borrow of one item ([`with_item`], behind `Buffer::item`) does not take
//! the registry lock at all while no exclusive borrow is live: it announces itself on one
//! atomic counter (see [`Fast`]), and whoever registers the first exclusive borrow waits for
//! the announced items to finish (a single item copy each) before checking the table.
//!
//! # Synchronization
//!
//! One `std::sync::Mutex`, independent of the Python interpreter lock, plus the atomic
//! counter above: it works with the GIL released and on free-threaded CPython. Nothing inside
//! the critical section panics, and a poisoned lock is recovered (the table is consistent
//! between operations), so [`acquire`] and dropping a [`BorrowToken`] never panic.
//!
//! # Fork
//!
//! A `fork()` copies the process with only the forking thread. pybuf installs `pthread_atfork`
//! handlers (at the first acquisition, see [`crate::release`]): before the fork the forking
//! thread takes the registry lock, so no other thread is in the middle of changing the table
//! and the child inherits a consistent one; after the fork both processes release it, and the
//! child clears the in-flight count of momentary items (those threads do not exist there).
//! The child keeps every registered borrow, including those of threads that do not exist in
//! it: their guards are still in the child's memory and may be reachable (guards can be sent
//! between threads), and their slots may still be released by such a guard, so dropping the
//! entries could let the child alias a live guard or free a slot twice. The cost is that
//! memory borrowed by a vanished thread at the fork stays borrowed in the child (conflicts on
//! exactly that memory, never a missed one).
//!
//! # Trust boundary
//!
//! The registry orders *Rust* borrows made through pybuf against each other, nothing more.
//! Python code, C extensions, or Rust code using the raw buffer pointer (the `unsafe` escape
//! hatch) can write the memory while a pybuf borrow is live; the registry cannot see or
//! prevent that. This is the same boundary every C extension lives with: a `&[T]` handed out
//! here is only as immutable as the Python program lets it be while the borrow lasts.

pub(crate) mod indirect;
pub(crate) mod overlap;
pub(crate) mod registry;
pub(crate) mod table;

#[cfg(test)]
mod indirect_tests;
#[cfg(test)]
mod tests;

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use ndarray::Dimension;

use crate::error::{Access, Error};
use crate::layout::Layout;

use overlap::{normalize, Norm, MAX_WORK};
use registry::{Registry, NIL};

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

type Locked = MutexGuard<'static, Registry>;

fn lock() -> Locked {
    // The table is consistent between operations and nothing in them panics; should a panic
    // ever poison the lock, the table is still usable.
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The lock-free side of the registry: momentary one-item shared borrows announce themselves
/// here instead of taking the lock.
///
/// The low bits count momentary items in flight on the fast path; [`Fast::EXCLUSIVE`] is set
/// (under the registry lock) while any exclusive borrow is live or a momentary exclusive
/// access runs. An item reader adds one; if the flag was clear it copies its item and
/// subtracts one, otherwise it subtracts one and takes the locked path. Whoever sets the flag
/// waits, before it checks the table, until no announced item is in flight: an item announced
/// before the flag was set is being copied and might overlap. Readers only announce and never
/// wait, and the flag is only set under the lock, so the wait ends as soon as the (at most one
/// item copy per thread) readers in flight are done.
struct Fast;

static FAST: AtomicUsize = AtomicUsize::new(0);

impl Fast {
    const EXCLUSIVE: usize = 1 << (usize::BITS - 1);

    /// Sets the flag (caller holds the registry lock) and waits for in-flight items.
    fn exclude_readers(_locked: &Locked) {
        let prev = FAST.fetch_or(Fast::EXCLUSIVE, Ordering::AcqRel);
        if prev & Fast::EXCLUSIVE != 0 || prev == 0 {
            // Already set: whoever set it waited for the items then in flight, and every item
            // announced since saw the flag and took the locked path. Or nothing in flight.
            return;
        }
        let mut spins = 0u32;
        while FAST.load(Ordering::Acquire) & !Fast::EXCLUSIVE != 0 {
            // Each reader in flight copies one item; only preemption makes this take long.
            if spins < 64 {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Clears the flag once no exclusive borrow is live (caller holds the registry lock).
    fn readmit_readers(locked: &Locked) {
        if !locked.has_exclusive() {
            FAST.fetch_and(!Fast::EXCLUSIVE, Ordering::Release);
        }
    }
}

/// A live borrow; dropping it unregisters the borrow (from any thread).
#[derive(Debug)]
pub(crate) struct BorrowToken {
    /// Slot in the registry, or [`NIL`] for a borrow of no memory.
    slot: u32,
    /// Further slots of the same borrow (the regions of a suboffset layout).
    more: Vec<u32>,
}

impl BorrowToken {
    const NONE: BorrowToken = BorrowToken {
        slot: NIL,
        more: Vec::new(),
    };

    /// Whether this token holds a registry entry (`false` for regions that touch no byte).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn is_registered(&self) -> bool {
        self.slot != NIL
    }

    /// Number of registry entries (tests).
    #[cfg(test)]
    pub(crate) fn entries(&self) -> usize {
        usize::from(self.slot != NIL) + self.more.len()
    }
}

impl Drop for BorrowToken {
    fn drop(&mut self) {
        if self.slot == NIL {
            return;
        }
        if self.more.is_empty() {
            // the common case, one entry: no list of heap parts to gather
            let removed = {
                let mut registry = lock();
                let removed = registry.remove(self.slot);
                if matches!(removed, Some((_, true))) {
                    Fast::readmit_readers(&registry);
                }
                removed
            };
            // its heap part, if any, is freed here, outside the lock
            drop(removed);
            return;
        }
        let mut heap = Vec::new();
        {
            let mut registry = lock();
            let mut exclusive = false;
            for &slot in std::iter::once(&self.slot).chain(&self.more) {
                if let Some((dims, excl)) = registry.remove(slot) {
                    heap.extend(dims);
                    exclusive |= excl;
                }
            }
            if exclusive {
                Fast::readmit_readers(&registry);
            }
        }
        // The heap parts of many-dimensional regions, if any, are freed here, outside the lock.
        drop(heap);
    }
}

fn conflict(requested: Access, held: Access) -> Error {
    Error::BorrowConflict { requested, held }
}

/// Registers a borrow of `region`, or fails with [`Error::BorrowConflict`] if it overlaps a
/// live borrow it conflicts with.
pub(crate) fn acquire(region: Region<'_>, access: Access) -> Result<BorrowToken, Error> {
    match region.normalize() {
        None => Ok(BorrowToken::NONE),
        Some(norm) => {
            let mut registry = lock();
            let slot = insert(&mut registry, norm, access)?;
            Ok(BorrowToken {
                slot,
                more: Vec::new(),
            })
        }
    }
}

/// Registers a borrow of all the memory `layout` can touch: its region, or for a layout with
/// suboffsets the pointer cells and data runs it reaches (see [`indirect`]). The caller does
/// not need to know which.
///
/// # Safety
/// `layout` describes a buffer that is held (acquired and not released) for the whole call:
/// with suboffsets, the pointers stored in the exporter's memory are read.
pub(crate) unsafe fn acquire_layout<D: Dimension>(
    layout: &Layout<D>,
    access: Access,
) -> Result<BorrowToken, Error> {
    match &layout.suboffsets {
        None => acquire(layout.region(), access),
        Some(suboffsets) => {
            let indirect = indirect::Indirect {
                base: layout.ptr,
                shape: layout.shape.slice(),
                strides: layout.strides(),
                suboffsets,
                itemsize: layout.itemsize,
            };
            // SAFETY: forwarded from the caller.
            unsafe { indirect::acquire(&indirect, access) }
        }
    }
}

/// Checks `norm` and registers it under the held lock.
fn insert(registry: &mut Locked, norm: Norm, access: Access) -> Result<u32, Error> {
    if access == Access::Exclusive {
        Fast::exclude_readers(registry);
    }
    let result = registry.insert(norm, access, MAX_WORK);
    if result.is_err() && access == Access::Exclusive {
        Fast::readmit_readers(registry);
    }
    result.map_err(|held| conflict(access, held))
}

/// Runs `f` under a momentary borrow of `region`: the borrow is checked against every live
/// borrow and `f` runs while the registry is locked, so no conflicting borrow can start
/// before it returns; nothing is registered. For short accesses only: `f` holds the
/// process-wide lock, and must not take a borrow itself.
pub(crate) fn with_momentary<R>(
    region: Region<'_>,
    access: Access,
    f: impl FnOnce() -> R,
) -> Result<R, Error> {
    let Some(norm) = region.normalize() else {
        return Ok(f()); // touches no byte
    };
    with_momentary_norm(&norm, access, f)
}

fn with_momentary_norm<R>(norm: &Norm, access: Access, f: impl FnOnce() -> R) -> Result<R, Error> {
    let mut registry = lock();
    if access == Access::Exclusive {
        Fast::exclude_readers(&registry);
    }
    let checked = registry.check(norm, access, MAX_WORK);
    let result = checked.map(|()| f());
    if access == Access::Exclusive {
        Fast::readmit_readers(&registry);
    }
    drop(registry);
    result.map_err(|held| conflict(access, held))
}

/// Runs `f` under a momentary borrow of the one item of `itemsize` bytes at `addr`: the fast
/// entry point for `Buffer::item` / `set_item`.
///
/// A shared item while no exclusive borrow is live costs two uncontended atomic operations on
/// one counter and no lock (about ten instructions); otherwise, and for exclusive items, it is
/// [`with_momentary`] (the registry lock and a check of the item against the live borrows).
/// `f` must be short (one item copy) and must not take a borrow itself.
#[inline]
pub(crate) fn with_item<R>(
    addr: usize,
    itemsize: usize,
    access: Access,
    f: impl FnOnce() -> R,
) -> Result<R, Error> {
    if access == Access::Shared {
        let prev = FAST.fetch_add(1, Ordering::Acquire);
        if prev & Fast::EXCLUSIVE == 0 {
            // No exclusive borrow is live, and none can start until we leave (its registrant
            // waits for the count): shared never conflicts with shared.
            let result = f();
            FAST.fetch_sub(1, Ordering::Release);
            return Ok(result);
        }
        FAST.fetch_sub(1, Ordering::Release);
    }
    with_item_slow(addr, itemsize, access, f)
}

#[cold]
#[inline(never)]
fn with_item_slow<R>(
    addr: usize,
    itemsize: usize,
    access: Access,
    f: impl FnOnce() -> R,
) -> Result<R, Error> {
    with_momentary(
        Region {
            ptr: addr,
            shape: &[],
            strides: &[],
            itemsize,
        },
        access,
        f,
    )
}

/// Whether two distinct indices of `region` address overlapping bytes (exact where cheap and
/// within the solver's work bound, `true` when undecided).
pub(crate) fn has_internal_overlap(region: Region<'_>) -> bool {
    overlap::internal_overlap(region.shape, region.strides, region.itemsize, MAX_WORK).conflicts()
}

/// The registry lock held across a `fork()` by the forking thread (see the module docs).
struct ForkSlot(UnsafeCell<MaybeUninit<Locked>>);

// SAFETY: the slot is written by `before_fork` and emptied by `after_fork` on the same
// thread (the forking one, or its copy in the child), and only while that thread holds the
// registry lock it contains: a second forking thread blocks in `before_fork` on that lock
// until the first one's `after_fork` has emptied the slot. So no two threads ever access it
// at once.
unsafe impl Sync for ForkSlot {}

static FORK_LOCK: ForkSlot = ForkSlot(UnsafeCell::new(MaybeUninit::uninit()));

/// `pthread_atfork` prepare handler: takes the registry lock, so that the child inherits a
/// table no thread is in the middle of changing. Every critical section of the registry is
/// short and takes no other lock (not the interpreter's either), so this waits for at most
/// one of them.
pub(crate) fn before_fork() {
    let locked = lock();
    // SAFETY: see `ForkSlot`: we hold the registry lock, so the slot is ours and empty.
    unsafe { (*FORK_LOCK.0.get()).write(locked) };
}

/// `pthread_atfork` parent and child handler: releases the lock `before_fork` took; in the
/// child (`child == true`) also forgets the momentary items in flight on other threads, which
/// do not exist there (only the flag for live exclusive borrows stays). Async-signal-safe: an
/// atomic swap (and at most a futex wake) to unlock, atomic stores, no allocation.
pub(crate) fn after_fork(child: bool) {
    // SAFETY: see `ForkSlot`: `before_fork` filled the slot on this thread (or on the thread
    // this child copies), and the slot is emptied exactly once here.
    let locked = unsafe { (*FORK_LOCK.0.get()).assume_init_read() };
    if child {
        FAST.fetch_and(Fast::EXCLUSIVE, Ordering::SeqCst);
    }
    drop(locked);
}
