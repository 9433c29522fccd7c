//! TLS client certificates for certificate-bound tokens (RFC 8705): a
//! self-signed certificate made with rcgen, its `x5t#S256` thumbprint, the
//! RFC 9440 `Client-Cert` header that hands it to the provider, and
//! HTTP/1.1 requests over TLS that present it (or none) to the gateway.

use super::*;
use common::client::{send_on, tls_connect};
use common::Pki;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpStream;

/// A self-signed client certificate and its private key.
pub(crate) struct ClientCert {
    der: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl ClientCert {
    /// A fresh key pair and a self-signed certificate for `cn`: the
    /// self-signed binding of RFC 8705 section 2.2, no CA involved.
    pub(crate) fn self_signed(cn: &str) -> ClientCert {
        let key = KeyPair::generate().expect("client key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.self_signed(&key).expect("client cert");
        ClientCert {
            der: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        }
    }

    /// `x5t#S256`: base64url (no padding) of SHA-256 over the DER
    /// certificate (RFC 8705 section 3.1).
    pub(crate) fn thumbprint(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.der.as_ref()))
    }

    /// The `Client-Cert` header value a TLS-terminating proxy sends for
    /// this certificate (RFC 9440 section 2.2: `:base64(DER):`).
    pub(crate) fn header_value(&self) -> String {
        format!(":{}:", STANDARD.encode(self.der.as_ref()))
    }
}

/// Trusts `pki`'s CA (the gateway's server certificate), speaks
/// HTTP/1.1, and presents `cert` when the server asks for one.
pub(crate) fn tls_client(pki: &Pki, cert: Option<&ClientCert>) -> Arc<rustls::ClientConfig> {
    let ca = CertificateDer::from_pem_file(pki.dir().join("ca.pem")).expect("ca.pem");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).expect("CA into root store");
    let builder = rustls::ClientConfig::builder_with_provider(tokengate::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let mut config = match cert {
        Some(cert) => builder
            .with_client_auth_cert(
                vec![cert.der.clone()],
                PrivateKeyDer::Pkcs8(cert.key.clone_key()),
            )
            .expect("client certificate and key"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Sends `req` to the gateway over a new TLS connection made with `config`.
pub(crate) async fn fetch_tls(
    gw: &Gateway,
    config: Arc<rustls::ClientConfig>,
    req: Request<common::Body>,
) -> Reply {
    let tcp = TcpStream::connect(gw.addr()).await.expect("connect");
    let tls = tls_connect(tcp, config).await;
    let authority = format!("localhost:{}", gw.addr().port());
    let resp = send_on(tls, false, "https", &authority, req)
        .await
        .expect("request over TLS");
    Reply::read(resp).await
}
