//! The table of live borrows: hashed by size class and address chunk.
//!
//! Every live borrow is one node of an arena (`Vec<Node>`, freed slots chained into a free
//! list, so a steady state allocates nothing). A node's byte extent `[first, last]` gives it a
//! *size class* `c`, the smallest shift of [`shift_of`] (6, 9, 12, …, 63 bits) with
//! `last − first < 2^c`, and a *chunk* `first >> c`. Since the extent is shorter than a chunk,
//! it lies within its own chunk and the next one. Nodes are kept in one list per
//! (access, class). The first query that would otherwise walk a class of more than
//! [`INDEX_ABOVE`] nodes builds an index for it: one bucket per (access, class, chunk) — an
//! intrusive doubly linked list whose head sits in a hash [`Table`] — kept up to date from
//! then on. (A class that shrinks to [`UNINDEX_AT`] nodes drops its buckets again; the gap
//! keeps a class from building and dropping them on every borrow.) So many shared borrows
//! that no exclusive request ever searches cost no hashing at all.
//!
//! A query extent `[qf, ql]` can only meet nodes of class `c` in chunks
//! `(qf >> c) − 1 ..= ql >> c`; for every class that has live nodes of the access searched it
//! looks up those buckets if the class is indexed and they are fewer than its nodes, and walks
//! the class's list otherwise (a few borrows, or a large query among small borrows). Each
//! node whose extent meets the query is then checked exactly by [`norm_overlap`].
//!
//! Costs: registering and unregistering take O(1) expected time (at most one hash update;
//! building or dropping a class's buckets is amortized over the borrows that crossed the
//! thresholds), whatever the number of live borrows. A query costs, for each non-empty class of the access searched,
//! `min(chunks spanned, nodes of that class)` steps plus the bucket entries seen: a shared
//! request searches only the exclusive borrows (shared never conflicts with shared), so with
//! no exclusive borrow live it searches nothing. The one case that grows linearly is a query
//! much larger than many small live borrows of the searched access (an exclusive borrow of a
//! large array while many small borrows elsewhere are live): it walks those classes' lists.

use crate::error::Access;

use super::overlap::{norm_overlap, Dim, Dims, Norm};
use super::table::Table;

/// "No node".
pub(crate) const NIL: u32 = u32::MAX;

/// Number of size classes with buckets (shifts 6, 9, …, 63).
const BUCKETED: usize = 20;
/// The class of extents of 2^63 bytes or more (only conservative "everything" regions): kept
/// in its list only, searched by every query.
const HUGE: usize = BUCKETED;
const CLASSES: usize = BUCKETED + 1;

/// Chunk shift of bucketed class `class`.
#[inline]
fn shift_of(class: usize) -> u32 {
    6 + 3 * class as u32
}

/// The size class of an extent with `last − first = span`.
#[inline]
fn class_of(span: u64) -> usize {
    // bits needed to write `span`: span < 2^bits
    let bits = 64 - span.leading_zeros();
    (bits.max(6) as usize - 6).div_ceil(3).min(HUGE)
}

#[inline]
fn access_index(access: Access) -> usize {
    (access == Access::Exclusive) as usize
}

/// Bucket key of (class, chunk, access); never [`super::table::EMPTY`] (chunk < 2^58 and the
/// class field is at most 19).
#[inline]
fn bucket_key(class: usize, chunk: u64, access: usize) -> u64 {
    (chunk << 6) | ((class as u64) << 1) | access as u64
}

/// Number of chunks of bucketed class `class` that a query extent can meet, minus one.
#[inline]
fn chunks(q: &Norm, class: usize) -> u64 {
    let shift = shift_of(class);
    (q.last >> shift) - (q.first >> shift).saturating_sub(1)
}

/// Marks a free slot.
const FREE: u8 = u8::MAX;

/// A class gets buckets when it grows past this many nodes ...
pub(crate) const INDEX_ABOVE: u32 = 8;
/// ... and drops them when it shrinks to this many.
pub(crate) const UNINDEX_AT: u32 = 2;

#[derive(Debug)]
struct Node {
    /// The region. Cleared when the slot is free.
    norm: Norm,
    /// Bucket list (`next` chains the free list while the slot is free).
    prev: u32,
    next: u32,
    /// Class list.
    class_prev: u32,
    class_next: u32,
    class: u8,
    /// `access_index`, or [`FREE`].
    access: u8,
}

