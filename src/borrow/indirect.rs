//! Borrows of buffers with suboffsets (PIL-style indirection), resolved to the bytes they
//! touch.
//!
//! At an indirect dimension `j` (`suboffsets[j] ≥ 0`) the buffer stores pointers: the address
//! reached so far plus `i_j · strides[j]` holds a pointer, and `pointer + suboffsets[j]` is the
//! base of the next dimensions. So a borrow of such a buffer touches two kinds of memory:
//!
//! - the *pointer cells* read at each indirect level — for every base reached at the previous
//!   level, a strided region of pointer-sized cells over the dimensions up to `j`. They are
//!   borrowed **shared** whatever the access (following a pointer reads it; a writer of the
//!   data never writes them);
//! - the *data runs* after the last indirect level — for every base reached there, an ordinary
//!   strided region over the remaining dimensions, borrowed with the requested access.
//!
//! Each of these becomes one registry entry, so PIL borrows conflict with each other and with
//! address-described borrows of the same rows or pointer tables exactly as address borrows
//! do. The walk happens under the registry lock, level by level: the cells of a level are
//! checked and registered *before* they are read, so no Rust writer can be changing a pointer
//! while it is followed. The data runs are collected during the walk, then checked (against
//! every live borrow, including this borrow's own pointer cells) and registered together, so
//! the whole borrow appears at once to other threads.
//!
//! The runs of one borrow may overlap each other, as the items of a zero-stride view do (a
//! PIL buffer whose row pointers repeat). They may not overlap the borrow's own pointer cells
//! when the access is exclusive: a writable PIL buffer whose rows cover its own pointer table
//! is refused with [`Error::BorrowConflict`] rather than written through (writing a row that
//! holds pointers still to be followed would send the copy anywhere).
//!
//! # Work bound
//!
//! A layout needing more than [`MAX_REGIONS`] entries (pointer-cell regions plus data runs,
//! counted from the shape before anything is read) is registered conservatively as one
//! borrow of the whole address space with the requested access: it conflicts with every
//! exclusive borrow (and, if exclusive, with every borrow), never misses one, and reads no
//! pointer.

use crate::error::{Access, Error};

use super::overlap::{normalize, Norm, MAX_WORK};
use super::{insert, lock, BorrowToken, Fast, Locked, NIL};

/// Most registry entries one suboffset borrow resolves into before it falls back to a
/// conservative borrow of everything.
pub(crate) const MAX_REGIONS: usize = 1024;

/// Size of a stored pointer.
const PTR: usize = std::mem::size_of::<*const u8>();

/// The regions of a suboffset layout (see the module docs).
pub(crate) struct Indirect<'a> {
    /// The exporter's `buf`.
    pub base: *const u8,
    pub shape: &'a [usize],
    pub strides: &'a [isize],
    pub suboffsets: &'a [isize],
    pub itemsize: usize,
}

/// Registers a borrow of every pointer cell and data run of `layout` (or, beyond the work
/// bound, of everything), atomically: either all entries are registered or none.
///
/// # Safety
/// `layout` describes a buffer that is held for the whole call: for every index within the
/// shape, the pointer cells it leads through are readable (the exporter's promise, the same
/// one `Layout::address` relies on).
pub(crate) unsafe fn acquire(layout: &Indirect<'_>, access: Access) -> Result<BorrowToken, Error> {
    let n = layout.shape.len();
    if layout.itemsize == 0 || layout.shape.contains(&0) {
        return Ok(BorrowToken::NONE); // touches no byte
    }
    let mut registry = lock();
    let mut slots = Vec::new();
    let described = layout.strides.len() == n && layout.suboffsets.len() == n;
    let result = match count_regions(layout.shape, layout.suboffsets) {
        Some(count) if described && count <= MAX_REGIONS => {
            let mut runs = Vec::new();
            // SAFETY: forwarded from the caller; the walk starts at the buffer's base.
            unsafe { walk(&mut registry, layout, layout.base, 0, &mut slots, &mut runs) }
                .and_then(|()| register_runs(&mut registry, runs, access, &mut slots))
        }
        _ => insert(&mut registry, Norm::everything(), access).map(|slot| slots.push(slot)),
    };
    if let Err(e) = result {
        for slot in slots {
            registry.remove(slot);
        }
        if access == Access::Exclusive {
            Fast::readmit_readers(&registry);
        }
        return Err(e);
    }
    let mut slots = slots.into_iter();
    Ok(BorrowToken {
        slot: slots.next().unwrap_or(NIL),
        more: slots.collect(),
    })
}

