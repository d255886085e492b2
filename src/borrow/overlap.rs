//! Deciding whether two strided regions share a byte, and whether one region's elements share
//! bytes with each other.
//!
//! # The question as an equation
//!
//! An element of a region starts at `base + Σ s_k·x_k` (`0 ≤ x_k ≤ u_k`, `u_k = shape[k] − 1`)
//! and covers `itemsize` bytes. After [normalization](normalize) every stride is positive (a
//! negative stride moves the base to the other end), unit dimensions and zero strides are gone
//! (they add no byte), and dimensions whose elements touch or overlap their neighbours are
//! folded into a larger "item": a C-contiguous array becomes a single interval.
//!
//! Two regions `A` and `B` share a byte when some element start `pa` of `A` and `pb` of `B`
//! satisfy `−(isB − 1) ≤ pb − pa ≤ isA − 1`. Writing `pb − pa = t − (isB − 1)` and replacing
//! every `y_j` of `B` by `v_j − y_j` turns this into one linear equation with positive
//! coefficients and bounded non-negative unknowns:
//!
//! ```text
//! Σ a_i·x_i + Σ b_j·y_j + 1·t = B.last − A.first,    0 ≤ x_i ≤ u_i, 0 ≤ y_j ≤ v_j, 0 ≤ t ≤ isA + isB − 2
//! ```
//!
//! Deciding whether such a bounded linear Diophantine equation has a solution is NP-hard in
//! general (it contains subset sum), but the instances that come from real views are tiny and
//! structured. [`solve`] does a depth-first search over the unknowns, largest coefficient
//! first, and prunes with two exact facts at every level: the remaining right-hand side must
//! lie between 0 and the largest value the remaining terms can reach, and it must be a
//! multiple of the gcd of the remaining coefficients (so each unknown only steps through one
//! residue class). The last two unknowns are solved in closed form with the extended Euclidean
//! algorithm. Every visited candidate costs one unit of work; past a bound the answer is
//! [`Answer::Undecided`], which callers treat as "overlap" (the byte extents do intersect by
//! then). This is the approach of numpy's `shares_memory` (`mem_overlap.c`), written anew.
//!
//! Internal overlap (two *distinct* indices of one region touching a common byte) is the
//! equation `Σ s_k·d_k ∈ [−(is − 1), is − 1]` with `d ≠ 0`, `|d_k| ≤ u_k`. By symmetry the
//! first non-zero `d_k` can be taken positive, which splits the question into one ordinary
//! bounded equation per dimension. Cheap exact answers come first: a zero stride or a stride
//! smaller than the item (with two or more indices) overlaps; strides that each exceed the
//! extent of all smaller ones ("nested", every C/F-ordered view and its slices) do not.

/// Work bound of the registry's pairwise checks: the number of search candidates the solver
/// may visit before it gives up and answers [`Answer::Undecided`].
pub(crate) const MAX_WORK: u32 = 4096;

/// Answer of an overlap question.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// No byte is shared (exact).
    Disjoint,
    /// Some byte is shared (exact, or conservative for a region that cannot be described).
    Overlap,
    /// The work bound ran out before the solver decided.
    Undecided,
}

impl Answer {
    /// Whether the answer must be treated as overlap (`Overlap` or `Undecided`).
    pub(crate) fn conflicts(self) -> bool {
        self != Answer::Disjoint
    }
}

/// One dimension of a normalized region: positive byte stride and largest index (`≥ 1`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Dim {
    pub stride: u64,
    pub max_index: u64,
}

/// Inline capacity of [`Dims`]; normalization folds contiguous dimensions away, so real views
/// rarely keep more than two. Every borrow builds and moves a [`Norm`], so its size is on the
/// hot path: two inline dimensions instead of four took 26 instructions off `get` + `read()`.
const INLINE: usize = 2;

/// A small vector of dimensions: inline up to [`INLINE`], on the heap beyond.
#[derive(Clone, Debug)]
pub(crate) enum Dims {
    Inline { len: u8, dims: [Dim; INLINE] },
    Heap(Vec<Dim>),
}

impl Default for Dims {
    fn default() -> Self {
        Dims::Inline {
            len: 0,
            dims: [Dim::default(); INLINE],
        }
    }
}

impl Dims {
    #[inline]
    fn push(&mut self, dim: Dim) {
        match self {
            Dims::Inline { len, dims } => {
                if (*len as usize) < INLINE {
                    dims[*len as usize] = dim;
                    *len += 1;
                } else {
                    let mut v = Vec::with_capacity(2 * INLINE);
                    v.extend_from_slice(&dims[..]);
                    v.push(dim);
                    *self = Dims::Heap(v);
                }
            }
            Dims::Heap(v) => v.push(dim),
        }
    }

