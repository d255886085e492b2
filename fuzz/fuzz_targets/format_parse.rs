//! Fuzz target for the format parser: no panic for any input; whatever parses has a canonical
//! format (`to_format`) that parses again to a matching item of the same size, and the
//! one-scalar fast path agrees with the general parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pybuf::format::{parse, parse_general};

fuzz_target!(|data: &[u8]| {
    let Ok(format) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parse(format);
    assert_eq!(
        parsed,
        parse_general(format),
        "fast path disagrees on {format:?}"
    );
    match parsed {
        Ok(item) => {
            assert!(item.size <= pybuf::format::MAX_ITEM_SIZE);
            let canonical = item.to_format();
            let again = parse(&canonical)
                .unwrap_or_else(|e| panic!("{format:?} -> {canonical:?} does not parse: {e}"));
            assert_eq!(again.size, item.size, "{format:?} -> {canonical:?}");
            if let Err(m) = again.matches(&item) {
                panic!("{format:?} -> {canonical:?}: {m:?}\n{item:?}\n{again:?}");
            }
            let _ = item.describe();
        }
        Err(e) => {
            assert!(e.position <= format.len(), "{format:?}: {e}");
            let _ = e.to_string();
        }
    }
});
