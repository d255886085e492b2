//! Fuzz target for the format parser and matcher: no panic for any input; whatever parses
//! has a canonical format (`to_format`) that parses again to a matching item of the same
//! size, matches itself, and the one-scalar fast path agrees with the general parser.
//!
//! Besides the input itself, the input without its first byte is checked wrapped in nested
//! structs, the first byte choosing how (see [`nested`]): up to `MAX_NESTING` levels of
//! unnamed or named one-field `T{}` and of sub-arrays, the shapes that made matching
//! exponential. Run with a time budget per input (`-timeout`, set by `scripts/fuzz.sh`), so a
//! slow input is reported as a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pybuf::format::{parse, parse_general, MAX_NESTING};

fuzz_target!(|data: &[u8]| {
    if let Ok(format) = std::str::from_utf8(data) {
        check(format);
    }
    if let Some((&control, rest)) = data.split_first() {
        if let Ok(inner) = std::str::from_utf8(rest) {
            check(&nested(control, inner));
        }
    }
});

/// `inner` wrapped in 1 to 64 levels (the low 6 bits of `control`) of one wrapper (the high 2
/// bits): an unnamed one-field struct `T{...}`, a named one `T{...:a:}`, a one-item sub-array
/// of a struct `(1)T{...}`, or a two-item one `(2)T{...}` on every 8th level and `(1)`
/// elsewhere.
fn nested(control: u8, inner: &str) -> String {
    let depth = usize::from(control & 0x3f) % MAX_NESTING + 1;
    let mut out = String::with_capacity(inner.len() + 8 * depth);
    for level in 0..depth {
        match control >> 6 {
            0 | 1 => out.push_str("T{"),
            2 => out.push_str("(1)T{"),
            _ if level % 8 == 0 => out.push_str("(2)T{"),
            _ => out.push_str("(1)T{"),
        }
    }
    out.push_str(inner);
    for _ in 0..depth {
        out.push_str(if control >> 6 == 1 { ":a:}" } else { "}" });
    }
    out
}

fn check(format: &str) {
    let parsed = parse(format);
    assert_eq!(
        parsed,
        parse_general(format),
        "fast path disagrees on {format:?}"
    );
    match parsed {
        Ok(item) => {
            assert!(item.size <= pybuf::format::MAX_ITEM_SIZE);
            if let Err(m) = item.matches(&item) {
                panic!("{format:?} does not match itself: {m:?}\n{item:?}");
            }
            let canonical = item.to_format();
            let again = parse(&canonical)
                .unwrap_or_else(|e| panic!("{format:?} -> {canonical:?} does not parse: {e}"));
            assert_eq!(again.size, item.size, "{format:?} -> {canonical:?}");
            if let Err(m) = again.matches(&item) {
                panic!("{format:?} -> {canonical:?}: {m:?}\n{item:?}\n{again:?}");
            }
            let _ = item.matches(&parse("B").expect("'B' parses"));
            if item.size <= 1 << 16 {
                // one range per gap: only for items of a size that memory can hold
                let padding = item.padding_ranges();
                assert!(padding
                    .iter()
                    .all(|r| r.start < r.end && r.end <= item.size));
            }
            let _ = item.describe();
        }
        Err(e) => {
            assert!(e.position <= format.len(), "{format:?}: {e}");
            let _ = e.to_string();
        }
    }
}