    #[inline]
    fn truncate(&mut self, new_len: usize) {
        match self {
            Dims::Inline { len, .. } => *len = (*len).min(new_len as u8),
            Dims::Heap(v) => v.truncate(new_len),
        }
    }

    #[inline]
    pub(crate) fn as_slice(&self) -> &[Dim] {
        match self {
            Dims::Inline { len, dims } => &dims[..*len as usize],
            Dims::Heap(v) => v,
        }
    }

    #[inline]
    fn as_mut_slice(&mut self) -> &mut [Dim] {
        match self {
            Dims::Inline { len, dims } => &mut dims[..*len as usize],
            Dims::Heap(v) => v,
        }
    }
}

/// The bytes a region touches, in canonical form (see the module docs).
#[derive(Clone, Debug, Default)]
pub(crate) struct Norm {
    /// First byte touched.
    pub first: u64,
    /// Last byte touched (inclusive, so the top of the address space is representable).
    pub last: u64,
    /// Bytes covered from each element start, after folding (`≥ 1`).
    pub itemsize: u64,
    /// Remaining dimensions, strides strictly increasing, each stride `> itemsize`.
    pub dims: Dims,
    /// The layout could not be described (overflowing extent, mismatched shape and strides):
    /// the region stands for every byte of `[first, last]` and overlaps whatever meets that.
    pub wild: bool,
}

impl Norm {
    /// The whole address space, conservatively.
    pub(crate) fn everything() -> Norm {
        Norm {
            first: 0,
            last: u64::MAX,
            itemsize: 1,
            dims: Dims::default(),
            wild: true,
        }
    }
}

/// Canonical form of a region's byte set; `None` when it touches no byte (a zero-length
/// dimension, or a zero item size).
pub(crate) fn normalize(
    ptr: usize,
    shape: &[usize],
    strides: &[isize],
    itemsize: usize,
) -> Option<Norm> {
    if shape.len() != strides.len() {
        return Some(Norm::everything());
    }
    if itemsize == 0 || shape.contains(&0) {
        return None;
    }
    // Fast paths for the hottest shapes: one element (item access) and one dimension.
    let item = itemsize as u64;
    let simple = match (shape, strides) {
        ([], []) => Some((ptr as u64, 0)),
        ([n], [s]) if *n == 1 || *s == 0 => Some((ptr as u64, 0)),
        ([n], [s]) if s.unsigned_abs() <= itemsize => {
            // contiguous or overlapping: one interval
            let ext = (s.unsigned_abs() as u64).checked_mul((n - 1) as u64);
            let first = if *s < 0 {
                ext.and_then(|e| (ptr as u64).checked_sub(e))
            } else {
                Some(ptr as u64)
            };
            first.zip(ext)
        }
        _ => None,
    };
    if let Some((first, ext)) = simple {
        let len = ext.checked_add(item);
        let last = len.and_then(|len| first.checked_add(len - 1));
        return Some(match (len, last) {
            (Some(len), Some(last)) => Norm {
                first,
                last,
                itemsize: len,
                dims: Dims::default(),
                wild: false,
            },
            _ => Norm::everything(),
        });
    }
    match describe(ptr as u64, shape, strides, itemsize as u64) {
        Some(norm) => Some(norm),
        None => Some(Norm::everything()),
    }
}

