//! The fixtures: the upstream and the gateway on their own runtimes,
//! the client's runtime and connections, the keys and tokens, and the
//! gateway's configuration.

use bytes::Bytes;
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderValue, Request, StatusCode};
use http_body_util::Empty;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::runtime::Builder as RuntimeBuilder;

use crate::mint::{claims, now, with, Key, AUD};

use tokengate::config::Config;
use tokengate::gateway::{serve, Listeners};
use tokengate::runtime::{self, Runtime};

use crate::servers::{connect, introspection_endpoint, round_trip, upstream};
use crate::{BoxError, JWKS_FILE, JWT_ISS, JWT_PATH, OPAQUE_ISS, OPAQUE_PATH, OPAQUE_TOKEN, PATH};

/// The upstream and the gateway, each on its own runtime, and the client's
/// runtime. Fields drop in order: client connections first.
pub(crate) struct Bed {
    pub(crate) client: tokio::runtime::Runtime,
    pub(crate) direct: Target,
    pub(crate) public: Target,
    pub(crate) jwt: Target,
    pub(crate) opaque: Target,
    /// Calls the introspection endpoint has answered.
    pub(crate) introspections: Arc<AtomicUsize>,
    pub(crate) _upstream_rt: tokio::runtime::Runtime,
    pub(crate) _gateway_rt: tokio::runtime::Runtime,
}

/// Where requests go, with which credential, and what they are called in
/// the report.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) name: &'static str,
    pub(crate) addr: SocketAddr,
    pub(crate) host: HeaderValue,
    pub(crate) path: &'static str,
    /// The `Authorization` value every request carries, if any.
    pub(crate) authorization: Option<HeaderValue>,
}

impl Target {
    pub(crate) fn new(
        name: &'static str,
        addr: SocketAddr,
        path: &'static str,
    ) -> Result<Target, BoxError> {
        Ok(Target {
            name,
            addr,
            host: HeaderValue::from_str(&addr.to_string())?,
            path,
            authorization: None,
        })
    }

    pub(crate) fn with_bearer(mut self, token: &str) -> Result<Target, BoxError> {
        let mut value = HeaderValue::from_str(&format!("Bearer {token}"))?;
        value.set_sensitive(true);
        self.authorization = Some(value);
        Ok(self)
    }

    pub(crate) fn request(&self) -> Result<Request<Empty<Bytes>>, http::Error> {
        let mut req = Request::get(self.path).header(HOST, self.host.clone());
        if let Some(value) = &self.authorization {
            req = req.header(AUTHORIZATION, value.clone());
        }
        req.body(Empty::new())
    }
}

impl Bed {
    pub(crate) fn start() -> Result<Bed, BoxError> {
        let client = RuntimeBuilder::new_current_thread().enable_all().build()?;
        let upstream_rt = RuntimeBuilder::new_multi_thread()
            .worker_threads(1)
            .thread_name("upstream")
            .enable_all()
            .build()?;
        let gateway_rt = RuntimeBuilder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tokengate")
            .enable_all()
            .build()?;

        let listener = upstream_rt.block_on(TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))?;
        let upstream_addr = listener.local_addr()?;
        upstream_rt.spawn(upstream(listener));
        let introspections = Arc::new(AtomicUsize::new(0));
        let listener = upstream_rt.block_on(TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))?;
        let introspect_addr = listener.local_addr()?;
        upstream_rt.spawn(introspection_endpoint(listener, introspections.clone()));

        // The JWT issuer's key set, in a file the gateway reads at build.
        let key = Key::rs256("bench-rs256");
        let keys_dir = tempfile::tempdir()?;
        let set = serde_json::json!({ "keys": [key.jwk()] });
        std::fs::write(keys_dir.path().join(JWKS_FILE), set.to_string())?;
        // Valid for an hour: far longer than the bench runs.
        let jwt = key.token(&with(
            &claims(JWT_ISS, AUD),
            serde_json::json!({ "exp": now() + 3_600 }),
        ));

        let config = Config::from_toml(
            &gateway_config(upstream_addr, introspect_addr),
            keys_dir.path(),
            Vec::new(),
        )?;
        // The gateway's pooled upstream clients belong to its runtime.
        let shared = {
            let _enter = gateway_rt.enter();
            runtime::shared(Runtime::build(config)?)
        };
        let listener = gateway_rt.block_on(TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))?;
        let gateway_addr = listener.local_addr()?;
        let listeners = Listeners {
            gateway: listener,
            admin: None,
            workers: Vec::new(),
        };
        gateway_rt.spawn(serve(shared, listeners, std::future::pending()));

        Ok(Bed {
            client,
            direct: Target::new("direct", upstream_addr, PATH)?,
            public: Target::new("public", gateway_addr, PATH)?,
            jwt: Target::new("jwt_cached_rs256", gateway_addr, JWT_PATH)?.with_bearer(&jwt)?,
            opaque: Target::new("opaque_cached", gateway_addr, OPAQUE_PATH)?
                .with_bearer(OPAQUE_TOKEN)?,
            introspections,
            _upstream_rt: upstream_rt,
            _gateway_rt: gateway_rt,
        })
    }

    /// Every target of the concurrency table, baseline first.
    pub(crate) fn targets(&self) -> [&Target; 4] {
        [&self.direct, &self.public, &self.jwt, &self.opaque]
    }

    /// One request per target answers 200 with the upstream's body; on the
    /// routes that require a token, one without it answers 401 (the
    /// enforcement being measured is on); one introspection call so far.
    pub(crate) async fn check(&self) -> Result<(), BoxError> {
        for target in self.targets() {
            let mut sender = connect(target.addr).await?;
            round_trip(&mut sender, target).await?;
            if target.authorization.is_some() {
                let anonymous = Target {
                    authorization: None,
                    ..target.clone()
                };
                sender.ready().await?;
                let status = sender.send_request(anonymous.request()?).await?.status();
                if status != StatusCode::UNAUTHORIZED {
                    return Err(
                        format!("{}: {status} without a token, not 401", target.name).into(),
                    );
                }
            }
        }
        self.check_introspections()
    }

    /// `opaque_cached` is what its name says: one introspection call in all.
    pub(crate) fn check_introspections(&self) -> Result<(), BoxError> {
        match self.introspections.load(Ordering::Relaxed) {
            1 => Ok(()),
            n => Err(format!("opaque_cached: {n} introspection calls, expected 1").into()),
        }
    }
}

/// A public route, a JWT route and an opaque-token route, all to the one
/// upstream. The JWT issuer's keys are in [`JWKS_FILE`]; the opaque issuer
/// has only introspection, its answers cached for an hour so that one call
/// serves the whole run (the default `cache_ttl_s` is 60 s).
pub(crate) fn gateway_config(upstream: SocketAddr, introspect: SocketAddr) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[issuers.jwt]
issuer = "{JWT_ISS}"
jwks_file = "{JWKS_FILE}"
audiences = ["{AUD}"]

[issuers.opaque]
issuer = "{OPAQUE_ISS}"
audiences = ["{AUD}"]

[issuers.opaque.introspection]
endpoint = "http://{introspect}/introspect"
client_id = "tokengate-bench"
client_secret = "bench-secret"
cache_ttl_s = 3600

[upstreams.bench]
url = "http://{upstream}"

[[routes]]
path = "/bench/**"
upstream = "bench"
auth = "none"

[[routes]]
path = "/jwt/**"
upstream = "bench"
issuers = ["jwt"]
scopes = ["read"]

[[routes]]
path = "/opaque/**"
upstream = "bench"
issuers = ["opaque"]
scopes = ["read"]
"#
    )
}
