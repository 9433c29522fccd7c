//! Giving memory back after connections park. A parked HTTP/1.1
//! connection frees hyper's buffers and the request's state, but an
//! allocator keeps freed pages for reuse, so ten thousand connections that
//! each served one request would keep the memory of ten thousand busy ones.
//! The binary installs its allocator's collection here (mimalloc's
//! `mi_collect`); a park then runs it on the parking worker thread, at most
//! once per [`MIN_GAP`], with one more run [`MIN_GAP`] after the last
//! skipped one so that the end of a burst is collected too.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The shortest time between two collections.
const MIN_GAP: Duration = Duration::from_millis(250);

static HOOK: OnceLock<fn()> = OnceLock::new();
static EPOCH: OnceLock<Instant> = OnceLock::new();
/// Milliseconds since `EPOCH` of the last collection.
static LAST_MS: AtomicU64 = AtomicU64::new(0);
/// A trailing collection is scheduled.
static TRAILING: AtomicBool = AtomicBool::new(false);

/// Installs the allocator's collection, run after connections park. The
/// first call wins; without one, parking frees memory into the allocator
/// only.
pub fn on_parked(collect: fn()) {
    let _ = HOOK.set(collect);
}

/// A connection parked: collect now, or soon if one ran a moment ago.
pub(super) fn parked() {
    let Some(&collect) = HOOK.get() else {
        return;
    };
    if due() {
        collect();
    } else if !TRAILING.swap(true, Ordering::AcqRel) {
        tokio::spawn(async move {
            tokio::time::sleep(MIN_GAP).await;
            TRAILING.store(false, Ordering::Release);
            if due() {
                collect();
            }
        });
    }
}

/// Whether `MIN_GAP` has passed since the last collection; if so, this
/// call takes the turn. Times are counted from `MIN_GAP` before the first
/// call, so that the first collection is due at once (`LAST_MS` starts at 0).
fn due() -> bool {
    let gap = MIN_GAP.as_millis() as u64;
    let epoch = *EPOCH.get_or_init(Instant::now);
    let now = gap + epoch.elapsed().as_millis() as u64;
    let last = LAST_MS.load(Ordering::Acquire);
    now >= last + gap
        && LAST_MS
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
}