/// [`normalize`] for a non-empty region; `None` when some extent overflows the address space.
#[inline]
fn describe(ptr: u64, shape: &[usize], strides: &[isize], itemsize: u64) -> Option<Norm> {
    let mut span: u64 = 0;
    let mut below: u64 = 0;
    let mut dims = Dims::default();
    for (&n, &s) in shape.iter().zip(strides) {
        if n == 1 || s == 0 {
            continue;
        }
        let stride = s.unsigned_abs() as u64;
        let max_index = (n - 1) as u64;
        let ext = stride.checked_mul(max_index)?;
        span = span.checked_add(ext)?;
        if s < 0 {
            // A negative stride puts the first byte at the other end of the dimension.
            below += ext; // below ≤ span
        }
        dims.push(Dim { stride, max_index });
    }
    let first = ptr.checked_sub(below)?;
    let last = first.checked_add(span)?.checked_add(itemsize - 1)?;
    let mut itemsize = itemsize;
    let d = dims.as_mut_slice();
    // Sort by stride (insertion sort: a handful of entries).
    for i in 1..d.len() {
        let mut j = i;
        while j > 0 && d[j - 1].stride > d[j].stride {
            d.swap(j - 1, j);
            j -= 1;
        }
    }
    // Merge equal strides (index ranges add up) and exact multiplicative chains (stride
    // s·(u+1) after (s, u) continues the same progression). Every product below is bounded
    // by `span`, which fits.
    let mut out = 0usize;
    for i in 0..d.len() {
        let cur = d[i];
        if out > 0 {
            let prev = &mut d[out - 1];
            if prev.stride == cur.stride {
                prev.max_index += cur.max_index;
                continue;
            }
            if prev.stride.checked_mul(prev.max_index + 1) == Some(cur.stride) {
                if let Some(m) = (prev.max_index + 1).checked_mul(cur.max_index + 1) {
                    prev.max_index = m - 1;
                    continue;
                }
            }
        }
        d[out] = cur;
        out += 1;
    }
    // Fold leading dimensions whose elements touch their neighbours into the item.
    let mut skip = 0usize;
    while skip < out && d[skip].stride <= itemsize {
        itemsize = itemsize.checked_add(d[skip].stride * d[skip].max_index)?;
        skip += 1;
    }
    if skip > 0 {
        d.copy_within(skip..out, 0);
    }
    dims.truncate(out - skip);
    Some(Norm {
        first,
        last,
        itemsize,
        dims,
        wild: false,
    })
}

/// Whether two normalized regions share a byte, with at most `max_work` units of search.
pub(crate) fn norm_overlap(a: &Norm, b: &Norm, max_work: u32) -> Answer {
    if a.last < b.first || b.last < a.first {
        return Answer::Disjoint;
    }
    if a.wild || b.wild {
        return Answer::Overlap;
    }
    let (da, db) = (a.dims.as_slice(), b.dims.as_slice());
    if da.is_empty() && db.is_empty() {
        return Answer::Overlap;
    }
    let n = da.len() + db.len() + 1;
    let rhs = b.last - a.first; // ≥ 0: the extents meet
                                // Saturation is harmless: the solver caps every bound by rhs / coefficient.
    let t_bound = (a.itemsize - 1).saturating_add(b.itemsize - 1);
    with_terms(n, |terms| {
        for (term, d) in terms.iter_mut().zip(da.iter().chain(db)) {
            *term = Term::new(d.stride, d.max_index);
        }
        terms[n - 1] = Term::new(1, t_bound);
        solve(&mut terms[..n], rhs, &mut Budget::new(max_work))
    })
}

/// Whether two distinct indices of the region touch a common byte, with at most `max_work`
/// units of search.
pub(crate) fn internal_overlap(
    shape: &[usize],
    strides: &[isize],
    itemsize: usize,
    max_work: u32,
) -> Answer {
    if shape.len() != strides.len() {
        return Answer::Undecided;
    }
    if itemsize == 0 || shape.contains(&0) {
        return Answer::Disjoint;
    }
    let is = itemsize as u64;
    let mut dims = Dims::default();
    let mut span: u64 = 0;
    for (&n, &s) in shape.iter().zip(strides) {
        if n == 1 {
            continue;
        }
        let stride = s.unsigned_abs() as u64;
        if stride < is {
            // Includes zero strides: indices 0 and 1 of this dimension overlap.
            return Answer::Overlap;
        }
        let max_index = (n - 1) as u64;
        span = match stride
            .checked_mul(max_index)
            .and_then(|e| span.checked_add(e))
        {
            Some(v) => v,
            None => return Answer::Undecided,
        };
        dims.push(Dim { stride, max_index });
    }
    if span.checked_add(is).is_none() {
        return Answer::Undecided;
    }
    let d = dims.as_mut_slice();
    d.sort_unstable_by_key(|d| d.stride);
    // Nested strides: each stride reaches past everything the smaller ones span.
    let mut reach = is; // ≤ span + is, which fits
    let mut nested = true;
    for (i, dim) in d.iter().enumerate() {
        if i > 0 && d[i - 1].stride == dim.stride {
            // d = e_i − e_{i−1} addresses the same element start twice.
            return Answer::Overlap;
        }
        if dim.stride < reach {
            nested = false;
        }
        reach += dim.stride * dim.max_index;
    }
    if nested {
        return Answer::Disjoint;
    }
    // First non-zero d_k (in sorted order) is positive: d_k = 1 + x_k, d_j = x_j − u_j for
    // j > k, r = t − (is − 1); the equation Σ s·d = r becomes
    //   s_k·x_k + Σ_{j>k} s_j·x_j + t' = is − 1 − s_k + Σ_{j>k} s_j·u_j,   t' ∈ [0, 2·is − 2].
    let mut budget = Budget::new(max_work);
    let mut undecided = false;
    for k in 0..d.len() {
        let rest = &d[k + 1..];
        let total = rest
            .iter()
            .fold(is - 1, |acc, dim| acc + dim.stride * dim.max_index);
        let Some(rhs) = total.checked_sub(d[k].stride) else {
            continue; // even the extreme offsets of the rest cannot come back within an item
        };
        let n = rest.len() + 2;
        let answer = with_terms(n, |terms| {
            terms[0] = Term::new(d[k].stride, d[k].max_index - 1);
            for (term, dim) in terms[1..].iter_mut().zip(rest) {
                *term = Term::new(dim.stride, dim.max_index.saturating_mul(2));
            }
            terms[n - 1] = Term::new(1, (is - 1).saturating_mul(2));
            solve(&mut terms[..n], rhs, &mut budget)
        });
        match answer {
            Answer::Overlap => return Answer::Overlap,
            Answer::Undecided => undecided = true,
            Answer::Disjoint => {}
        }
    }
    if undecided {
        Answer::Undecided
    } else {
        Answer::Disjoint
    }
}

