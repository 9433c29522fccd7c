//! TLS client certificates for certificate-bound tokens (RFC 8705): a
//! client's leaf certificate, self-signed or issued by a test CA, its
//! `x5t#S256` thumbprint (computed here with `sha2`, independently of the
//! gateway), its RFC 9440 `Client-Cert` header value, and a rustls client
//! that presents it.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rcgen::{
    date_time_ymd, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, KeyPair,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;

use super::mint::b64;
use super::Pki;

/// A client certificate with its private key, and the certificates the
/// client sends after it (its issuer's, for an issued certificate).
pub struct ClientCert {
    der: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    chain: Vec<CertificateDer<'static>>,
}

impl ClientCert {
    /// A self-signed certificate for `cn` (RFC 8705 section 2.2).
    pub fn self_signed(cn: &str) -> ClientCert {
        let key = KeyPair::generate().expect("client key");
        let cert = params(cn).self_signed(&key).expect("client cert");
        ClientCert {
            der: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
            chain: Vec::new(),
        }
    }

    /// A self-signed certificate for `cn` that expired in 2001 and names
    /// no extended key usage: nothing a certificate verifier would accept.
    pub fn self_signed_expired(cn: &str) -> ClientCert {
        let key = KeyPair::generate().expect("client key");
        let mut params = params(cn);
        params.extended_key_usages = Vec::new();
        params.not_before = date_time_ymd(2000, 1, 1);
        params.not_after = date_time_ymd(2001, 1, 1);
        let cert = params.self_signed(&key).expect("client cert");
        ClientCert {
            der: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
            chain: Vec::new(),
        }
    }

    /// A certificate for `cn` issued by `ca` (RFC 8705 section 2.1); the
    /// client sends `ca`'s certificate after it.
    pub fn issued_by(ca: &CertifiedIssuer<'static, KeyPair>, cn: &str) -> ClientCert {
        let key = KeyPair::generate().expect("client key");
        let cert = params(cn).signed_by(&key, ca).expect("client cert");
        ClientCert {
            der: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
            chain: vec![ca.der().clone()],
        }
    }

    /// The certificate's DER.
    pub fn der(&self) -> &[u8] {
        self.der.as_ref()
    }

    /// `cnf["x5t#S256"]`: base64url(SHA-256(DER)), without padding.
    pub fn x5t_s256(&self) -> String {
        x5t_s256(self.der())
    }

    /// The `cnf` claim binding a token to this certificate.
    pub fn cnf(&self) -> Value {
        json!({ "x5t#S256": self.x5t_s256() })
    }

    /// The RFC 9440 `Client-Cert` value: `:base64(DER):`.
    pub fn header_value(&self) -> String {
        format!(":{}:", STANDARD.encode(self.der()))
    }

    /// A client trusting `pki`'s CA that presents this certificate (and
    /// its chain), offering `alpn`.
    pub fn client_config(&self, pki: &Pki, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca()).expect("CA into root store");
        let mut config = rustls::ClientConfig::builder_with_provider(tokengate::tls::provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(
                std::iter::once(self.der.clone())
                    .chain(self.chain.iter().cloned())
                    .collect(),
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )
            .expect("client certificate and key");
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// base64url(SHA-256(`der`)), without padding: the `x5t#S256` of any
/// certificate.
pub fn x5t_s256(der: &[u8]) -> String {
    b64(Sha256::digest(der))
}

/// A client certificate's parameters: common name `cn`, for client
/// authentication.
fn params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
}
