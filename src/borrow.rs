//! The process-wide registry of zero-copy borrows (placeholder interface; helper branch
//! `borrow` implements it).

use crate::error::{Access, Error};

/// The memory a borrow can touch: element addresses `ptr + Σ i_k · strides[k]` for every
/// index within `shape`, each `itemsize` bytes long.
#[derive(Clone, Copy, Debug)]
#[allow(dead_code)] // placeholder until the registry lands
pub(crate) struct Region<'a> {
    pub ptr: usize,
    pub shape: &'a [usize],
    pub strides: &'a [isize],
    pub itemsize: usize,
}

/// A live borrow; dropping it unregisters the borrow.
#[derive(Debug)]
pub(crate) struct BorrowToken {
    _private: (),
}

/// Registers a borrow of `region`, or fails with [`Error::BorrowConflict`] if it overlaps a
/// live borrow it conflicts with.
pub(crate) fn acquire(region: Region<'_>, access: Access) -> Result<BorrowToken, Error> {
    let _ = (region, access);
    Ok(BorrowToken { _private: () })
}

/// Whether two distinct indices of `region` address overlapping bytes (exact where cheap,
/// `true` when undecided).
pub(crate) fn has_internal_overlap(region: Region<'_>) -> bool {
    // Sufficient test: sorted by |stride|, each stride steps over everything inside it.
    if region.shape.contains(&0) {
        return false;
    }
    let mut axes: Vec<(usize, usize)> = region
        .shape
        .iter()
        .zip(region.strides)
        .filter(|(&n, _)| n > 1)
        .map(|(&n, &s)| (n, s.unsigned_abs()))
        .collect();
    axes.sort_by_key(|&(_, s)| s);
    let mut extent = region.itemsize;
    for (n, s) in axes {
        if s < extent {
            return true;
        }
        extent += s * (n - 1);
    }
    false
}

/// Registers a borrow of memory that cannot be described by addresses (suboffsets), keyed by
/// `key` (the exporter): conflicts with other opaque borrows of the same key.
pub(crate) fn acquire_opaque(key: usize, access: Access) -> Result<BorrowToken, Error> {
    let _ = (key, access);
    Ok(BorrowToken { _private: () })
}
