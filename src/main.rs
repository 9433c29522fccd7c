//! The `tokengate` binary: command line, logging, exit codes, signals.
//! Everything else lives in the library.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use tokengate::config::{Config, ConfigErrors};
use tokengate::gateway::{self, Listeners};
use tokengate::runtime::{self, Runtime};
use tokengate::server::WorkerListener;
use tokengate::service_manager;
use tokengate::worker::{self, Workers};

/// mimalloc instead of the system allocator: a request allocates and frees
/// many small buffers, and glibc's malloc/free showed up as about a tenth of
/// the gateway's CPU time under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEFAULT_CONFIG: &str = "config/tokengate.toml";

#[derive(Parser)]
#[command(name = "tokengate", version, about = "OAuth 2.0 bearer-token gateway")]
struct Cli {
    /// Configuration file (read by run and check, written by init).
    #[arg(long, global = true, value_name = "FILE", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Log format (default: text on a terminal, json otherwise).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum CheckFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default command).
    Run,
    /// Validate the configuration and print what it resolves to.
    Check {
        /// text: the resolved configuration as TOML, warnings as comments;
        /// json: {"config", "routes", "warnings"}, or {"errors"} when invalid.
        #[arg(long, value_enum, default_value = "text")]
        format: CheckFormat,
    },
    /// Write a commented starter configuration to --config FILE.
    Init(tokengate::tools::init::InitArgs),
    /// Run a local demo: echo upstream and gateway on loopback.
    Demo {
        /// Gateway port; the issuer uses N+1 and the upstream N+2.
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
    #[command(flatten)]
    Tool(Tool),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo's instructions come before any log line, also when stdout
    // and stderr go to the same place: its logs are held until then.
    let hold_logs = matches!(cli.command, Some(Command::Demo { .. }));
    init_logging(cli.log_format, hold_logs);
    // Parked connections free hyper's buffers; this returns those pages.
    // SAFETY: `mi_collect` only walks this thread's mimalloc heap, which is
    // the global allocator's.
    tokengate::server::on_parked(|| unsafe { libmimalloc_sys::mi_collect(true) });
    tokengate::tls::install_default_provider();
    let config_path = cli.config;
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(&config_path),
        Command::Check { format } => return check(&config_path, format),
        Command::Init(args) => tokengate::tools::init::run(&config_path, &args)
            .map(|done| println!("{done}"))
            .map_err(anyhow::Error::from),
        #[cfg(feature = "demo")]
        Command::Demo { port } => demo(port),
        #[cfg(not(feature = "demo"))]
        Command::Demo { .. } => return no_demo(),
        Command::Tool(tool) => tool.run(),
    };
    tokengate::access_log::flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: Option<LogFormat>, hold: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        Some(LogFormat::Json) => true,
        Some(LogFormat::Text) => false,
        None => !std::io::stderr().is_terminal(),
    };
    if hold {
        held_logs::hold();
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(held_logs::Stderr);
    if json {
        builder.json().flatten_event(true).init();
        tokengate::access_log::install_json(Box::new(held_logs::Stderr));
    } else {
        builder.init();
    }
}

fn print_config_errors(errors: &ConfigErrors) {
    for e in &errors.0 {
        eprintln!("{e}");
    }
}

fn load(path: &Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|errors| {
        print_config_errors(&errors);
        anyhow::anyhow!("invalid configuration {}", path.display())
    })
}

fn build(config: Config) -> anyhow::Result<Runtime> {
    Runtime::build(config).map_err(|errors| {
        print_config_errors(&errors);
        anyhow::anyhow!("invalid configuration")
    })
}

/// One worker: tokio's current-thread scheduler (no work-stealing
/// machinery, no cross-thread wakeups); the gateway runs one per worker.
/// The demo (several servers in one process) uses the multi-thread one.
fn tokio_runtime(current_thread: bool) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = match current_thread {
        true => tokio::runtime::Builder::new_current_thread(),
        false => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all();
    builder.build().context("cannot start the async runtime")
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ({what})"))
}

/// Serves on `server.worker_threads` workers: this thread's current-thread
/// runtime and, with more than one, as many more threads, each accepting on
/// its own `SO_REUSEPORT` listener (see `tokengate::worker`).
fn run(path: &Path) -> anyhow::Result<()> {
    if !path.exists() {
        anyhow::bail!(tokengate::tools::init::missing_config_hint(path));
    }
    let config = load(path)?;
    let workers = worker::resolve(config.server.worker_threads);
    // Before the snapshot: its upstream pools keep an idle list per worker.
    worker::set_count(workers);
    let rt = build(config)?;
    let others = Workers::start(workers).context("cannot start the worker threads")?;
    let served = tokio_runtime(true)?.block_on(serve(rt, &others));
    others.stop();
    served
}

