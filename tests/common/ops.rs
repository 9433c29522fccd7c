//! Fixtures for the operations tests: a gateway whose configuration lives
//! in a file that tests rewrite and reload ([`FileGateway`]), a parsed
//! `/metrics` scrape ([`Scrape`]), and a CA that issues distinguishable
//! server certificates ([`TestCa`]) for certificate replacement.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use tokengate::config::{Config, ConfigErrors};
use tokengate::gateway::{self, Listeners};
use tokengate::runtime::{self, Runtime, SharedRuntime};

use super::client::tls_connect;
use super::{request, within, Body, Client, Reply};

/// Writes `text` to `path` atomically (a temporary file, then a rename), so
/// a config watcher never reads a half-written file.
pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write temporary file");
    std::fs::rename(&tmp, path).expect("rename into place");
}

/// The real gateway serving `DIR/tokengate.toml`, built the way the binary
/// builds it (`Config::load`, `Runtime::build`, `gateway::serve`), with the
/// shared runtime exposed so a test can call [`reload::reload`].
///
/// The `listen` keys are ignored: the gateway (and, when the file has
/// `[admin]`, the admin listener) are bound on ephemeral loopback ports.
pub struct FileGateway {
    dir: TempDir,
    path: PathBuf,
    shared: SharedRuntime,
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl FileGateway {
    /// Writes `toml` into a new temporary directory and serves it.
    pub async fn start(toml: &str) -> FileGateway {
        FileGateway::start_in(tempfile::tempdir().expect("tempdir"), toml).await
    }

    /// Writes `toml` as `tokengate.toml` into `dir` (whose other files the
    /// configuration may name relatively) and serves it.
    pub async fn start_in(dir: TempDir, toml: &str) -> FileGateway {
        tokengate::tls::install_default_provider();
        let path = dir.path().join("tokengate.toml");
        write_atomic(&path, toml);
        let config = Config::load(&path)
            .unwrap_or_else(|e| panic!("invalid test config:\n{e}\n---\n{toml}"));
        let (listeners, addr, admin_addr) = super::bind_listeners(&config).await;
        let rt = Runtime::build(config).unwrap_or_else(|e| panic!("runtime: {e}"));
        let shared = runtime::shared(rt);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(gateway::serve(shared.clone(), listeners, async move {
            let _ = stopped.await;
        }));
        FileGateway {
            dir,
            path,
            shared,
            addr,
            admin_addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The configuration file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn shared(&self) -> &SharedRuntime {
        &self.shared
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin listener's address; panics when the file had no `[admin]`.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
            .expect("the test config has no [admin] table")
    }

    /// Replaces the configuration file (atomically); does not reload.
    pub fn write(&self, toml: &str) {
        write_atomic(&self.path, toml);
    }

    /// `reload::reload` of the file, as SIGHUP does.
    pub async fn reload(&self) -> Result<(), ConfigErrors> {
        tokengate::reload::reload(&self.shared, &self.path).await
    }

    /// [`FileGateway::write`], then [`FileGateway::reload`].
    pub async fn write_and_reload(&self, toml: &str) -> Result<(), ConfigErrors> {
        self.write(toml);
        self.reload().await
    }

    /// Issuers that cannot verify tokens yet in the current snapshot.
    pub fn not_ready(&self) -> Vec<(String, &'static str)> {
        self.shared.load().not_ready()
    }

    /// `GET path` over HTTP/1.1 on a new connection.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(&Client::h1(), request("GET", path)).await
    }

    pub async fn send(&self, client: &Client, req: http::Request<Body>) -> Reply {
        client.fetch(self.addr, req).await
    }

    /// `GET path` over HTTP/1.1 with `Authorization: Bearer token`.
    pub async fn call(&self, path: &str, token: &str) -> Reply {
        self.send(&Client::h1(), super::bearer(path, token)).await
    }

    /// Scrapes the admin listener's `/metrics`.
    pub async fn scrape(&self) -> Scrape {
        scrape(self.admin_addr()).await
    }
}

impl Drop for FileGateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            // The drain finishes in the background; the test runtime ends it.
            drop(task);
        }
    }
}

