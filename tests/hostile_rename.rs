//! Issue 12, finding 1, the long run: a few hundred thousand read-only errors built while a
//! Python thread renames the exporter's type (see `tests/rename_storm/mod.rs`; the short run
//! is in `tests/hostile.rs`, under valgrind in CI).

mod rename_storm;

#[test]
fn read_only_errors_name_a_coherent_type_during_a_long_rename_storm() {
    rename_storm::run(300, 1000);
}
