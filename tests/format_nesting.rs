//! Deeply nested formats match in time proportional to their size.
use pybuf::format::parse;

#[test]
fn old_timing_probe() {
    for depth in [12usize, 14, 16, 18, 20] {
        let f = format!("{}B{}", "T{".repeat(depth), "}".repeat(depth));
        let item = parse(&f).unwrap();
        let t = std::time::Instant::now();
        let r = item.matches(&parse("B").unwrap());
        eprintln!("depth {depth}: {:?} {:?}", r, t.elapsed());
    }
}
