//! The measured rows and their Markdown table: instructions per operation for each
//! implementation, and pybuf's count divided by each peer's.

use std::fmt::Write as _;

/// Who implements a measured variant. Every row has at most one of each.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Imp {
    /// `PyObject_GetBuffer` + `PyBuffer_Release` on a stack `Py_buffer` (the floor).
    Raw,
    /// `pyo3::buffer::PyBuffer<T>`.
    PyO3,
    /// rust-numpy (`PyReadonlyArray`, `PyReadwriteArray`).
    RustNumpy,
    /// Indexing an `ndarray` view that is already held.
    View,
    /// This crate.
    Pybuf,
}

impl Imp {
    /// The peers, in column order (pybuf's column follows them).
    pub const PEERS: [Imp; 4] = [Imp::Raw, Imp::PyO3, Imp::RustNumpy, Imp::View];

    fn column(self) -> &'static str {
        match self {
            Imp::Raw => "raw CPython",
            Imp::PyO3 => "PyO3",
            Imp::RustNumpy => "rust-numpy",
            Imp::View => "ndarray view",
            Imp::Pybuf => "pybuf",
        }
    }

    /// The name in a ratio's column header.
    fn short(self) -> &'static str {
        match self {
            Imp::Raw => "raw",
            Imp::View => "view",
            other => other.column(),
        }
    }
}

/// One operation and its measured variants: instructions per operation, `None` when the
/// run was not counted (native smoke run).
pub struct Row {
    pub op: String,
    pub cells: Vec<(Imp, Option<f64>)>,
}

impl Row {
    fn get(&self, imp: Imp) -> Option<f64> {
        self.cells
            .iter()
            .find(|(i, _)| *i == imp)
            .and_then(|(_, v)| *v)
    }

    fn has(&self, imp: Imp) -> bool {
        self.cells.iter().any(|(i, _)| *i == imp)
    }
}

/// `1,285` for counts of 100 and more, one decimal below (`21.0`).
fn count(x: f64) -> String {
    if x < 100.0 {
        format!("{x:.1}")
    } else {
        thousands(x.round() as usize)
    }
}

/// `100000` → `"100,000"`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (k, ch) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// The Markdown table: one column per implementation that appears in some row, then
/// pybuf ÷ each peer that appears. Cells that were not measured are `–`.
pub fn table(rows: &[Row]) -> String {
    let peers: Vec<Imp> = Imp::PEERS
        .into_iter()
        .filter(|&p| rows.iter().any(|r| r.has(p)))
        .collect();
    let mut s = String::from("| operation |");
    for &p in &peers {
        let _ = write!(s, " {} |", p.column());
    }
    s.push_str(" pybuf |");
    for &p in &peers {
        let _ = write!(s, " pybuf ÷ {} |", p.short());
    }
    s.push_str("\n|---|");
    s.push_str(&"---:|".repeat(2 * peers.len() + 1));
    s.push('\n');
    for row in rows {
        let _ = write!(s, "| {} |", row.op);
        let cell = |imp: Imp| match row.get(imp) {
            Some(x) => count(x),
            None => "–".to_string(),
        };
        for &p in &peers {
            let _ = write!(s, " {} |", cell(p));
        }
        let _ = write!(s, " {} |", cell(Imp::Pybuf));
        for &p in &peers {
            let ratio = match (row.get(Imp::Pybuf), row.get(p)) {
                (Some(ours), Some(theirs)) if theirs > 0.0 => format!("{:.2}", ours / theirs),
                _ => "–".to_string(),
            };
            let _ = write!(s, " {ratio} |");
        }
        s.push('\n');
    }
    s
}
