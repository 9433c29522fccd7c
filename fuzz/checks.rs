//! Invariant checks shared by the fuzz targets (`fuzz/fuzz_targets/*.rs`) and
//! the corpus replay test (`tests/fuzz_corpus.rs`), so that every corpus file
//! is held to the same rules on stable as under libFuzzer.
//!
//! Each `check_<target>` takes the raw fuzz input, runs one parser on it and
//! panics when a rule of the parser's contract is broken. "Did not panic" is
//! the least of them: each check states what a result must look like.
//!
//! One submodule per target, each in `fuzz/checks/`: the `#[path]`s below
//! keep them found whichever file includes this one.

#[path = "checks/bearer.rs"]
mod bearer;
#[path = "checks/config.rs"]
mod config;
#[path = "checks/introspect.rs"]
mod introspect;
#[path = "checks/jwk.rs"]
mod jwk;
#[path = "checks/jws.rs"]
mod jws;
#[path = "checks/target.rs"]
mod target;

// Each fuzz target includes this file and calls one of these.
#[allow(unused_imports)]
pub use bearer::check_bearer;
#[allow(unused_imports)]
pub use config::check_config;
#[allow(unused_imports)]
pub use introspect::check_introspect;
#[allow(unused_imports)]
pub use jwk::check_jwk;
#[allow(unused_imports)]
pub use jws::check_jws;
#[allow(unused_imports)]
pub use target::check_target;

use std::path::Path;
use std::sync::OnceLock;

use tokengate::config::{Config, IssuerConfig, JwtRules};

/// The time every claim check runs at.
pub(super) const NOW: f64 = 1_700_000_000.0;

/// The token length limit of the bearer check: small, so the fuzzer reaches it.
pub(super) const MAX_TOKEN_BYTES: usize = 200;

/// Issuer, audiences and claim names of the fixed configs below.
pub(super) const ISSUER: &str = "https://idp.example.com/";
pub(super) const AUDIENCES: [&str; 2] = ["api", "api2"];
pub(super) const SCOPE_CLAIMS: [&str; 2] = ["scope", "scp"];

pub(super) fn fixed_config(profile: &str) -> Config {
    let text = format!(
        r#"
[upstreams.a]
url = "http://127.0.0.1:1"
[issuers.i]
issuer = "{ISSUER}"
jwks_uri = "https://idp.example.com/jwks"
audiences = ["api", "api2"]
profile = "{profile}"
leeway_s = 30
[issuers.i.introspection]
endpoint = "https://idp.example.com/introspect"
client_id = "gateway"
client_secret = "secret"
"#
    );
    match Config::from_toml(&text, Path::new("."), Vec::new()) {
        Ok(c) => c,
        Err(e) => panic!("the fixed fuzz config does not load: {e:?}"),
    }
}

/// The fixed issuers: index 0 `generic`, index 1 `rfc9068`, same values.
pub(super) fn issuers() -> &'static [IssuerConfig; 2] {
    static ISSUERS: OnceLock<[IssuerConfig; 2]> = OnceLock::new();
    ISSUERS.get_or_init(|| {
        [
            fixed_config("generic").issuers.remove(0),
            fixed_config("rfc9068").issuers.remove(0),
        ]
    })
}

/// The JWT rules of a fixed issuer (both have a key source).
pub(super) fn jwt(issuer: &IssuerConfig) -> &JwtRules {
    match &issuer.jwt {
        Some(rules) => rules,
        None => panic!("the fixed fuzz issuer has no key source"),
    }
}
