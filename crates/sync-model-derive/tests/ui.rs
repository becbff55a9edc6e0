//! trybuild tests: good uses compile, each misuse fails with a clear message.

/// The expected messages are rustc's as `cargo xtask ci` runs it: with clippy-driver as the
/// workspace's compiler wrapper, which trybuild's own build inherits and under which rustc
/// names types by their full paths (`sync_model::SyncMeta`, `std::string::String`). A plain
/// `cargo test` shortens them, so `fail/meta_wrong_type.rs` differs there; run the tests
/// through `cargo xtask test` or `ci`, or set `RUSTC_WORKSPACE_WRAPPER` to clippy-driver.
#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
