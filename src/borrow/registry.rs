//! The table of live borrows: an interval treap per kind of borrow, keyed by byte extent.
//!
//! Every live borrow is one node of an arena (`Vec<Node>`, freed slots chained into a free
//! list, so a steady state allocates nothing). Nodes are linked into one of four treaps —
//! {address, opaque} × {shared, exclusive} — ordered by `(first byte, slot)` and augmented with
//! the largest last byte of each subtree, the classic interval tree: the borrows whose extent
//! meets a query extent are found in `O(log n + k)` expected time. A shared request only
//! searches the exclusive treap of its kind (shared never conflicts with shared), an exclusive
//! request searches both; each extent hit is then checked exactly by
//! [`norm_overlap`](super::overlap::norm_overlap).

use crate::error::Access;

use super::overlap::{norm_overlap, Dim, Dims, Norm};

/// "No node".
pub(crate) const NIL: u32 = u32::MAX;

/// Which treap a node lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Described by addresses.
    Address,
    /// Described by an opaque key (conflicts only with the same key).
    Opaque,
}

fn tree_index(kind: Kind, access: Access) -> usize {
    (kind as usize) * 2 + (access == Access::Exclusive) as usize
}

#[derive(Debug)]
struct Node {
    /// The region; a point for opaque keys. Cleared when the slot is free.
    norm: Norm,
    /// Largest `norm.last` in this subtree.
    max_last: u64,
    left: u32,
    /// Right child; the next free slot while the slot is free.
    right: u32,
    prio: u32,
    tree: u8,
}

/// All live borrows. Not synchronized itself: the process-wide instance sits in a mutex.
#[derive(Debug)]
pub(crate) struct Registry {
    nodes: Vec<Node>,
    free: u32,
    roots: [u32; 4],
    live: usize,
    rng: u32,
}

impl Registry {
    pub(crate) const fn new() -> Registry {
        Registry {
            nodes: Vec::new(),
            free: NIL,
            roots: [NIL; 4],
            live: 0,
            rng: 0x9E37_79B9,
        }
    }

    /// Number of live borrows.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Registers `norm` with `access`, or reports the access of a conflicting live borrow.
    /// `max_work` bounds each pairwise overlap check.
    pub(crate) fn insert(
        &mut self,
        norm: Norm,
        kind: Kind,
        access: Access,
        max_work: u32,
    ) -> Result<u32, Access> {
        self.check(&norm, kind, access, max_work)?;
        let tree = tree_index(kind, access);
        let slot = self.alloc(norm, tree as u8).ok_or(Access::Exclusive)?;
        self.roots[tree] = self.insert_at(self.roots[tree], slot);
        self.live += 1;
        Ok(slot)
    }

    /// Whether a borrow of `norm` with `access` would conflict with a live one (and with
    /// which access), without registering it.
    pub(crate) fn check(
        &self,
        norm: &Norm,
        kind: Kind,
        access: Access,
        max_work: u32,
    ) -> Result<(), Access> {
        let excl = self.roots[tree_index(kind, Access::Exclusive)];
        if self.find_conflict(excl, norm, max_work) {
            return Err(Access::Exclusive);
        }
        if access == Access::Exclusive {
            let shared = self.roots[tree_index(kind, Access::Shared)];
            if self.find_conflict(shared, norm, max_work) {
                return Err(Access::Shared);
            }
        }
        Ok(())
    }

    /// Unregisters the borrow in `slot`; returns its heap part, if any, so the caller can free
    /// it outside the lock (`Some(None)` when there is none). Unknown or free slots are
    /// ignored (`None`).
    pub(crate) fn remove(&mut self, slot: u32) -> Option<Option<Vec<Dim>>> {
        let node = self.nodes.get(slot as usize)?;
        let tree = node.tree as usize;
        if tree >= self.roots.len() {
            return None; // free slot
        }
        self.roots[tree] = self.remove_at(self.roots[tree], slot);
        self.live -= 1;
        let node = &mut self.nodes[slot as usize];
        node.tree = u8::MAX;
        node.left = NIL;
        node.right = self.free;
        self.free = slot;
        Some(match &mut node.norm.dims {
            Dims::Heap(v) => Some(std::mem::take(v)),
            Dims::Inline { .. } => None,
        })
    }

    fn alloc(&mut self, norm: Norm, tree: u8) -> Option<u32> {
        // xorshift32: priorities only need to look random to keep the treap balanced.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        let max_last = norm.last;
        if self.free != NIL {
            let slot = self.free;
            let node = &mut self.nodes[slot as usize];
            self.free = node.right;
            *node = Node {
                norm,
                max_last,
                left: NIL,
                right: NIL,
                prio: x,
                tree,
            };
            Some(slot)
        } else {
            // Slots are u32 with NIL reserved; four billion live borrows would exhaust memory
            // long before this refuses.
            let slot = u32::try_from(self.nodes.len()).ok().filter(|&s| s != NIL)?;
            self.nodes.push(Node {
                norm,
                max_last,
                left: NIL,
                right: NIL,
                prio: x,
                tree,
            });
            Some(slot)
        }
    }