/// One sample of a Prometheus text page: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A parsed `/metrics` page.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub text: String,
    pub samples: Vec<Sample>,
}

/// `GET /metrics` on an admin listener: asserts 200 and the Prometheus
/// text content type, and parses every sample line.
pub async fn scrape(admin: SocketAddr) -> Scrape {
    let reply = Client::h1().fetch(admin, request("GET", "/metrics")).await;
    assert_eq!(reply.status, 200, "/metrics status");
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain") && content_type.contains("version=0.0.4"),
        "Prometheus text content type: {content_type:?}"
    );
    let text = String::from_utf8(reply.body.to_vec()).expect("UTF-8 metrics page");
    Scrape::parse(&text)
}

impl Scrape {
    /// Parses Prometheus text exposition (comments skipped); panics on a
    /// malformed sample line.
    pub fn parse(text: &str) -> Scrape {
        let samples = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| parse_sample(l).unwrap_or_else(|| panic!("malformed sample line: {l:?}")))
            .collect();
        Scrape {
            text: text.to_string(),
            samples,
        }
    }

    /// Samples named `name` whose labels include every pair of `labels`.
    pub fn find<'a>(&'a self, name: &'a str, labels: &'a [(&str, &str)]) -> Vec<&'a Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
            .collect()
    }

    /// The sum of [`Scrape::find`]; 0 when there is no such sample.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels).iter().map(|s| s.value).sum()
    }

    /// Whether some sample is named `name` and has `labels`.
    pub fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        !self.find(name, labels).is_empty()
    }

    /// The `# TYPE` the page declares for `family`.
    pub fn kind(&self, family: &str) -> Option<&str> {
        self.text.lines().find_map(|l| {
            let rest = l.strip_prefix("# TYPE ")?;
            let (name, kind) = rest.split_once(' ')?;
            (name == family).then_some(kind.trim())
        })
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices();
        let mut key = String::new();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '}' => break i,
                ',' | ' ' => {}
                '=' => {
                    let (_, quote) = chars.next()?;
                    if quote != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        let (_, c) = chars.next()?;
                        match c {
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            '"' => break,
                            other => value.push(other),
                        }
                    }
                    labels.push((std::mem::take(&mut key), value));
                }
                other => key.push(other),
            }
        };
        rest = &inner[end + 1..];
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// A test CA issuing server certificates for `localhost` and 127.0.0.1,
/// each with its own common name and serial number.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A server certificate and its key.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

impl TestCa {
    pub fn new() -> TestCa {
        TestCa {
            issuer: super::pki::self_signed_ca("tokengate ops test CA"),
        }
    }

    /// A server certificate with common name `cn` and serial `serial`.
    pub fn leaf(&self, cn: &str, serial: u64) -> Leaf {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("server params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &self.issuer).expect("server cert");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    /// A client trusting only this CA, offering `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        super::pki::client_trusting(self.issuer.der().clone(), alpn)
    }

    /// Opens a TLS connection to `addr` and returns it with the leaf
    /// certificate the server presented.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        alpn: &[&[u8]],
    ) -> (
        tokio_rustls::client::TlsStream<TcpStream>,
        CertificateDer<'static>,
    ) {
        let tcp = within("connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        let tls = tls_connect(tcp, self.client_config(alpn)).await;
        let leaf = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .expect("the server presented a certificate")
            .clone()
            .into_owned();
        (tls, leaf)
    }
}

impl Leaf {
    /// Writes `server.pem` and `server.key` into `dir` (atomically each).
    pub fn install(&self, dir: &Path) {
        write_atomic(&dir.join("server.pem"), &self.cert_pem);
        write_atomic(&dir.join("server.key"), &self.key_pem);
    }
}
