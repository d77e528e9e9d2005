//! `retry`: failed or parked recordings queued again.

use super::*;

/// `retry --parked [--reason TEXT | --id ID]`: parked recordings back in the queue,
/// e.g. after they were restored in Genesys.
pub async fn retry_parked(settings: &LedgerSettings, org: Option<&str>, which: ParkedSelection) -> ExitCode {
    let views = match org_views(settings, org, false).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let mut n = 0;
    for (_, view) in &views {
        match view.retry_parked(which.clone()).await {
            Ok(more) => n += more,
            Err(e) => return failure(e),
        }
    }
    println!("{n} parked recordings are queued again (the next `run` archives them)");
    ExitCode::SUCCESS
}

/// `retry`.
pub async fn retry(settings: &LedgerSettings, org: Option<&str>) -> ExitCode {
    let views = match org_views(settings, org, false).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let (mut n, mut conversations) = (0, 0);
    for (_, view) in &views {
        match view.retry_conversations().await {
            Ok(more) => conversations += more,
            Err(e) => return failure(e),
        }
        match view.retry_failed().await {
            Ok(more) => n += more,
            Err(e) => return failure(e),
        }
    }
    println!("{n} failed recordings are queued again");
    if conversations > 0 {
        println!(
            "{conversations} parked conversations will be read again when discovery reads their window \
             (the overlap, or `backfill` over it)"
        );
    }
    ExitCode::SUCCESS
}
