//! The [`Builder`] every table's conversion writes into: it collects
//! errors under their dotted key paths and converts the common value kinds
//! (durations, counts, addresses, files, URLs the gateway fetches). A leaf
//! of `config`: the table conversions depend on it, never the reverse.
//!
//! Also the one rule for URLs the gateway fetches from ([`fetch_scheme`]):
//! https, or http only to a loopback host.

use http::Uri;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{ConfigError, ConfigErrors};

/// Collects errors while converting; `key` paths are dotted TOML paths.
pub(super) struct Builder<'a> {
    errors: Vec<ConfigError>,
    base_dir: &'a Path,
}

impl<'a> Builder<'a> {
    /// Relative file paths resolve against `base_dir`.
    pub(super) fn new(base_dir: &'a Path) -> Self {
        Builder {
            errors: Vec::new(),
            base_dir,
        }
    }

    /// `value` if no error was recorded, every error otherwise.
    pub(super) fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(self.errors))
        }
    }

    pub(super) fn err(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(ConfigError::new(key, reason));
    }

    /// A duration in milliseconds or seconds that must be at least `min`.
    pub(super) fn duration(&mut self, key: &str, value: u64, unit: Duration, min: u64) -> Duration {
        if value < min {
            self.err(key, format!("must be at least {min}"));
        }
        unit.checked_mul(u32::try_from(value).unwrap_or(u32::MAX))
            .unwrap_or(Duration::MAX)
    }

    pub(super) fn ms(&mut self, key: &str, value: u64) -> Duration {
        self.duration(key, value, Duration::from_millis(1), 1)
    }

    pub(super) fn secs(&mut self, key: &str, value: u64, min: u64) -> Duration {
        self.duration(key, value, Duration::from_secs(1), min)
    }

    pub(super) fn count(&mut self, key: &str, value: u64, min: u64, max: u64) -> usize {
        if value < min || value > max {
            self.err(key, format!("must be between {min} and {max}"));
        }
        usize::try_from(value.clamp(min, max)).unwrap_or(usize::MAX)
    }

    pub(super) fn addr(&mut self, key: &str, value: &str) -> SocketAddr {
        value.parse().unwrap_or_else(|_| {
            self.err(key, format!("{value:?} is not an address:port"));
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    }

    /// A file path, resolved against the config file's directory; must exist.
    pub(super) fn file(&mut self, key: &str, value: &str) -> PathBuf {
        let path = self.base_dir.join(value);
        if !path.is_file() {
            self.err(key, format!("file {} does not exist", path.display()));
        }
        path
    }

    pub(super) fn required<'s>(&mut self, key: &str, value: &'s Option<String>) -> &'s str {
        match value.as_deref() {
            Some(v) if !v.is_empty() => v,
            _ => {
                self.err(key, "is required");
                ""
            }
        }
    }

    /// A required http(s) URL the gateway fetches from (see
    /// [`Builder::fetch_url`]).
    pub(super) fn required_fetch_url(&mut self, key: &str, value: &Option<String>) -> Uri {
        let text = self.required(key, value).to_string();
        if text.is_empty() {
            Uri::default()
        } else {
            self.fetch_url(key, &text)
        }
    }

    /// An http(s) URL the gateway fetches from, under [`fetch_scheme`].
    pub(super) fn fetch_url(&mut self, key: &str, value: &str) -> Uri {
        match value.parse::<Uri>() {
            Ok(uri) if uri.host().is_some() => {
                if let Err(reason) = fetch_scheme(&uri) {
                    self.err(key, reason);
                }
                uri
            }
            _ => {
                self.err(key, format!("{value:?} is not an absolute URL"));
                Uri::default()
            }
        }
    }
}

/// The rule for every URL the gateway fetches from (key sets, discovery
/// documents, introspection endpoints, and the key-set URL a discovery
/// document names): https, or http only to a loopback host, so that
/// credentials and keys never cross a network in the clear.
pub fn fetch_scheme(uri: &Uri) -> Result<(), &'static str> {
    let loopback = uri.host().is_some_and(is_loopback_host);
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if loopback => Ok(()),
        Some("http") => Err("must use https (http only for loopback hosts)"),
        _ => Err("must be an https URL"),
    }
}

/// `localhost`, 127.0.0.0/8 and `::1` (brackets allowed).
fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_scheme_table() {
        let cases = [
            ("https://idp.example.com/jwks", true),
            ("https://127.0.0.1/jwks", true),
            ("http://127.0.0.1:9000/jwks", true),
            ("http://127.9.9.9/jwks", true),
            ("http://localhost/jwks", true),
            ("http://LOCALHOST/jwks", true),
            ("http://[::1]:80/jwks", true),
            ("http://idp.example.com/jwks", false),
            ("http://10.0.0.1/jwks", false),
            ("http://localhost.example.com/jwks", false),
            ("ftp://127.0.0.1/jwks", false),
        ];
        for (url, ok) in cases {
            let uri: Uri = url.parse().expect("uri");
            assert_eq!(fetch_scheme(&uri).is_ok(), ok, "{url}");
        }
    }
}
