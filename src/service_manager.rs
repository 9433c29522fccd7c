//! What the process tells its service manager, through systemd's
//! `sd_notify` protocol (`Type=notify` in `deploy/systemd/tokengate.service`):
//! `READY=1` once the listeners are bound and every issuer is usable (what
//! `/readyz` reports), `RELOADING=1` and then `READY=1` around a `SIGHUP`
//! reload, `STOPPING=1` when the drain begins.
//!
//! Every call is a no-op when `NOTIFY_SOCKET` is unset (the process was not
//! started by systemd), and a failed send is logged, never fatal: the gateway
//! serves either way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::runtime::SharedRuntime;

/// How often readiness is checked while an issuer's key set is still
/// missing: startup only, and the same check `/readyz` makes.
const READY_POLL: Duration = Duration::from_millis(50);

/// Set by [`stopping`]: after it, a late readiness is not reported, so the
/// manager never sees `READY=1` after `STOPPING=1`.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Sends `READY=1` once every issuer of the current snapshot is usable;
/// until then the status line names the issuers that are not. Call it after
/// the listeners are bound and the gateway is started.
pub async fn ready_when_issuers_ready(shared: SharedRuntime) {
    let mut shown = None;
    loop {
        let waiting = waiting_for(&shared);
        if waiting.is_empty() {
            break;
        }
        if shown.as_ref() != Some(&waiting) {
            let line = format!("waiting for issuers: {}", waiting.join(", "));
            send(&[State::Status(&line)]);
            shown = Some(waiting);
        }
        tokio::time::sleep(READY_POLL).await;
    }
    ready("serving");
}

/// `RELOADING=1`: a reload has begun.
pub fn reloading() {
    send(&[State::Reloading]);
}

/// `READY=1` again after a reload, whether it was applied or refused: the
/// running snapshot serves in both cases.
pub fn reloaded() {
    ready("serving");
}

/// `STOPPING=1`: the gateway drains and will exit.
pub fn stopping() {
    STOPPING.store(true, Ordering::SeqCst);
    send(&[State::Stopping, State::Status("draining")]);
}

fn ready(status: &str) {
    if !STOPPING.load(Ordering::SeqCst) {
        send(&[State::Ready, State::Status(status)]);
    }
}

/// The issuers that are not usable yet, as `/readyz` names them.
fn waiting_for(shared: &SharedRuntime) -> Vec<String> {
    let not_ready = shared.load().not_ready();
    not_ready
        .into_iter()
        .map(|(name, why)| format!("{name} ({why})"))
        .collect()
}

/// The notifications this process sends.
enum State<'a> {
    Ready,
    /// Sent with `MONOTONIC_USEC`, which systemd 253 and newer expect.
    Reloading,
    Stopping,
    /// The free-form line `systemctl status` shows.
    Status(&'a str),
}

#[cfg(unix)]
fn send(states: &[State]) {
    use sd_notify::NotifyState;
    let mut out = Vec::with_capacity(states.len() + 1);
    for state in states {
        match state {
            State::Ready => out.push(NotifyState::Ready),
            State::Reloading => {
                out.push(NotifyState::Reloading);
                out.extend(NotifyState::monotonic_usec_now().ok());
            }
            State::Stopping => out.push(NotifyState::Stopping),
            State::Status(line) => out.push(NotifyState::Status(line)),
        }
    }
    if let Err(e) = sd_notify::notify(&out) {
        tracing::warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}

/// No service manager protocol off Unix.
#[cfg(not(unix))]
fn send(_: &[State]) {}