/// The nodes of one (access, class).
#[derive(Clone, Copy, Debug)]
struct ClassList {
    head: u32,
    count: u32,
    /// Whether the nodes are also in buckets.
    indexed: bool,
}

const EMPTY_CLASS: ClassList = ClassList {
    head: NIL,
    count: 0,
    indexed: false,
};

/// All live borrows. Not synchronized itself: the process-wide instance sits behind a lock.
#[derive(Debug)]
pub(crate) struct Registry {
    nodes: Vec<Node>,
    free: u32,
    buckets: Table,
    classes: [[ClassList; CLASSES]; 2],
    /// Bit `c` set when class `c` of that access has live nodes.
    nonempty: [u32; 2],
    live: usize,
}

impl Registry {
    pub(crate) const fn new() -> Registry {
        Registry {
            nodes: Vec::new(),
            free: NIL,
            buckets: Table::new(),
            classes: [[EMPTY_CLASS; CLASSES]; 2],
            nonempty: [0; 2],
            live: 0,
        }
    }

    /// Number of live borrows.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Whether any exclusive borrow is live.
    #[inline]
    pub(crate) fn has_exclusive(&self) -> bool {
        self.nonempty[1] != 0
    }

    /// Registers `norm` with `access`, or reports the access of a conflicting live borrow.
    /// `max_work` bounds each pairwise overlap check.
    #[inline]
    pub(crate) fn insert(
        &mut self,
        norm: Norm,
        access: Access,
        max_work: u32,
    ) -> Result<u32, Access> {
        self.check(&norm, access, max_work)?;
        self.insert_unchecked(norm, access)
    }

    /// Registers `norm` without checking it (the caller just did, under the same lock).
    #[inline]
    pub(crate) fn insert_unchecked(&mut self, norm: Norm, access: Access) -> Result<u32, Access> {
        let a = access_index(access);
        let class = class_of(norm.last - norm.first);
        let slot = self
            .alloc(norm, class as u8, a as u8)
            .ok_or(Access::Exclusive)?;
        let list = &mut self.classes[a][class];
        let head = list.head;
        list.head = slot;
        list.count += 1;
        let indexed = list.indexed;
        self.nodes[slot as usize].class_next = head;
        if head != NIL {
            self.nodes[head as usize].class_prev = slot;
        }
        self.nonempty[a] |= 1 << class;
        self.live += 1;
        if indexed {
            self.link_bucket(slot);
        }
        Ok(slot)
    }

    /// The bucket key of live node `i`.
    #[inline]
    fn key_of(&self, i: u32) -> u64 {
        let n = &self.nodes[i as usize];
        let class = n.class as usize;
        bucket_key(class, n.norm.first >> shift_of(class), n.access as usize)
    }

    /// Puts live node `i` at the head of its bucket.
    fn link_bucket(&mut self, i: u32) {
        let key = self.key_of(i);
        let head = self.buckets.replace(key, i).unwrap_or(NIL);
        let n = &mut self.nodes[i as usize];
        n.prev = NIL;
        n.next = head;
        if head != NIL {
            self.nodes[head as usize].prev = i;
        }
    }

