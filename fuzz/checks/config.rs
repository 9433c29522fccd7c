//! Configuration loading: any TOML input either loads or is refused with
//! errors, never a panic.

use std::path::Path;

use tokengate::config::Config;
use tokengate::target::{normalize_host, normalize_path};

/// Input: a configuration file (TOML).
pub fn check_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let base = Path::new("fuzz-config-base-that-does-not-exist");
    let first = Config::from_toml(text, base, Vec::new());
    let second = Config::from_toml(text, base, Vec::new());
    // Loading is a function of the text.
    assert_eq!(
        format!("{first:?}"),
        format!("{second:?}"),
        "two loads differ"
    );
    let config = match first {
        Ok(c) => c,
        Err(errors) => {
            assert!(!errors.0.is_empty(), "refused without a reason");
            return;
        }
    };
    let sorted = |names: Vec<&str>| names.windows(2).all(|w| w[0] < w[1]);
    assert!(sorted(
        config.issuers.iter().map(|i| i.name.as_str()).collect()
    ));
    assert!(sorted(
        config.upstreams.iter().map(|u| u.name.as_str()).collect()
    ));
    for (i, issuer) in config.issuers.iter().enumerate() {
        assert!(!issuer.audiences.is_empty(), "issuer without audiences");
        assert!(!issuer.issuer.is_empty(), "issuer without an issuer value");
        assert!(
            config.issuers[..i]
                .iter()
                .all(|e| e.issuer != issuer.issuer),
            "two issuers with one issuer value"
        );
        assert!(issuer.jwt.is_some() || issuer.introspection.is_some());
    }
    for route in &config.routes {
        assert!(route.upstream < config.upstreams.len());
        assert!(route.issuers.iter().all(|&i| i < config.issuers.len()));
        assert!(route.path.as_str().starts_with('/'));
        if let Some(host) = &route.host {
            assert_eq!(
                normalize_host(host).as_deref(),
                Ok(host.as_str()),
                "route host"
            );
        }
        if let Some(prefix) = &route.strip_prefix {
            assert_eq!(normalize_path(prefix).as_deref(), Ok(prefix.as_str()));
        }
        assert!(route.methods.as_ref().is_none_or(|m| !m.is_empty()));
    }
}
