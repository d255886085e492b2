//! Unit tests that need a process of their own (process-wide state such as the release gate
//! or the static-name table): the visible test re-executes this test binary to run one
//! `#[ignore]`d child test alone.

use std::process::Command;

/// Runs the ignored unit test at `path` (`module::tests::name`) alone in a fresh process and
/// checks that it exited successfully and printed `marker`; returns its standard output.
pub(crate) fn run(path: &str, marker: &str) -> String {
    let exe = std::env::current_exe().expect("test binary path");
    let out = Command::new(exe)
        .args([
            path,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .expect("spawn child test process");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child {path} failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains(marker),
        "child {path} did not print {marker:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}