    /// Takes live node `i` out of its bucket.
    fn unlink_bucket(&mut self, i: u32) {
        let (prev, next) = (self.nodes[i as usize].prev, self.nodes[i as usize].next);
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        } else {
            let key = self.key_of(i);
            if next != NIL {
                self.buckets.set(key, next);
            } else {
                self.buckets.remove(key);
            }
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        }
    }

    /// Whether a borrow of `norm` with `access` would conflict with a live one (and with
    /// which access), without registering it. (Mutable only to build class indexes.)
    pub(crate) fn check(
        &mut self,
        norm: &Norm,
        access: Access,
        max_work: u32,
    ) -> Result<(), Access> {
        if self.find_conflict(1, norm, max_work) {
            return Err(Access::Exclusive);
        }
        if access == Access::Exclusive && self.find_conflict(0, norm, max_work) {
            return Err(Access::Shared);
        }
        Ok(())
    }

    /// Builds the buckets of class `class` of access index `a`.
    #[cold]
    fn index_class(&mut self, a: usize, class: usize) {
        self.classes[a][class].indexed = true;
        let mut i = self.classes[a][class].head;
        while i != NIL {
            self.link_bucket(i);
            i = self.nodes[i as usize].class_next;
        }
    }

    /// Unregisters the borrow in `slot`; returns its heap part, if any, so the caller can free
    /// it outside the lock (`Some(None)` when there is none), and whether it was exclusive.
    /// Unknown or free slots are ignored (`None`).
    pub(crate) fn remove(&mut self, slot: u32) -> Option<(Option<Vec<Dim>>, bool)> {
        let node = self.nodes.get(slot as usize)?;
        if node.access == FREE {
            return None;
        }
        let (a, class) = (node.access as usize, node.class as usize);
        let (cprev, cnext) = (node.class_prev, node.class_next);
        if self.classes[a][class].indexed {
            self.unlink_bucket(slot);
        }
        // Class list.
        if cprev != NIL {
            self.nodes[cprev as usize].class_next = cnext;
        } else {
            self.classes[a][class].head = cnext;
        }
        if cnext != NIL {
            self.nodes[cnext as usize].class_prev = cprev;
        }
        let list = &mut self.classes[a][class];
        list.count -= 1;
        let (count, indexed) = (list.count, list.indexed);
        if count == 0 {
            self.nonempty[a] &= !(1 << class);
        }
        if indexed && count <= UNINDEX_AT {
            self.classes[a][class].indexed = false;
            let mut i = self.classes[a][class].head;
            while i != NIL {
                self.unlink_bucket(i);
                i = self.nodes[i as usize].class_next;
            }
        }
        self.live -= 1;
        let node = &mut self.nodes[slot as usize];
        node.access = FREE;
        node.next = self.free;
        self.free = slot;
        let heap = match &mut node.norm.dims {
            Dims::Heap(v) => Some(std::mem::take(v)),
            Dims::Inline { .. } => None,
        };
        Some((heap, a == 1))
    }

    #[inline]
    fn alloc(&mut self, norm: Norm, class: u8, access: u8) -> Option<u32> {
        let node = Node {
            norm,
            prev: NIL,
            next: NIL,
            class_prev: NIL,
            class_next: NIL,
            class,
            access,
        };
        if self.free != NIL {
            let slot = self.free;
            self.free = self.nodes[slot as usize].next;
            self.nodes[slot as usize] = node;
            Some(slot)
        } else {
            // Slots are u32 with NIL reserved; four billion live borrows would exhaust memory
            // long before this refuses.
            let slot = u32::try_from(self.nodes.len()).ok().filter(|&s| s != NIL)?;
            self.nodes.push(node);
            Some(slot)
        }
    }

    /// Whether a live node of access index `a` overlaps `q` (undecided counts as overlap).
    #[inline]
    fn find_conflict(&mut self, a: usize, q: &Norm, max_work: u32) -> bool {
        let mut mask = self.nonempty[a];
        while mask != 0 {
            let class = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let list = self.classes[a][class];
            if !list.indexed
                && list.count > INDEX_ABOVE
                && class != HUGE
                && chunks(q, class) < u64::from(list.count)
            {
                self.index_class(a, class);
            }
            if self.class_conflict(a, class, q, max_work) {
                return true;
            }
        }
        false
    }

    fn class_conflict(&self, a: usize, class: usize, q: &Norm, max_work: u32) -> bool {
        let list = self.classes[a][class];
        if list.indexed && chunks(q, class) < u64::from(list.count) {
            let shift = shift_of(class);
            let lo = (q.first >> shift).saturating_sub(1);
            let hi = q.last >> shift;
            {
                for chunk in lo..=hi {
                    if let Some(head) = self.buckets.get(bucket_key(class, chunk, a)) {
                        if self.list_conflict(head, false, q, max_work) {
                            return true;
                        }
                    }
                }
                return false;
            }
        }
        self.list_conflict(list.head, true, q, max_work)
    }

    /// Walks a bucket list (`class_list == false`) or a class list from `i`.
    #[inline]
    fn list_conflict(&self, mut i: u32, class_list: bool, q: &Norm, max_work: u32) -> bool {
        while i != NIL {
            let n = &self.nodes[i as usize];
            if n.norm.last >= q.first
                && n.norm.first <= q.last
                && norm_overlap(q, &n.norm, max_work).conflicts()
            {
                return true;
            }
            i = if class_list { n.class_next } else { n.next };
        }
        false
    }

    /// Checks the structure's invariants (tests).
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        let mut seen = 0usize;
        let mut keys = std::collections::BTreeSet::new();
        for a in 0..2 {
            for class in 0..CLASSES {
                let list = self.classes[a][class];
                let mut count = 0u32;
                let mut prev = NIL;
                let mut i = list.head;
                while i != NIL {
                    let n = &self.nodes[i as usize];
                    assert_eq!((n.access as usize, n.class as usize), (a, class));
                    assert_eq!(n.class_prev, prev);
                    assert_eq!(class_of(n.norm.last - n.norm.first), class);
                    if list.indexed {
                        // Reachable from its bucket.
                        let key = bucket_key(class, n.norm.first >> shift_of(class), a);
                        keys.insert(key);
                        let mut j = self.buckets.get(key).expect("bucket of a live node");
                        assert_eq!(self.nodes[j as usize].prev, NIL);
                        while j != i {
                            j = self.nodes[j as usize].next;
                            assert_ne!(j, NIL, "node missing from its bucket");
                        }
                    }
                    prev = i;
                    i = n.class_next;
                    count += 1;
                }
                assert_eq!(count, list.count);
                assert!(!list.indexed || (class != HUGE && count > UNINDEX_AT));
                assert_eq!(self.nonempty[a] & (1 << class) != 0, count > 0);
                seen += count as usize;
            }
        }
        assert_eq!(seen, self.live);
        assert_eq!(
            keys.len(),
            self.buckets.len(),
            "buckets of unindexed classes"
        );
        let free = self.nodes.iter().filter(|n| n.access == FREE).count();
        assert_eq!(free + self.live, self.nodes.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_their_extents() {
        for span in [
            0u64,
            1,
            62,
            63,
            64,
            65,
            511,
            512,
            4095,
            1 << 40,
            (1 << 63) - 1,
        ] {
            let c = class_of(span);
            assert!(c < HUGE && span < (1u64 << shift_of(c)), "span {span}");
            if c > 0 {
                assert!(
                    span >= 1u64 << shift_of(c - 1),
                    "span {span} not in the smallest class"
                );
            }
        }
        assert_eq!(class_of(1 << 63), HUGE);
        assert_eq!(class_of(u64::MAX), HUGE);
    }

    fn point(first: u64, len: u64) -> Norm {
        super::super::overlap::normalize(first as usize, &[], &[], len as usize).unwrap()
    }

    #[test]
    fn classes_index_and_unindex_across_the_thresholds() {
        let mut reg = Registry::new();
        // 40 disjoint 8-byte borrows, 100 bytes apart (one class, many chunks), then back down
        let mut slots = Vec::new();
        for i in 0..40u64 {
            let slot = reg
                .insert(point(1 << 20 | (i * 100), 8), Access::Shared, 64)
                .unwrap();
            slots.push((i, slot));
            reg.check_invariants();
            // every live one is found, its neighbours' gaps are free
            for &(j, _) in &slots {
                assert_eq!(
                    reg.check(&point(1 << 20 | (j * 100 + 7), 1), Access::Exclusive, 64),
                    Err(Access::Shared)
                );
                assert_eq!(
                    reg.check(&point(1 << 20 | (j * 100 + 8), 92), Access::Exclusive, 64),
                    Ok(())
                );
            }
            // a large query among them finds them through the class list
            assert!(reg
                .check(&point(1 << 20, 1 << 16), Access::Exclusive, 64)
                .is_err());
            // the small queries above built the index once the class was large enough
            assert_eq!(reg.classes[0][0].indexed, slots.len() as u32 > INDEX_ABOVE);
            reg.check_invariants();
        }
        while let Some((_, slot)) = slots.pop() {
            assert!(reg.remove(slot).is_some());
            reg.check_invariants();
            for &(j, _) in &slots {
                assert!(reg
                    .check(&point(1 << 20 | (j * 100), 8), Access::Exclusive, 64)
                    .is_err());
            }
        }
        assert_eq!(reg.len(), 0);
        assert!(!reg.classes[0][0].indexed);
    }
}
