//! Replays every checked-in fuzz corpus (`fuzz/corpus/<target>/`) through the
//! same invariant checks the fuzz targets run, so a regression on any input
//! the fuzzer ever kept is caught by a plain `cargo test`, without nightly.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

/// Every fuzz target; each has a replay test below.
const TARGETS: [&str; 6] = ["bearer", "jws", "jwk", "target", "introspect", "config"];

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) => panic!("corpus of {target} missing ({}): {e}", dir.display()),
    };
    let mut files: Vec<_> = entries
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("cannot list the corpus of {target}: {e}"));
    files.retain(|p| p.is_file());
    files.sort();
    assert!(!files.is_empty(), "corpus of {target} is empty");
    for file in &files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(
            outcome.is_ok(),
            "{target}: {} breaks an invariant (replay it with `cargo +nightly fuzz run {target} <file>`)",
            file.display()
        );
    }
}

#[test]
fn corpus_bearer_holds_its_invariants() {
    replay("bearer", checks::check_bearer);
}

#[test]
fn corpus_jws_holds_its_invariants() {
    replay("jws", checks::check_jws);
}

#[test]
fn corpus_jwk_holds_its_invariants() {
    replay("jwk", checks::check_jwk);
}

#[test]
fn corpus_target_holds_its_invariants() {
    replay("target", checks::check_target);
}

#[test]
fn corpus_introspect_holds_its_invariants() {
    replay("introspect", checks::check_introspect);
}

#[test]
fn corpus_config_holds_its_invariants() {
    replay("config", checks::check_config);
}

#[test]
fn every_fuzz_target_has_a_replayed_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        assert!(
            TARGETS.contains(&name),
            "fuzz target {name} has no corpus replay"
        );
    }
}