/// One term `a·x`, `0 ≤ x ≤ u`, of the equation, with the suffix facts the search prunes by.
#[derive(Clone, Copy, Debug, Default)]
struct Term {
    /// Coefficient (`> 0` once in the search).
    a: u64,
    /// Upper bound of the unknown.
    u: u64,
    /// gcd of the coefficients from this term on.
    g: u64,
    /// Largest value the terms from this one on can sum to (saturating).
    reach: u64,
}

impl Term {
    fn new(a: u64, u: u64) -> Term {
        Term {
            a,
            u,
            g: 0,
            reach: 0,
        }
    }
}

/// Remaining search work.
struct Budget(u32);

impl Budget {
    fn new(max_work: u32) -> Budget {
        Budget(max_work)
    }

    /// Takes one unit; `false` when none is left.
    fn spend(&mut self) -> bool {
        if self.0 == 0 {
            false
        } else {
            self.0 -= 1;
            true
        }
    }
}

/// Runs `f` on a scratch slice of at least `n` terms: on the stack when small.
fn with_terms<R>(n: usize, f: impl FnOnce(&mut [Term]) -> R) -> R {
    const STACK: usize = 10;
    if n <= STACK {
        let mut buf = [Term::default(); STACK];
        f(&mut buf[..])
    } else {
        let mut buf = vec![Term::default(); n];
        f(&mut buf)
    }
}

/// Whether `Σ a_k·x_k = rhs` has a solution with `0 ≤ x_k ≤ u_k` (terms with `a = 0` or
/// `u = 0` are ignored).
fn solve(terms: &mut [Term], rhs: u64, budget: &mut Budget) -> Answer {
    // Drop empty terms and cap bounds by what the right-hand side allows (this keeps every
    // product a·u ≤ rhs), sort by coefficient descending, merge equal coefficients.
    let mut n = 0;
    for i in 0..terms.len() {
        let mut t = terms[i];
        if t.a == 0 {
            continue;
        }
        t.u = t.u.min(rhs / t.a);
        if t.u == 0 {
            continue;
        }
        // insertion into the sorted prefix
        let mut j = n;
        while j > 0 && terms[j - 1].a < t.a {
            terms[j] = terms[j - 1];
            j -= 1;
        }
        if j > 0 && terms[j - 1].a == t.a {
            // merge, undoing the shift
            terms[j - 1].u = terms[j - 1].u.saturating_add(t.u).min(rhs / t.a);
            terms.copy_within(j + 1..n + 1, j);
            continue;
        }
        terms[j] = t;
        n += 1;
    }
    let terms = &mut terms[..n];
    if terms.is_empty() {
        return if rhs == 0 {
            Answer::Overlap
        } else {
            Answer::Disjoint
        };
    }
    let mut g = 0u64;
    let mut reach = 0u64;
    for t in terms.iter_mut().rev() {
        g = gcd(g, t.a);
        reach = reach.saturating_add(t.a * t.u); // a·u ≤ rhs
        t.g = g;
        t.reach = reach;
    }
    match search(terms, 0, rhs, budget) {
        Some(true) => Answer::Overlap,
        Some(false) => Answer::Disjoint,
        None => Answer::Undecided,
    }
}

