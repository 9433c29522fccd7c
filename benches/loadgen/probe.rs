//! `check` (one request, its status compared) and `hold` (many idle
//! keep-alive connections, for resident-memory measurements).

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{CheckArgs, TargetArgs};
use crate::client::{connect, connect_many, Target};
use crate::{current_thread, BoxError};

pub(crate) fn check_command(args: &CheckArgs) -> Result<bool, BoxError> {
    let target = Target::new(&args.target, true)?;
    let status = current_thread()?.block_on(async {
        let mut conn = connect(&target).await?;
        conn.round_trip(target.request(0, false)).await
    })?;
    let ok = status.as_u16() == args.expect;
    eprintln!(
        "{}: {status} (expected {}){}",
        args.target.url,
        args.expect,
        if ok { "" } else { " FAILED" }
    );
    Ok(ok)
}

pub(crate) fn hold_command(
    args: &TargetArgs,
    n: usize,
    duration: Duration,
) -> Result<bool, BoxError> {
    let target = Arc::new(Target::new(args, true)?);
    current_thread()?.block_on(async move {
        let opened = connect_many(&target, n).await;
        let mut held = Vec::with_capacity(n);
        let mut first_error = None;
        // One request on each, one at a time (so the proxy's upstream pool
        // stays at one connection), then every connection sits idle in
        // keep-alive.
        for (i, conn) in opened.into_iter().enumerate() {
            match conn {
                Ok(mut sender) => match sender.round_trip(target.request(i, false)).await {
                    Ok(status) if status.is_success() => held.push(sender),
                    Ok(status) => {
                        first_error.get_or_insert(format!("status {status}"));
                    }
                    Err(e) => {
                        first_error.get_or_insert(e.to_string());
                    }
                },
                Err(e) => {
                    first_error.get_or_insert(e.to_string());
                }
            }
        }
        if let Some(e) = &first_error {
            eprintln!(
                "hold: {} of {n} connections failed; first: {e}",
                n - held.len()
            );
        }
        println!("holding {} connections", held.len());
        std::io::stdout().flush()?;
        tokio::time::sleep(duration).await;
        drop(held);
        Ok::<_, BoxError>(())
    })?;
    Ok(true)
}
