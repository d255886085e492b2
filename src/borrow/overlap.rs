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
/// rarely keep more than two.
const INLINE: usize = 4;

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

    fn truncate(&mut self, new_len: usize) {
        match self {
            Dims::Inline { len, .. } => *len = (*len).min(new_len as u8),
            Dims::Heap(v) => v.truncate(new_len),
        }
    }

    pub(crate) fn as_slice(&self) -> &[Dim] {
        match self {
            Dims::Inline { len, dims } => &dims[..*len as usize],
            Dims::Heap(v) => v,
        }
    }

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
    pub itemsize: u128,
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

    /// A single byte (used for opaque keys).
    pub(crate) fn point(addr: u64) -> Norm {
        Norm {
            first: addr,
            last: addr,
            itemsize: 1,
            dims: Dims::default(),
            wild: false,
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
    let mut base = ptr as i128;
    let mut span: i128 = 0;
    let mut dims = Dims::default();
    for (&n, &s) in shape.iter().zip(strides) {
        if n == 1 || s == 0 {
            continue;
        }
        let u = (n - 1) as u64;
        // |s| ≤ 2^63 and u < 2^64, so the product is below 2^127 and fits.
        let ext = (s.unsigned_abs() as i128) * (u as i128);
        if s < 0 {
            // A negative stride puts the first byte at the other end of the dimension.
            base = match base.checked_sub(ext) {
                Some(v) => v,
                None => return Some(Norm::everything()),
            };
        }
        span = match span.checked_add(ext) {
            Some(v) => v,
            None => return Some(Norm::everything()),
        };
        dims.push(Dim {
            stride: s.unsigned_abs() as u64,
            max_index: u,
        });
    }
    let last = match base
        .checked_add(span)
        .and_then(|v| v.checked_add(itemsize as i128 - 1))
    {
        Some(v) => v,
        None => return Some(Norm::everything()),
    };
    if base < 0 || last > u64::MAX as i128 {
        return Some(Norm::everything());
    }
    let mut itemsize = itemsize as u128;
    // Sort by stride (insertion sort: a handful of entries).
    let d = dims.as_mut_slice();
    for i in 1..d.len() {
        let mut j = i;
        while j > 0 && d[j - 1].stride > d[j].stride {
            d.swap(j - 1, j);
            j -= 1;
        }
    }
    // Merge equal strides (index ranges add up) and exact multiplicative chains
    // (stride s·(u+1) after (s, u) continues the same progression).
    let mut out = 0usize;
    for i in 0..d.len() {
        let cur = d[i];
        if out > 0 {
            let prev = &mut d[out - 1];
            if prev.stride == cur.stride {
                prev.max_index += cur.max_index;
                continue;
            }
            // All values stay below the (checked) extent, hence below 2^64.
            if (prev.stride as u128) * (prev.max_index as u128 + 1) == cur.stride as u128 {
                prev.max_index =
                    ((prev.max_index as u128 + 1) * (cur.max_index as u128 + 1) - 1) as u64;
                continue;
            }
        }
        d[out] = cur;
        out += 1;
    }
    // Fold leading dimensions whose elements touch their neighbours into the item.
    let mut skip = 0usize;
    while skip < out && (d[skip].stride as u128) <= itemsize {
        itemsize += d[skip].stride as u128 * d[skip].max_index as u128;
        skip += 1;
    }
    if skip > 0 {
        d.copy_within(skip..out, 0);
    }
    dims.truncate(out - skip);
    Some(Norm {
        first: base as u64,
        last: last as u64,
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
    if a.dims.as_slice().is_empty() && b.dims.as_slice().is_empty() {
        return Answer::Overlap;
    }
    let (da, db) = (a.dims.as_slice(), b.dims.as_slice());
    let n = da.len() + db.len() + 1;
    let rhs = b.last as i128 - a.first as i128;
    let t_bound = a.itemsize as i128 + b.itemsize as i128 - 2;
    let fill = |terms: &mut [Term]| -> usize {
        let mut k = 0;
        for d in da.iter().chain(db) {
            terms[k] = Term::new(d.stride as i128, d.max_index as i128);
            k += 1;
        }
        terms[k] = Term::new(1, t_bound);
        k + 1
    };
    with_terms(n, |terms| {
        let len = fill(terms);
        solve(&mut terms[..len], rhs, &mut Budget::new(max_work))
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
    let mut dims = Dims::default();
    let mut span: i128 = 0;
    for (&n, &s) in shape.iter().zip(strides) {
        if n == 1 {
            continue;
        }
        if s.unsigned_abs() < itemsize {
            // Includes zero strides: indices 0 and 1 of this dimension overlap.
            return Answer::Overlap;
        }
        let u = (n - 1) as u64;
        span = match span.checked_add(s.unsigned_abs() as i128 * u as i128) {
            Some(v) => v,
            None => return Answer::Undecided,
        };
        dims.push(Dim {
            stride: s.unsigned_abs() as u64,
            max_index: u,
        });
    }
    if span > u64::MAX as i128 {
        return Answer::Undecided;
    }
    let d = dims.as_mut_slice();
    d.sort_unstable_by_key(|d| d.stride);
    // Nested strides: each stride reaches past everything the smaller ones span.
    let mut acc = itemsize as i128;
    let mut nested = true;
    for (i, dim) in d.iter().enumerate() {
        if i > 0 && d[i - 1].stride == dim.stride {
            // d = e_i − e_{i−1} addresses the same element start twice.
            return Answer::Overlap;
        }
        if (dim.stride as i128) < acc {
            nested = false;
        }
        acc += dim.stride as i128 * dim.max_index as i128;
    }
    if nested {
        return Answer::Disjoint;
    }
    // First non-zero d_k (in sorted order) is positive: d_k = 1 + x_k, d_j = x_j − u_j for
    // j > k, r = t − (is − 1); the equation Σ s·d = r becomes
    //   s_k·x_k + Σ_{j>k} s_j·x_j + t' = is − 1 − s_k + Σ_{j>k} s_j·u_j,   t' ∈ [0, 2·is − 2].
    let is = itemsize as i128;
    let mut budget = Budget::new(max_work);
    let mut undecided = false;
    for k in 0..d.len() {
        let rest = &d[k + 1..];
        let mut rhs = is - 1 - d[k].stride as i128;
        for dim in rest {
            rhs += dim.stride as i128 * dim.max_index as i128;
        }
        let n = rest.len() + 2;
        let answer = with_terms(n, |terms| {
            terms[0] = Term::new(d[k].stride as i128, d[k].max_index as i128 - 1);
            for (i, dim) in rest.iter().enumerate() {
                terms[i + 1] = Term::new(dim.stride as i128, 2 * dim.max_index as i128);
            }
            terms[n - 1] = Term::new(1, 2 * is - 2);
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
    a: i128,
    /// Upper bound of the unknown.
    u: i128,
    /// gcd of the coefficients from this term on.
    g: i128,
    /// Largest value the terms from this one on can sum to.
    reach: i128,
}

impl Term {
    fn new(a: i128, u: i128) -> Term {
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
    const STACK: usize = 12;
    if n <= STACK {
        let mut buf = [Term::default(); STACK];
        f(&mut buf[..])
    } else {
        let mut buf = vec![Term::default(); n];
        f(&mut buf)
    }
}

/// Whether `Σ a_k·x_k = rhs` has a solution with `0 ≤ x_k ≤ u_k` (terms with `a ≤ 0` or `u ≤ 0`
/// are ignored; every `a` must be `≤ 2^63`).
fn solve(terms: &mut [Term], rhs: i128, budget: &mut Budget) -> Answer {
    if rhs < 0 {
        return Answer::Disjoint;
    }
    // Drop empty terms, cap bounds by what the right-hand side allows (this keeps every
    // product a·u ≤ rhs), sort by coefficient descending, merge equal coefficients.
    let mut n = 0;
    for i in 0..terms.len() {
        let mut t = terms[i];
        if t.a <= 0 || t.u <= 0 {
            continue;
        }
        t.u = t.u.min(rhs / t.a);
        if t.u == 0 {
            continue;
        }
        terms[n] = t;
        n += 1;
    }
    let terms = &mut terms[..n];
    terms.sort_unstable_by_key(|t| std::cmp::Reverse(t.a));
    let mut m = 0;
    for i in 0..n {
        if m > 0 && terms[m - 1].a == terms[i].a {
            let merged = (terms[m - 1].u + terms[i].u).min(rhs / terms[i].a);
            terms[m - 1].u = merged;
        } else {
            terms[m] = terms[i];
            m += 1;
        }
    }
    let terms = &mut terms[..m];
    if terms.is_empty() {
        return if rhs == 0 {
            Answer::Overlap
        } else {
            Answer::Disjoint
        };
    }
    let mut g = 0i128;
    let mut reach = 0i128;
    for t in terms.iter_mut().rev() {
        g = gcd(g, t.a);
        reach += t.a * t.u; // each product ≤ rhs < 2^66, at most 130 of them
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
fn search(terms: &[Term], k: usize, rhs: i128, budget: &mut Budget) -> Option<bool> {
    let n = terms.len();
    if k == n {
        return Some(rhs == 0);
    }
    let t = terms[k];
    if rhs < 0 || rhs > t.reach || rhs % t.g != 0 {
        return Some(false);
    }
    if k == n - 1 {
        return Some(rhs / t.a <= t.u);
    }
    if k == n - 2 {
        let s = terms[k + 1];
        return Some(two_terms(t.a, t.u, s.a, s.u, rhs));
    }
    let next = terms[k + 1];
    // x must leave a remainder the rest can reach: rhs − a·x ∈ [0, next.reach] ...
    let lo = ceil_div(rhs - next.reach, t.a).max(0);
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
        mul_mod(
            (rhs / d).rem_euclid(step),
            mod_inverse((t.a / d).rem_euclid(step), step),
            step,
        )
    };
    let mut x = lo + (residue - lo).rem_euclid(step);
    while x <= hi {
        if !budget.spend() {
            return None;
        }
        if search(terms, k + 1, rhs - t.a * x, budget)? {
            return Some(true);
        }
        x += step;
    }
    Some(false)
}

/// Exact: whether `a·x + c·y = rhs` with `0 ≤ x ≤ u`, `0 ≤ y ≤ v` (`a, c > 0`).
fn two_terms(a: i128, u: i128, c: i128, v: i128, rhs: i128) -> bool {
    let g = gcd(a, c);
    if rhs % g != 0 {
        return false;
    }
    let (a1, c1, r1) = (a / g, c / g, rhs / g);
    // x ≡ r1 · a1⁻¹ (mod c1)
    let residue = if c1 == 1 {
        0
    } else {
        mul_mod(r1.rem_euclid(c1), mod_inverse(a1.rem_euclid(c1), c1), c1)
    };
    let lo = ceil_div(rhs - c * v, a).max(0);
    let hi = (rhs / a).min(u);
    if lo > hi {
        return false;
    }
    lo + (residue - lo).rem_euclid(c1) <= hi
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.abs()
}

fn ceil_div(p: i128, q: i128) -> i128 {
    -((-p).div_euclid(q))
}

/// `x · y mod m` for `0 ≤ x, y < m ≤ 2^63` (the product fits in 127 bits).
fn mul_mod(x: i128, y: i128, m: i128) -> i128 {
    (x * y).rem_euclid(m)
}

/// Inverse of `a` modulo `m` (`gcd(a, m) = 1`, `m > 1`).
fn mod_inverse(a: i128, m: i128) -> i128 {
    // Extended Euclid on (a, m), tracking only the coefficient of a.
    let (mut r0, mut r1) = (a, m);
    let (mut s0, mut s1) = (1i128, 0i128);
    while r1 != 0 {
        let q = r0 / r1;
        (r0, r1) = (r1, r0 - q * r1);
        (s0, s1) = (s1, s0 - q * s1);
    }
    s0.rem_euclid(m)
}