    #[inline]
    fn key(&self, i: u32) -> (u64, u32) {
        (self.nodes[i as usize].norm.first, i)
    }

    #[inline]
    fn max_last(&self, i: u32) -> u64 {
        if i == NIL {
            0
        } else {
            self.nodes[i as usize].max_last
        }
    }

    #[inline]
    fn update(&mut self, i: u32) {
        let n = &self.nodes[i as usize];
        let m = n
            .norm
            .last
            .max(self.max_last(n.left))
            .max(self.max_last(n.right));
        self.nodes[i as usize].max_last = m;
    }

    fn rotate_right(&mut self, i: u32) -> u32 {
        let l = self.nodes[i as usize].left;
        self.nodes[i as usize].left = self.nodes[l as usize].right;
        self.nodes[l as usize].right = i;
        self.update(i);
        self.update(l);
        l
    }

    fn rotate_left(&mut self, i: u32) -> u32 {
        let r = self.nodes[i as usize].right;
        self.nodes[i as usize].right = self.nodes[r as usize].left;
        self.nodes[r as usize].left = i;
        self.update(i);
        self.update(r);
        r
    }

    fn insert_at(&mut self, root: u32, new: u32) -> u32 {
        if root == NIL {
            return new;
        }
        let root = if self.key(new) < self.key(root) {
            let l = self.insert_at(self.nodes[root as usize].left, new);
            self.nodes[root as usize].left = l;
            if self.nodes[l as usize].prio > self.nodes[root as usize].prio {
                return self.rotate_right(root);
            }
            root
        } else {
            let r = self.insert_at(self.nodes[root as usize].right, new);
            self.nodes[root as usize].right = r;
            if self.nodes[r as usize].prio > self.nodes[root as usize].prio {
                return self.rotate_left(root);
            }
            root
        };
        self.update(root);
        root
    }

    fn remove_at(&mut self, root: u32, slot: u32) -> u32 {
        if root == NIL {
            return NIL;
        }
        if root == slot {
            let (l, r) = (
                self.nodes[root as usize].left,
                self.nodes[root as usize].right,
            );
            return self.merge(l, r);
        }
        if self.key(slot) < self.key(root) {
            let l = self.remove_at(self.nodes[root as usize].left, slot);
            self.nodes[root as usize].left = l;
        } else {
            let r = self.remove_at(self.nodes[root as usize].right, slot);
            self.nodes[root as usize].right = r;
        }
        self.update(root);
        root
    }

    /// Joins two treaps whose keys are all ordered `a < b`.
    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.nodes[a as usize].prio > self.nodes[b as usize].prio {
            let r = self.merge(self.nodes[a as usize].right, b);
            self.nodes[a as usize].right = r;
            self.update(a);
            a
        } else {
            let l = self.merge(a, self.nodes[b as usize].left);
            self.nodes[b as usize].left = l;
            self.update(b);
            b
        }
    }

    /// Whether a node of the treap at `root` overlaps `q` (undecided counts as overlap).
    fn find_conflict(&self, root: u32, q: &Norm, max_work: u32) -> bool {
        if root == NIL {
            return false;
        }
        let n = &self.nodes[root as usize];
        if n.max_last < q.first {
            return false;
        }
        if self.find_conflict(n.left, q, max_work) {
            return true;
        }
        if n.norm.first > q.last {
            // Everything to the right starts later still.
            return false;
        }
        if n.norm.last >= q.first && norm_overlap(q, &n.norm, max_work).conflicts() {
            return true;
        }
        self.find_conflict(n.right, q, max_work)
    }

    /// Checks the treap invariants (tests).
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        fn walk(
            r: &Registry,
            i: u32,
            lo: Option<(u64, u32)>,
            hi: Option<(u64, u32)>,
        ) -> (usize, u64) {
            if i == NIL {
                return (0, 0);
            }
            let n = &r.nodes[i as usize];
            let k = r.key(i);
            assert!(lo.is_none_or(|lo| lo < k) && hi.is_none_or(|hi| k < hi));
            for c in [n.left, n.right] {
                if c != NIL {
                    assert!(r.nodes[c as usize].prio <= n.prio, "heap order");
                }
            }
            let (cl, ml) = walk(r, n.left, lo, Some(k));
            let (cr, mr) = walk(r, n.right, Some(k), hi);
            assert_eq!(n.max_last, n.norm.last.max(ml).max(mr), "max_last");
            (cl + cr + 1, n.max_last)
        }
        let total: usize = self
            .roots
            .iter()
            .map(|&root| walk(self, root, None, None).0)
            .sum();
        assert_eq!(total, self.live);
    }
}
