//! The binary as a user runs it, one module a subject: `run` (exit codes,
//! environment overrides, signals), `check`, `init`, the key, token and
//! certificate tools, `service_manager` (systemd's `sd_notify`), and
//! `workers` (`server.worker_threads` above one).

#[path = "../common/mod.rs"]
mod common;

mod check;
mod init;
mod keys;
mod run;
mod service_manager;
mod workers;

use std::process::Output;

/// Asserts that the binary succeeded (`what` names the call); returns its
/// stdout.
fn assert_success(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Asserts that the binary exited 1 with `needle` in its stderr.
fn assert_exit_1_saying(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(needle), "{stderr}");
}