/// Checks every data run against the live borrows (not against each other), then registers
/// them all.
fn register_runs(
    registry: &mut Locked,
    runs: Vec<Norm>,
    access: Access,
    slots: &mut Vec<u32>,
) -> Result<(), Error> {
    if access == Access::Exclusive {
        Fast::exclude_readers(registry);
    }
    for run in &runs {
        registry
            .check(run, access, MAX_WORK)
            .map_err(|held| Error::BorrowConflict {
                requested: access,
                held,
            })?;
    }
    for run in runs {
        let slot =
            registry
                .insert_unchecked(run, access)
                .map_err(|held| Error::BorrowConflict {
                    requested: access,
                    held,
                })?;
        slots.push(slot);
    }
    Ok(())
}

/// Number of registry entries the walk makes (`None` if it overflows).
fn count_regions(shape: &[usize], suboffsets: &[isize]) -> Option<usize> {
    let mut total = 0usize;
    let mut bases = 1usize; // bases reached at the current level
    let mut from = 0;
    for (j, &so) in suboffsets.iter().enumerate() {
        if so >= 0 {
            total = total.checked_add(bases)?; // one cell region per base
            for &len in shape.get(from..=j)? {
                bases = bases.checked_mul(len)?;
            }
            from = j + 1;
        }
    }
    total.checked_add(bases) // one data run per base
}

/// Registers the pointer cells reached from `base` at dimension `from` (appending their
/// slots) and collects the data runs they lead to.
///
/// # Safety
/// As for [`acquire`]; `base` is the address the indices before `from` lead to.
unsafe fn walk(
    registry: &mut Locked,
    layout: &Indirect<'_>,
    base: *const u8,
    from: usize,
    slots: &mut Vec<u32>,
    runs: &mut Vec<Norm>,
) -> Result<(), Error> {
    let n = layout.shape.len();
    let Some(j) = (from..n).find(|&d| layout.suboffsets[d] >= 0) else {
        // A data run over the remaining (direct) dimensions.
        let (shape, strides) = (&layout.shape[from..], &layout.strides[from..]);
        runs.extend(normalize(base as usize, shape, strides, layout.itemsize));
        return Ok(());
    };
    let (shape, strides) = (&layout.shape[from..=j], &layout.strides[from..=j]);
    // The cells of this level, borrowed shared before any of them is read.
    if let Some(norm) = normalize(base as usize, shape, strides, PTR) {
        slots.push(insert(registry, norm, Access::Shared)?);
    }
    let mut index = vec![0usize; shape.len()];
    loop {
        let offset = index.iter().zip(strides).fold(0isize, |acc, (&i, &s)| {
            acc.wrapping_add((i as isize).wrapping_mul(s))
        });
        let cell = base.wrapping_offset(offset);
        // SAFETY: `index` is within the shape, so `cell` is a pointer cell of the held buffer
        // (the caller's promise); its bytes are registered shared just above, under the lock we
        // hold, so no Rust borrow can be writing them; read bytewise (it may be unaligned).
        let pointer = unsafe { cell.cast::<*const u8>().read_unaligned() };
        let next = pointer.wrapping_offset(layout.suboffsets[j]);
        // SAFETY: `next` is where this index leads, as the caller's promise requires.
        unsafe { walk(registry, layout, next, j + 1, slots, runs)? };
        // Next index, last dimension fastest.
        let mut d = index.len();
        loop {
            if d == 0 {
                return Ok(());
            }
            d -= 1;
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
}
