//! Compile-fail tests: every broken bot definition under `tests/ui/<family>/` must fail to
//! compile with exactly the diagnostics in its `.stderr` snapshot.
//!
//! Bless with `TRYBUILD=overwrite cargo test --test ui`, then read the diff. The snapshots
//! are rustc 1.95's rendering; only that toolchain exists on our machines.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*/*.rs");
}