/// Binds, serves until SIGTERM/SIGINT; a configuration read from a file
/// reloads on SIGHUP (and on change, with `server.watch_config`).
async fn serve(rt: Runtime, others: &Workers) -> anyhow::Result<()> {
    raise_open_file_limit();
    let listen = rt.config.server.listen;
    let (gateway, workers) = match others.handles().count() {
        0 => (bind(listen, "server.listen").await?, Vec::new()),
        n => bind_workers(listen, others, n + 1)?,
    };
    let admin = match &rt.config.admin {
        Some(a) => Some(bind(a.listen, "admin.listen").await?),
        None => None,
    };
    let listen = gateway.local_addr()?;
    let (tls, routes) = (rt.tls.is_some(), rt.routes.len());
    // Signal handlers first: the log line below tells scripts the gateway
    // serves, and a signal sent then must find them installed.
    let signal = shutdown_signal();
    let stop = async move {
        signal.await;
        service_manager::stopping();
    };
    let shared = runtime::shared(rt);
    let listeners = Listeners {
        gateway,
        admin,
        workers,
    };
    let serving = gateway::start(shared.clone(), listeners, stop);
    let workers = others.handles().count() + 1;
    tracing::info!(%listen, tls, routes, workers, "tokengate serving");
    // Under systemd (Type=notify): READY=1 once every issuer is usable too.
    tokio::spawn(service_manager::ready_when_issuers_ready(shared));
    serving.await;
    Ok(())
}

/// `n` listeners on `addr` with `SO_REUSEPORT`: the first for this
/// runtime, one for each of `others`.
fn bind_workers(
    addr: SocketAddr,
    others: &Workers,
    n: usize,
) -> anyhow::Result<(TcpListener, Vec<WorkerListener>)> {
    let mut listeners = worker::bind_reuseport(addr, n)
        .with_context(|| format!("cannot listen on {addr} (server.listen)"))?
        .into_iter();
    let first = listeners.next().context("no listener bound")?;
    let mut workers = Vec::with_capacity(n - 1);
    for (runtime, listener) in others.handles().zip(listeners) {
        let listener = listener
            .into_std()
            .context("cannot hand a listener to a worker")?;
        workers.push(WorkerListener {
            runtime: runtime.clone(),
            listener,
        });
    }
    Ok((first, workers))
}

/// Every client connection and every upstream connection is a file
/// descriptor, and the usual soft limit (1024) is far below what
/// `server.max_connections` and `upstreams.*.max_connections` allow: raise
/// it to the hard limit, which an administrator set on purpose.
fn raise_open_file_limit() {
    let before = rlimit::Resource::NOFILE.get().ok();
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) => tracing::info!(
            soft,
            previous_soft = before.map(|(soft, _)| soft),
            hard = before.map(|(_, hard)| hard),
            "open file limit"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open file limit"),
    }
}

