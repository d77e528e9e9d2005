//! `check-config [--connect]`: the configuration, and what it names, checked.

use super::*;

/// `check-config [--connect]`: every org's settings, and with `--connect` a token from
/// each org and an answer from each org's sink.
pub async fn check_config(settings: Settings, connect: bool) -> ExitCode {
    let single = !settings.org_source.is_multi();
    if !single {
        let n = settings.orgs.len();
        println!(
            "configuration is valid: {n} org{}, {} workers",
            if n == 1 { "" } else { "s" },
            settings.workers.count
        );
    }
    let mut failed = false;
    for org in &settings.orgs {
        // A single-org file keeps its one-line form; several orgs get a line each.
        let name = if single {
            String::new()
        } else {
            format!("org {}: ", org.name)
        };
        let budget = if org.limits.auto_budget {
            "the org's own budget (read at start)".to_owned()
        } else {
            format!("a budget of {} requests", org.limits.token_budget)
        };
        if single {
            println!(
                "configuration is valid: api {} with {budget} per {:?}, {} workers",
                org.genesys.api_url, org.limits.window, settings.workers.count
            );
        } else {
            println!(
                "{name}api {} with {budget} per {:?}",
                org.genesys.api_url, org.limits.window
            );
        }
        if connect && let Err(e) = check_org(&settings, org, &name).await {
            failure(format!("{name}{e}"));
            failed = true;
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// A token from the org's platform and an answer from its sink.
async fn check_org(settings: &Settings, org: &crate::config::settings::OrgSettings, name: &str) -> Result<(), String> {
    // A one-off check: nothing serves these metrics.
    let metrics = crate::metrics::OrgMetrics::unregistered(&org.name);
    let budget = Arc::new(LocalBudget::new(&org.limits, &settings.retry, metrics.clone()));
    let client = crate::genesys::GenesysClient::new(&org.genesys, &settings.retry, budget, metrics.clone())
        .map_err(|e| e.to_string())?;
    client.authenticate().await.map_err(|e| format!("genesys: {e}"))?;
    println!("{name}genesys: a token was obtained from {}", org.genesys.login_url);
    let sink = crate::app::open_sink(org, metrics)
        .await
        .map_err(|e| format!("sink: {e}"))?;
    sink.check()
        .await
        .map_err(|e| format!("sink {}: {e}", sink.describe()))?;
    sink.check_bucket()
        .await
        .map_err(|e| format!("sink {}: {e}", sink.describe()))?;
    println!("{name}sink: {} answered", sink.describe());
    if let crate::config::settings::SinkKind::S3(s3) = &org.sink.kind {
        println!("{name}sink: {}", compliance_summary(s3));
    }
    Ok(())
}

/// What `check-config --connect` says of an S3 sink's compliance settings, each of them
/// just checked against the bucket.
fn compliance_summary(s3: &crate::sink::settings::S3Settings) -> String {
    let owner = match &s3.expected_bucket_owner {
        Some(owner) => format!("owned by account {owner} (checked)"),
        None => "owner not checked (s3.expected_bucket_owner unset)".into(),
    };
    let lock = match (&s3.lock, s3.legal_hold) {
        (Some(lock), hold) => format!(
            "objects locked {} for {} from the recording's start{} (bucket versioned with Object Lock: checked)",
            lock.mode.as_str(),
            humantime::format_duration(lock.retain),
            if hold { ", legal hold on" } else { "" }
        ),
        (None, true) => "objects under legal hold (bucket versioned with Object Lock: checked)".into(),
        (None, false) => "objects not locked".into(),
    };
    format!("checksum {}; {owner}; {lock}", s3.checksum.as_str())
}
