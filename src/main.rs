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
use tokengate::runtime::{self, Runtime, SharedRuntime};
use tokengate::server::{self, Listeners};

const DEFAULT_CONFIG: &str = "config/tokengate.toml";
const DEMO_CONFIG: &str = include_str!("../config/demo.toml");

#[derive(Parser)]
#[command(name = "tokengate", version, about = "OAuth 2.0 bearer-token gateway")]
struct Cli {
    /// Configuration file.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
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

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default command).
    Run,
    /// Validate the configuration and print what it resolves to.
    Check,
    /// Run a local demo: echo upstream and gateway on loopback.
    Demo {
        /// Gateway port; the issuer uses N+1 and the upstream N+2.
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    tokengate::tls::install_default_provider();
    let config_path = cli.config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(&config_path),
        Command::Check => return check(&config_path),
        Command::Demo { port } => demo(port),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: Option<LogFormat>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        Some(LogFormat::Json) => true,
        Some(LogFormat::Text) => false,
        None => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).init();
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

fn tokio_runtime(worker_threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = worker_threads {
        builder.worker_threads(n);
    }
    builder.build().context("cannot start the async runtime")
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ({what})"))
}

fn run(path: &Path) -> anyhow::Result<()> {
    let config = load(path)?;
    let rt = build(config)?;
    tokio_runtime(rt.config.server.worker_threads)?.block_on(serve(rt, Some(path.to_path_buf())))
}

/// Binds, serves until SIGTERM/SIGINT, reloads on SIGHUP.
async fn serve(rt: Runtime, reload_from: Option<PathBuf>) -> anyhow::Result<()> {
    let gateway = bind(rt.config.server.listen, "server.listen").await?;
    let admin = match &rt.config.admin {
        Some(a) => Some(bind(a.listen, "admin.listen").await?),
        None => None,
    };
    tracing::info!(
        listen = %gateway.local_addr()?,
        tls = rt.tls.is_some(),
        routes = rt.routes.len(),
        "tokengate serving"
    );
    let shared = runtime::shared(rt);
    if let Some(path) = reload_from {
        tokio::spawn(reload_on_sighup(shared.clone(), path));
    }
    server::serve(shared, Listeners { gateway, admin }, shutdown_signal()).await;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
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

async fn reload_on_sighup(shared: SharedRuntime, path: PathBuf) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            match runtime::reload(&shared, &path) {
                Ok(()) => tracing::info!(config = %path.display(), "configuration reloaded"),
                Err(errors) => {
                    for e in &errors.0 {
                        tracing::error!(key = %e.key, reason = %e.reason, "reload refused; keeping the running configuration");
                    }
                }
            }
        }
    }
}

fn check(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            print_config_errors(&errors);
            return ExitCode::FAILURE;
        }
    };
    match Runtime::build(config) {
        Ok(rt) => {
            print!("{}", tokengate::runtime::describe(&rt));
            ExitCode::SUCCESS
        }
        Err(errors) => {
            print_config_errors(&errors);
            ExitCode::FAILURE
        }
    }
}

fn demo(port: u16) -> anyhow::Result<()> {
    let upstream_port = port.checked_add(2).context("--port is too high")?;
    let env = vec![
        (
            "TOKENGATE_SERVER__LISTEN".to_string(),
            format!("127.0.0.1:{port}"),
        ),
        (
            "TOKENGATE_UPSTREAMS__ECHO__URL".to_string(),
            format!("http://127.0.0.1:{upstream_port}"),
        ),
    ];
    let config = Config::from_toml(DEMO_CONFIG, Path::new("."), env).map_err(|errors| {
        print_config_errors(&errors);
        anyhow::anyhow!("the embedded demo configuration is invalid")
    })?;
    let rt = build(config)?;
    tokio_runtime(None)?.block_on(async move {
        let upstream = bind(
            SocketAddr::from(([127, 0, 0, 1], upstream_port)),
            "demo upstream",
        )
        .await?;
        tokio::spawn(tokengate::demo::echo::serve(
            upstream,
            std::future::pending(),
        ));
        println!("{}", demo_instructions(port));
        serve(rt, None).await
    })
}

fn demo_instructions(port: u16) -> String {
    format!(
        "tokengate demo: gateway on http://127.0.0.1:{port}, echo upstream on 127.0.0.1:{up}

  # a public route, forwarded to the echo upstream (200)
  curl -i http://127.0.0.1:{port}/public/hello

  # a protected route without a token (401, WWW-Authenticate: Bearer)
  curl -i http://127.0.0.1:{port}/api/orders

  # a malformed credential (400 invalid_request)
  curl -i -H 'Authorization: Bearer two words' http://127.0.0.1:{port}/api/orders

  # a path the gateway refuses to forward (400 invalid_request)
  curl -i --path-as-is http://127.0.0.1:{port}/public/../api/orders

Press Ctrl-C to stop.",
        up = port + 2
    )
}
