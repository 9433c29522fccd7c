//! `tokengate dev-cert`: DEVELOPMENT ONLY. Writes a throwaway local CA
//! (`ca.pem`) and a server certificate it signed (`server.pem`, with its key
//! in `server.key`) for `server.tls_cert` / `server.tls_key`, so TLS can be
//! tried on a laptop with `curl --cacert ca.pem`.
//!
//! The CA's private key is never written: it signs the one server
//! certificate and is dropped, so trusting `ca.pem` trusts that certificate
//! and nothing else anyone could mint later. Keys are ECDSA P-256 (rcgen's
//! default, on aws-lc-rs); `server.key` is PKCS#8, mode 0600 on unix.
//! Existing files are never replaced unless `force` is set.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// Printed on stderr on every run, and part of `--help`.
pub const DEVELOPMENT_ONLY: &str =
    "tokengate dev-cert is for DEVELOPMENT ONLY: a local test CA, not for production certificates";

/// The names a certificate gets when none are given.
pub const DEFAULT_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The three files, in the order they are written.
pub const FILES: [&str; 3] = ["ca.pem", "server.pem", "server.key"];

#[derive(Debug, thiserror::Error)]
pub enum DevCertError {
    #[error("{} exists; pass --force to replace it", .0.display())]
    Exists(PathBuf),
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("invalid name {0:?}: {1}")]
    Name(String, String),
    #[error("cannot generate the certificates: {0}")]
    Generate(String),
}

/// What was written.
#[derive(Debug)]
pub struct Written {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub names: Vec<String>,
}

/// The PEM texts of the CA certificate, server certificate and server key.
pub struct Generated {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Generates the CA and the server certificate for `names` (DNS names or
/// IP addresses, each becoming a subjectAltName of its kind).
pub fn generate(names: &[String]) -> Result<Generated, DevCertError> {
    let gen = |e: rcgen::Error| DevCertError::Generate(e.to_string());
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(gen)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.distinguished_name.push(
        DnType::CommonName,
        "tokengate dev-cert local CA (development only)",
    );
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(gen)?).map_err(gen)?;

    for name in names {
        check_name(name)?;
    }
    let mut params = CertificateParams::new(names.to_vec()).map_err(gen)?;
    if let Some(first) = names.first() {
        params
            .distinguished_name
            .push(DnType::CommonName, first.as_str());
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().map_err(gen)?;
    let cert = params.signed_by(&key, &ca).map_err(gen)?;
    Ok(Generated {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// An IP address, or a DNS name (RFC 1123 labels; `*.` only as the first
/// label), as a certificate's subjectAltName may hold it.
fn check_name(name: &str) -> Result<(), DevCertError> {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let bad = |why: &str| Err(DevCertError::Name(name.to_string(), why.to_string()));
    let host = name.strip_prefix("*.").unwrap_or(name);
    if host.is_empty() || name.len() > 253 {
        return bad("a DNS name is 1 to 253 characters");
    }
    for label in host.split('.') {
        let ok_chars = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if label.is_empty()
            || label.len() > 63
            || !ok_chars
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return bad("not an IP address or a DNS name (letters, digits and inner hyphens, dot-separated)");
        }
    }
    Ok(())
}

/// Writes `ca.pem`, `server.pem` and `server.key` into `dir` (created if
/// missing) for `names` (default [`DEFAULT_NAMES`]).
pub fn write(dir: &Path, names: &[String], force: bool) -> Result<Written, DevCertError> {
    let names: Vec<String> = match names.is_empty() {
        true => DEFAULT_NAMES.iter().map(|n| n.to_string()).collect(),
        false => names.to_vec(),
    };
    let paths = FILES.map(|f| dir.join(f));
    if !force {
        if let Some(existing) = paths.iter().find(|p| p.exists()) {
            return Err(DevCertError::Exists(existing.clone()));
        }
    }
    let generated = generate(&names)?;
    std::fs::create_dir_all(dir).map_err(|e| DevCertError::Io {
        path: dir.to_path_buf(),
        error: e,
    })?;
    let [ca, cert, key] = paths;
    write_file(&ca, &generated.ca_pem, false)?;
    write_file(&cert, &generated.cert_pem, false)?;
    write_file(&key, &generated.key_pem, true)?;
    Ok(Written {
        ca,
        cert,
        key,
        names,
    })
}

/// Writes `text` to `path`; a secret is created with mode 0600 and, when
/// replacing a file, set to 0600 before anything is written to it.
fn write_file(path: &Path, text: &str, secret: bool) -> Result<(), DevCertError> {
    use std::io::Write;
    let io = |error| DevCertError::Io {
        path: path.to_path_buf(),
        error,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
    }
    #[cfg(not(unix))]
    let _ = secret;
    file.write_all(text.as_bytes()).map_err(io)
}

/// What to do with the files: printed on stdout after writing them.
pub fn instructions(w: &Written) -> String {
    format!(
        "wrote {ca} (test CA), {cert} (server certificate for {names}) and {key} (its key)
Development only. In tokengate.toml:

  [server]
  tls_cert = \"{cert}\"
  tls_key = \"{key}\"

Then trust the test CA for this one request:

  curl --cacert {ca} https://localhost:8080/...
",
        ca = w.ca.display(),
        cert = w.cert.display(),
        key = w.key.display(),
        names = w.names.join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_rejects_invalid_names() {
        for bad in [
            "",
            "bad name",
            "ex\u{e4}mple.com",
            "a..b",
            "-a.test",
            "*",
            "a.*.test",
        ] {
            assert!(
                matches!(generate(&[bad.to_string()]), Err(DevCertError::Name(..))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn generate_accepts_dns_names_ips_and_wildcards() {
        let names = [
            "localhost",
            "127.0.0.1",
            "::1",
            "api.example.test",
            "*.example.test",
        ];
        generate(&names.map(String::from)).unwrap();
    }

    #[test]
    fn write_refuses_to_overwrite_without_force() {
        let dir = std::env::temp_dir().join(format!("tokengate-devcert-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = write(&dir, &[], false).unwrap();
        assert_eq!(first.names, DEFAULT_NAMES);
        let ca_before = std::fs::read(&first.ca).unwrap();
        assert!(matches!(
            write(&dir, &[], false),
            Err(DevCertError::Exists(_))
        ));
        assert_eq!(std::fs::read(&first.ca).unwrap(), ca_before);
        write(&dir, &["example.test".to_string()], true).unwrap();
        assert_ne!(std::fs::read(&first.ca).unwrap(), ca_before);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&first.key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