/// Depth-first search from term `k` for the right-hand side `rhs`; `None` when out of work.
fn search(terms: &[Term], k: usize, rhs: u64, budget: &mut Budget) -> Option<bool> {
    let n = terms.len();
    let t = terms[k];
    // (A saturated reach is ≥ every u64, so the comparison stays exact.)
    if rhs > t.reach || rhs % t.g != 0 {
        return Some(false);
    }
    if k == n - 1 {
        return Some(rhs / t.a <= t.u);
    }
    let next = terms[k + 1];
    if k == n - 2 {
        return Some(two_terms(t.a, t.u, next.a, next.u, rhs));
    }
    // x must leave a remainder the rest can reach: rhs − a·x ∈ [0, next.reach] ...
    let lo = match rhs.checked_sub(next.reach) {
        Some(excess) => excess.div_ceil(t.a),
        None => 0,
    };
    let hi = (rhs / t.a).min(t.u);
    if lo > hi {
        return Some(false);
    }
    // ... that is a multiple of next.g: a·x ≡ rhs (mod next.g), one residue class mod `step`.
    let d = gcd(t.a, next.g);
    let step = next.g / d;
    let residue = if step == 1 {
        0
    } else {
        mul_mod((rhs / d) % step, mod_inverse((t.a / d) % step, step), step)
    };
    let mut x = first_at_least(lo, residue, step)?;
    while x <= hi {
        if !budget.spend() {
            return None;
        }
        if search(terms, k + 1, rhs - t.a * x, budget)? {
            return Some(true);
        }
        x = match x.checked_add(step) {
            Some(x) => x,
            None => break,
        };
    }
    Some(false)
}

/// The least `x ≥ lo` with `x ≡ residue (mod m)`, if it fits (`residue < m`).
fn first_at_least(lo: u64, residue: u64, m: u64) -> Option<u64> {
    lo.checked_add((residue + m - lo % m) % m)
}

/// Exact: whether `a·x + c·y = rhs` with `0 ≤ x ≤ u`, `0 ≤ y ≤ v` (`a, c > 0`, `c·v ≤ rhs`
/// or `v` large: the bounds were capped by `rhs`).
fn two_terms(a: u64, u: u64, c: u64, v: u64, rhs: u64) -> bool {
    let g = gcd(a, c);
    if rhs % g != 0 {
        return false;
    }
    let (a1, c1, r1) = (a / g, c / g, rhs / g);
    // x ≡ r1 · a1⁻¹ (mod c1)
    let residue = if c1 == 1 {
        0
    } else {
        mul_mod(r1 % c1, mod_inverse(a1 % c1, c1), c1)
    };
    let lo = match c.checked_mul(v).and_then(|cv| rhs.checked_sub(cv)) {
        Some(excess) => excess.div_ceil(a),
        None => 0,
    };
    let hi = (rhs / a).min(u);
    lo <= hi && first_at_least(lo, residue, c1).is_some_and(|x| x <= hi)
}

/// Binary gcd (`gcd(0, b) = b`).
fn gcd(mut a: u64, mut b: u64) -> u64 {
    if a == 0 {
        return b;
    }
    if b == 0 {
        return a;
    }
    let shift = (a | b).trailing_zeros();
    a >>= a.trailing_zeros();
    loop {
        b >>= b.trailing_zeros();
        if a > b {
            std::mem::swap(&mut a, &mut b);
        }
        b -= a;
        if b == 0 {
            return a << shift;
        }
    }
}

/// `x · y mod m` for `x, y < m`.
fn mul_mod(x: u64, y: u64, m: u64) -> u64 {
    ((x as u128 * y as u128) % m as u128) as u64
}

/// Inverse of `a` modulo `m` (`gcd(a, m) = 1`, `m > 1`).
fn mod_inverse(a: u64, m: u64) -> u64 {
    // Extended Euclid on (a, m), tracking only the coefficient of a (|s| ≤ m fits in i128).
    let (mut r0, mut r1) = (a, m);
    let (mut s0, mut s1) = (1i128, 0i128);
    while r1 != 0 {
        let q = r0 / r1;
        (r0, r1) = (r1, r0 - q * r1);
        (s0, s1) = (s1, s0 - q as i128 * s1);
    }
    s0.rem_euclid(m as i128) as u64
}
