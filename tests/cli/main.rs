//! The binary as a user runs it, one module a subject: `run` (exit codes,
//! environment overrides, signals), `check`, `init`, and the key, token and
//! certificate tools.

#[path = "../common/mod.rs"]
mod common;

mod check;
mod init;
mod keys;
mod run;
