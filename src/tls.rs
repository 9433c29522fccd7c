//! rustls configuration: the server side (PEM certificate chain and key,
//! ALPN `h2` then `http/1.1`, and optionally a request for a client
//! certificate, RFC 8705) and the client side used for https upstreams,
//! key-set and introspection fetches (webpki roots plus an optional extra
//! CA file).
//!
//! Client certificates are asked for, never required: a certificate only
//! ever proves the binding of a token (`cnf["x5t#S256"]`), so a client
//! without one still completes the handshake. With `tls_client_ca` a
//! presented certificate must chain to it (rustls' webpki verifier); without
//! it any certificate is accepted (RFC 8705 section 2.2, self-signed
//! binding), though its handshake signature is still checked.
//!
//! Every config is built with the aws-lc-rs provider passed explicitly, so
//! nothing depends on which provider happens to be the process default;
//! [`install_default_provider`] also installs it process-wide, once.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::UnixTime;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use crate::config::{ClientCertAuth, ClientCerts};

/// The one crypto provider of the process: aws-lc-rs.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

/// Installs aws-lc-rs as the process-wide default; later calls do nothing.
pub fn install_default_provider() {
    let _ = CryptoProvider::install_default((*provider()).clone());
}

/// The server config for `cert` and `key` (PEM) asking for client
/// certificates as `client_certs` says; the error is the configuration key
/// at fault and the reason.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_certs: &ClientCerts,
) -> Result<Arc<rustls::ServerConfig>, (&'static str, String)> {
    let verifier = client_verifier(client_certs).map_err(|e| ("server.tls_client_ca", e))?;
    server_config_with(cert, key, verifier).map_err(|e| ("server.tls_cert", e))
}

fn server_config_with(
    cert: &Path,
    key: &Path,
    verifier: Arc<dyn ClientCertVerifier>,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read certificates: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid PEM certificate: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in the file".into());
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("cannot read private key: {e}"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate and key do not form a usable pair: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The verifier `tls_client_auth` and `tls_client_ca` ask for.
fn client_verifier(c: &ClientCerts) -> Result<Arc<dyn ClientCertVerifier>, String> {
    if c.tls == ClientCertAuth::None {
        return Ok(WebPkiClientVerifier::no_client_auth());
    }
    let Some(ca) = &c.ca else {
        return Ok(Arc::new(AnyClientCert));
    };
    let mut roots = rustls::RootCertStore::empty();
    add_pem_roots(&mut roots, ca)?;
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| format!("client CA in {}: {e}", ca.display()))
}

/// Asks for a certificate, accepts any (or none), and checks only that the
/// client holds its key (the handshake signature).
#[derive(Debug)]
struct AnyClientCert;

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &provider().signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// base64url (no padding) of the SHA-256 of a certificate's DER: the form
/// of `cnf["x5t#S256"]` (RFC 8705 section 3.1).
pub fn cert_thumbprint(der: &[u8]) -> String {
    use base64::Engine;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// Adds every certificate of the PEM file `path` as a trust anchor; at
/// least one is required.
fn add_pem_roots(roots: &mut rustls::RootCertStore, path: &Path) -> Result<(), String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid PEM in {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", path.display()));
    }
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("unusable CA certificate in {}: {e}", path.display()))?;
    }
    Ok(())
}

/// A client config trusting the webpki roots plus the certificates in `ca_file`.
pub fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        add_pem_roots(&mut roots, path)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}
