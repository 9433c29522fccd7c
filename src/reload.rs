//! Replacing the running snapshot: [`reload`] re-reads the configuration
//! file, builds a whole new [`Runtime`] and swaps it in, or keeps the
//! running one on any error. [`triggers`] starts both ways a reload is
//! asked for, side by side: `SIGHUP`, and (with `server.watch_config`) a
//! change of the file's content. A `SIGHUP` reload is reported to the
//! service manager ([`crate::service_manager`]), as `systemctl reload` asks
//! for it.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, ConfigError, ConfigErrors};
use crate::runtime::{Runtime, SharedRuntime};
use crate::telemetry;

/// How often a watched configuration file is checked for changes.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// One reload at a time: a slow one (fetching a changed key set) must not
/// be overtaken by a later one and then swap in the older file's rules.
static RELOADS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Re-reads `path`, builds a whole new runtime (file reads on a blocking
/// thread), fetches the key sets of changed key sources, then swaps it in.
/// On any error the running snapshot stays.
pub async fn reload(shared: &SharedRuntime, path: &Path) -> Result<(), ConfigErrors> {
    let _one_at_a_time = RELOADS.lock().await;
    let current = shared.load_full();
    let previous = Arc::clone(&current);
    let file = path.to_path_buf();
    let result = tokio::task::spawn_blocking(move || {
        Config::load(&file).and_then(|c| Runtime::build_next(c, Some(&previous)))
    })
    .await
    .unwrap_or_else(|e| {
        Err(ConfigErrors(vec![ConfigError::new(
            "config",
            format!("reload failed: {e}"),
        )]))
    });
    telemetry::reload(if result.is_ok() { "ok" } else { "error" });
    let next = result?;
    if next.config.server.listen != current.config.server.listen {
        tracing::warn!("server.listen changed; the new address takes effect on restart");
    }
    next.prefetch().await;
    next.start();
    shared.store(Arc::new(next));
    Ok(())
}

/// [`reload`], logging the outcome; `why` says what asked for it.
pub async fn reload_logged(shared: &SharedRuntime, path: &Path, why: &str) {
    match reload(shared, path).await {
        Ok(()) => tracing::info!(config = %path.display(), why, "configuration reloaded"),
        Err(errors) => {
            for e in &errors.0 {
                tracing::error!(key = %e.key, reason = %e.reason, why, "reload refused; keeping the running configuration");
            }
        }
    }
}

/// For a configuration read from a file: reloads on `SIGHUP`, and on a
/// change of the file's content while `server.watch_config` is on, until
/// `stop` resolves; nothing for a configuration without a file. The
/// `SIGHUP` handler is installed when this is called (inside the tokio
/// runtime), so a signal sent as soon as the gateway serves is a reload,
/// never the default action (termination).
pub fn triggers(
    shared: SharedRuntime,
    stop: impl Future<Output = ()> + Send,
) -> impl Future<Output = ()> + Send {
    let path = shared.load().config.source.clone();
    let hup = path.as_ref().and_then(|_| install_hangup());
    async move {
        let Some(path) = path else {
            return;
        };
        tokio::select! {
            _ = on_sighup(&shared, &path, hup) => {}
            _ = watch_file(&shared, &path) => {}
            _ = stop => {}
        }
    }
}

/// The installed `SIGHUP` handler.
#[cfg(unix)]
type Hangup = tokio::signal::unix::Signal;
#[cfg(not(unix))]
type Hangup = ();

#[cfg(unix)]
fn install_hangup() -> Option<Hangup> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(not(unix))]
fn install_hangup() -> Option<Hangup> {
    None
}

async fn on_sighup(shared: &SharedRuntime, path: &Path, hup: Option<Hangup>) {
    #[cfg(unix)]
    if let Some(mut hup) = hup {
        while hup.recv().await.is_some() {
            crate::service_manager::reloading();
            reload_logged(shared, path, "SIGHUP").await;
            crate::service_manager::reloaded();
        }
    }
    #[cfg(not(unix))]
    let _ = (shared, path, hup);
    std::future::pending().await
}

fn file_digest(path: &Path) -> Option<[u8; 32]> {
    std::fs::read(path)
        .ok()
        .map(|b| crate::config::file_digest(&b))
}

/// With `server.watch_config = true`, reloads whenever the file's content
/// changes (compared by SHA-256, so neither a coarse modification time nor
/// an equal size hides an edit), checking every [`WATCH_INTERVAL`].
async fn watch_file(shared: &SharedRuntime, path: &Path) {
    // The last content a reload was attempted for, so a bad file is
    // reported once, not every second.
    let mut tried = shared.load().config.source_digest;
    loop {
        tokio::time::sleep(WATCH_INTERVAL).await;
        let rt = shared.load_full();
        if !rt.config.server.watch_config {
            continue;
        }
        let digest = file_digest(path);
        if digest.is_none() || digest == rt.config.source_digest || digest == tried {
            continue;
        }
        tried = digest;
        reload_logged(shared, path, "file changed").await;
    }
}
