//! A small open-addressing hash map from `u64` keys to `u32` values, for the registry's
//! buckets.
//!
//! Linear probing over a power-of-two array, at most half full, with backward-shift deletion
//! (no tombstones, so lookups stay short however many keys come and go). `const`
//! constructible, so the process-wide registry needs no lazy initialization. It allocates only
//! when it grows; it never shrinks (its size follows the peak number of live buckets).

/// The key no entry can have (the registry's keys never set all 64 bits).
pub(crate) const EMPTY: u64 = u64::MAX;

#[derive(Clone, Copy, Debug)]
struct Entry {
    key: u64,
    value: u32,
}

const VACANT: Entry = Entry {
    key: EMPTY,
    value: 0,
};

#[derive(Debug)]
pub(crate) struct Table {
    entries: Vec<Entry>,
    len: usize,
    /// `64 − log2(capacity)`: the shift that turns a 64-bit hash into an index.
    shift: u32,
}

#[inline]
fn hash(key: u64, shift: u32) -> usize {
    // Fibonacci hashing: the top bits of a multiplication by 2^64/φ spread consecutive keys
    // (neighbouring chunks) over the table.
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift) as usize
}

impl Table {
    pub(crate) const fn new() -> Table {
        Table {
            entries: Vec::new(),
            len: 0,
            shift: 64,
        }
    }

    /// Number of keys.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn mask(&self) -> usize {
        self.entries.len() - 1
    }

    /// The value of `key`, if present.
    #[inline]
    pub(crate) fn get(&self, key: u64) -> Option<u32> {
        debug_assert_ne!(key, EMPTY);
        if self.len == 0 {
            return None;
        }
        let mask = self.mask();
        let mut i = hash(key, self.shift);
        loop {
            let e = self.entries[i];
            if e.key == key {
                return Some(e.value);
            }
            if e.key == EMPTY {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// Sets `key` to `value` (inserting it if absent).
    pub(crate) fn set(&mut self, key: u64, value: u32) {
        self.replace(key, value);
    }

    /// Sets `key` to `value` (inserting it if absent) and returns the value it had, in one
    /// probe.
    #[inline]
    pub(crate) fn replace(&mut self, key: u64, value: u32) -> Option<u32> {
        debug_assert_ne!(key, EMPTY);
        if (self.len + 1) * 2 > self.entries.len() {
            self.grow();
        }
        let mask = self.mask();
        let mut i = hash(key, self.shift);
        loop {
            let e = &mut self.entries[i];
            if e.key == key {
                return Some(std::mem::replace(&mut e.value, value));
            }
            if e.key == EMPTY {
                *e = Entry { key, value };
                self.len += 1;
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// Removes `key` if present.
    pub(crate) fn remove(&mut self, key: u64) {
        if self.len == 0 {
            return;
        }
        let mask = self.mask();
        let mut i = hash(key, self.shift);
        loop {
            let e = self.entries[i];
            if e.key == EMPTY {
                return;
            }
            if e.key == key {
                break;
            }
            i = (i + 1) & mask;
        }
        // Backward shift: move later entries of the probe run into the hole when their home
        // slot does not lie (cyclically) strictly after the hole.
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let e = self.entries[j];
            if e.key == EMPTY {
                break;
            }
            let home = hash(e.key, self.shift);
            // `e` may move to `hole` unless its home is in (hole, j] cyclically.
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.entries[hole] = e;
                hole = j;
            }
        }
        self.entries[hole] = VACANT;
        self.len -= 1;
    }

    fn grow(&mut self) {
        let capacity = (self.entries.len() * 2).max(16);
        let old = std::mem::replace(&mut self.entries, vec![VACANT; capacity]);
        self.shift = 64 - capacity.trailing_zeros();
        self.len = 0;
        for e in old {
            if e.key != EMPTY {
                self.set(e.key, e.value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// Agrees with std's map under any sequence of sets and removes (keys drawn from a
        /// small range so that probe runs collide and wrap).
        #[test]
        fn matches_std_map(ops in proptest::collection::vec((0u64..64, any::<u32>(), any::<bool>()), 0..400)) {
            let mut t = Table::new();
            let mut m = HashMap::new();
            for (k, v, del) in ops {
                let key = k.wrapping_mul(0x1000_0001);
                if del {
                    t.remove(key);
                    m.remove(&key);
                } else {
                    prop_assert_eq!(t.replace(key, v), m.insert(key, v));
                }
                prop_assert_eq!(t.len(), m.len());
                for k in 0..64u64 {
                    let key = k.wrapping_mul(0x1000_0001);
                    prop_assert_eq!(t.get(key), m.get(&key).copied());
                }
            }
        }
    }
}