/// Resolves on SIGTERM or Ctrl-C. The SIGTERM handler is installed when
/// this is called (inside the tokio runtime), not when the future is first
/// polled: a SIGTERM sent as soon as the gateway answers must not find the
/// default action (termination without a drain) still in place.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        #[cfg(unix)]
        {
            let Some(mut term) = term else {
                return std::future::pending().await;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn check(path: &Path, format: CheckFormat) -> ExitCode {
    // A closed pipe (`tokengate check | head`) is not an error worth a panic.
    let out = |text: String| {
        drop(std::io::Write::write_all(
            &mut std::io::stdout(),
            text.as_bytes(),
        ))
    };
    match (tokengate::check::check(path), format) {
        (Ok(report), CheckFormat::Text) => out(report.text()),
        (Ok(report), CheckFormat::Json) => out(report.json() + "\n"),
        (Err(errors), CheckFormat::Text) => {
            print_config_errors(&errors);
            return ExitCode::FAILURE;
        }
        (Err(errors), CheckFormat::Json) => {
            println!("{}", tokengate::check::errors_json(&errors));
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// `tokengate demo` in a build without the `demo` feature.
#[cfg(not(feature = "demo"))]
fn no_demo() -> ExitCode {
    eprintln!(
        "error: this tokengate was built without the demo (cargo feature `demo`); \
         a build with the default features has `tokengate demo`"
    );
    ExitCode::from(2)
}

#[cfg(feature = "demo")]
fn demo(port: u16) -> anyhow::Result<()> {
    use tokengate::demo::run::{self, DemoListeners, Ports};
    let ports = Ports::from_gateway(port).map_err(anyhow::Error::msg)?;
    raise_open_file_limit();
    let config = run::config(&ports).map_err(|errors| {
        print_config_errors(&errors);
        anyhow::anyhow!("the embedded demo configuration is invalid")
    })?;
    let rt = build(config)?;
    tokio_runtime(false)?.block_on(async move {
        let loopback = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let listeners = DemoListeners {
            issuer: bind(loopback(ports.issuer), "demo issuer").await?,
            upstream: bind(loopback(ports.upstream), "demo upstream").await?,
            gateway: bind(rt.config.server.listen, "server.listen").await?,
        };
        let ready = |ready: bool| {
            let printed = match ready {
                true => print_instructions(port),
                false => Ok(()),
            };
            held_logs::release();
            printed.map_err(|e| format!("cannot write to stdout: {e}"))
        };
        run::serve(rt, &ports, listeners, shutdown_signal(), ready)
            .await
            .map_err(anyhow::Error::msg)
    })
}

#[cfg(feature = "demo")]
fn print_instructions(port: u16) -> std::io::Result<()> {
    use std::io::Write;
    // The printed DPoP commands run this very binary.
    let exe = std::env::current_exe()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "tokengate".into());
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", tokengate::demo::run::instructions(port, &exe))?;
    out.flush()
}

/// Log output to stderr that can be held back in memory for a while (the
/// demo's startup) and then written in one piece.
mod held_logs {
    use std::io::Write;
    use std::sync::Mutex;
    use tracing_subscriber::fmt::MakeWriter;

    /// `Some` while held: the bytes written so far.
    static HELD: Mutex<Option<Vec<u8>>> = Mutex::new(None);

    pub fn hold() {
        *HELD.lock().unwrap_or_else(|e| e.into_inner()) = Some(Vec::new());
    }

    /// Writes what was held and stops holding.
    #[cfg_attr(not(feature = "demo"), allow(dead_code))]
    pub fn release() {
        let held = HELD.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(bytes) = held {
            let _ = std::io::stderr().write_all(&bytes);
        }
    }

    pub struct Stderr;

    impl Write for Stderr {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
            match held.as_mut() {
                Some(bytes) => {
                    bytes.extend_from_slice(buf);
                    Ok(buf.len())
                }
                None => std::io::stderr().write(buf),
            }
        }

        fn flush(&mut self) -> std::io::Result<()> {
            std::io::stderr().flush()
        }
    }

    impl<'a> MakeWriter<'a> for Stderr {
        type Writer = Stderr;

        fn make_writer(&'a self) -> Stderr {
            Stderr
        }
    }
}

// ---- Key, token and certificate tools (the logic is in tokengate::tools) ----

#[derive(Subcommand)]
enum Tool {
    /// JWK Sets for `jwks_file`.
    #[command(subcommand)]
    Jwks(JwksCommand),
    /// DEVELOPMENT ONLY: mint a signed JWT from a local private key.
    ///
    /// DEVELOPMENT ONLY. The gateway accepts the token only where the key is
    /// in a configured key set (e.g. a jwks_file built from the same key with
    /// `tokengate jwks from-pem`) and iss/aud match that issuer. The token is
    /// printed on stdout.
    Token(Box<TokenArgs>),
    /// A DPoP proof (RFC 9449) for one request, printed on stdout.
    ///
    /// Signed by the private key in --key (PEM); a file that does not exist
    /// is created with a new EC P-256 key first. Send it as the `DPoP`
    /// header, with `Authorization: DPoP TOKEN` (--token TOKEN) or with a
    /// token request (no --token). A proof is good for one request.
    DpopProof(DpopProofArgs),
    /// DEVELOPMENT ONLY: write a local test CA and a server certificate.
    ///
    /// DEVELOPMENT ONLY. Writes ca.pem (a test CA whose key is discarded),
    /// server.pem and server.key (mode 0600) for server.tls_cert and
    /// server.tls_key; clients trust ca.pem (`curl --cacert ca.pem`).
    DevCert {
        /// Directory to write into (created if missing).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// DNS name or IP address for the certificate; repeatable
        /// [default: localhost, 127.0.0.1, ::1].
        #[arg(long = "name", value_name = "NAME")]
        names: Vec<String>,
        /// Replace existing ca.pem, server.pem and server.key.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum JwksCommand {
    /// Print a JWK Set of the keys in PEM files (public keys, or the public
    /// half of private keys), each with its RFC 7638 thumbprint as kid.
    FromPem {
        /// PEM files: PUBLIC KEY, RSA PUBLIC KEY, PRIVATE KEY, RSA PRIVATE KEY, EC PRIVATE KEY.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// The alg of RSA keys (EC and Ed25519 keys have theirs).
        #[arg(long, default_value = "RS256", value_parser = tokengate::tools::jwks::parse_alg)]
        alg: tokengate::config::Algorithm,
    },
}

#[derive(clap::Args)]
struct DpopProofArgs {
    /// Private key PEM (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY);
    /// created with a new P-256 key when the file does not exist.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The request method (`htm`), e.g. GET; POST for a token request.
    #[arg(long)]
    method: String,
    /// The request URL (`htu`; query and fragment are left out).
    #[arg(long)]
    url: String,
    /// The access token the request carries (`ath`); leave out for a
    /// token request.
    #[arg(long)]
    token: Option<String>,
    /// A server nonce, from the `DPoP-Nonce` header of an earlier answer.
    #[arg(long)]
    nonce: Option<String>,
}

#[derive(clap::Args)]
struct TokenArgs {
    /// Private key PEM (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The `iss` claim: the issuer's `issuer` value in the gateway config.
    #[arg(long)]
    iss: String,
    /// An `aud` value; repeatable.
    #[arg(long, required = true)]
    aud: Vec<String>,
    /// The `sub` claim (required by profile = "rfc9068").
    #[arg(long)]
    sub: Option<String>,
    /// The `client_id` claim (required by profile = "rfc9068").
    #[arg(long)]
    client_id: Option<String>,
    /// Space-delimited scopes, e.g. "orders:read orders:write".
    #[arg(long)]
    scope: Option<String>,
    /// Seconds until `exp`.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
    /// Header kid [default: the key's RFC 7638 thumbprint, as `jwks from-pem` prints it].
    #[arg(long)]
    kid: Option<String>,
    /// Signature algorithm [default: RS256, ES256, ES384 or EdDSA by key type].
    #[arg(long, value_parser = tokengate::tools::jwks::parse_alg)]
    alg: Option<tokengate::config::Algorithm>,
    /// Header typ.
    #[arg(long, default_value = "at+jwt")]
    typ: String,
    /// Extra claim NAME=VALUE (VALUE as JSON if it parses, else a string); repeatable.
    #[arg(long = "claim", value_name = "NAME=VALUE", value_parser = tokengate::tools::token::parse_claim)]
    claims: Vec<(String, serde_json::Value)>,
}

impl Tool {
    fn run(self) -> anyhow::Result<()> {
        use tokengate::tools::{devcert, dpop_proof, jwks, token};
        match self {
            Tool::Jwks(JwksCommand::FromPem { files, alg }) => {
                print!("{}", jwks::from_pem_files(&files, Some(alg))?);
            }
            Tool::Token(a) => {
                eprintln!("warning: {}", token::DEVELOPMENT_ONLY);
                let key = token::signing_key(jwks::read_pem_file(&a.key)?)
                    .with_context(|| a.key.display().to_string())?;
                let a = *a;
                let spec = token::TokenSpec {
                    iss: a.iss,
                    aud: a.aud,
                    sub: a.sub,
                    client_id: a.client_id,
                    scope: a.scope,
                    ttl_s: a.ttl,
                    kid: a.kid,
                    alg: a.alg,
                    typ: a.typ,
                    claims: a.claims,
                };
                println!("{}", token::mint(&spec, &key, unix_now()?)?);
            }
            Tool::DpopProof(a) => {
                let (key, created) = dpop_proof::load_or_create_key(&a.key)?;
                if created {
                    eprintln!("wrote a new P-256 key to {}", a.key.display());
                }
                let spec = dpop_proof::ProofSpec {
                    method: a.method,
                    url: a.url,
                    token: a.token,
                    nonce: a.nonce,
                };
                println!("{}", dpop_proof::proof(&spec, &key, unix_now()?)?);
            }
            Tool::DevCert { dir, names, force } => {
                eprintln!("warning: {}", devcert::DEVELOPMENT_ONLY);
                print!(
                    "{}",
                    devcert::instructions(&devcert::write(&dir, &names, force)?)
                );
            }
        }
        Ok(())
    }
}

/// Seconds since the Unix epoch, for `iat`.
fn unix_now() -> anyhow::Result<u64> {
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs())
}
