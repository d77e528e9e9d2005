//! `reconcile`: Genesys, the ledger and the bucket compared for a range.

use super::*;

/// What `reconcile` is asked.
pub struct ReconcileArgs {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub org: Option<String>,
    pub json: bool,
    pub bytes: bool,
    pub offline: bool,
    /// Most API calls a minute it may spend.
    pub rpm: u32,
}

/// `reconcile`'s exit when it found something that keeps the range from being complete.
pub const EXIT_NOT_COMPLETE: u8 = 5;

/// `reconcile`: Genesys, the ledger and the bucket compared for a range of conversation
/// starts, org by org; a line per finding, then a summary. Exit 0 only when every org's
/// range is complete ([`crate::reconcile::Report::complete`]), 5 when one is not, 1 when
/// it could not be compared.
pub async fn reconcile(settings: Settings, args: ReconcileArgs) -> ExitCode {
    if args.to <= args.from {
        eprintln!("error: --to must be after --from");
        return ExitCode::from(2);
    }
    let orgs: Vec<&crate::config::settings::OrgSettings> = settings
        .orgs
        .iter()
        .filter(|o| args.org.as_deref().is_none_or(|name| o.name == name))
        .collect();
    if orgs.is_empty() {
        eprintln!(
            "error: --org: no org named {:?} in the configuration",
            args.org.unwrap_or_default()
        );
        return ExitCode::from(2);
    }
    let store = match LedgerStore::open_existing(&settings.ledger.backend, true).await {
        Ok(store) => store,
        Err(e) => return failure(e),
    };
    let mut reports = Vec::new();
    for org in orgs {
        match reconcile_org(&settings, org, &store, &args).await {
            Ok(report) => reports.push((org.name.clone(), report)),
            Err(e) => return failure(format!("org {}: {e}", org.name)),
        }
    }
    let complete = reports.iter().all(|(_, r)| r.complete());
    if args.json {
        let orgs: serde_json::Map<String, serde_json::Value> = reports
            .iter()
            .map(|(org, r)| {
                let mut value = serde_json::to_value(r).expect("reports serialize");
                value["complete"] = r.complete().into();
                value["counts"] = serde_json::to_value(r.counts()).expect("counts serialize");
                (org.clone(), value)
            })
            .collect();
        print_json(&serde_json::json!({"complete": complete, "orgs": orgs}));
    } else {
        for (org, report) in &reports {
            for f in &report.findings {
                println!(
                    "{:<16} {:<16} {:<38} {:<38} {}  {}",
                    f.code.as_str(),
                    org,
                    f.recording_id.as_deref().unwrap_or("-").escape_debug(),
                    f.conversation_id.as_deref().unwrap_or("-").escape_debug(),
                    f.key.as_deref().unwrap_or("-"),
                    f.detail.escape_debug()
                );
            }
        }
        for (org, r) in &reports {
            let counts: Vec<String> = r.counts().iter().map(|(code, n)| format!("{code} {n}")).collect();
            println!(
                "org {org}: {} recordings in the ledger, {} files verified{}, {} manifests; {}: {}",
                r.recordings,
                r.files_verified,
                r.genesys_recordings
                    .map_or(", Genesys not asked (--offline)".to_owned(), |n| format!(
                        ", {n} screen recordings listed by Genesys"
                    )),
                r.manifests,
                if r.complete() { "complete" } else { "NOT complete" },
                if counts.is_empty() {
                    "nothing to report".to_owned()
                } else {
                    counts.join(", ")
                }
            );
            if r.handed_off + r.handoff_left > 0 {
                println!(
                    "org {org}: retention hand-off: {} sources' deleteDate set, {} left as they were \
                     (`list --state handed-off` says why)",
                    r.handed_off, r.handoff_left
                );
            }
            for note in &r.notes {
                println!("org {org}: note: {note}");
            }
        }
    }
    if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NOT_COMPLETE)
    }
}

async fn reconcile_org(
    settings: &Settings,
    org: &crate::config::settings::OrgSettings,
    store: &LedgerStore,
    args: &ReconcileArgs,
) -> Result<crate::reconcile::Report, String> {
    let metrics = crate::metrics::OrgMetrics::unregistered(&org.name);
    let mut org = org.clone();
    let needs_org_id = org.needs_org_id();
    let platform = if args.offline {
        if needs_org_id {
            return Err("the keys name {orgId}, which only Genesys can tell: run without --offline".into());
        }
        None
    } else {
        // Its own token and at most `--rpm` of the budget, so a running daemon keeps the rest.
        let mut limits = org.limits.clone();
        let per_window = |budget: u32| {
            let share = f64::from(args.rpm) * limits.window.as_secs_f64() / 60.0;
            budget.min(share.floor().max(1.0) as u32)
        };
        limits.token_budget = per_window(limits.token_budget);
        limits.auto_budget = false;
        limits.shared = None;
        for (_, budget) in limits.endpoint_budgets.iter_mut() {
            *budget = Some(per_window(budget.unwrap_or(u32::MAX)));
        }
        let budget = Arc::new(LocalBudget::new(&limits, &settings.retry, metrics.clone()));
        let client = Arc::new(
            crate::genesys::GenesysClient::new(&org.genesys, &settings.retry, budget, metrics.clone())
                .map_err(|e| e.to_string())?,
        );
        org = crate::app::with_org_id(org, &client).await.map_err(|e| e.to_string())?;
        let scratch = std::env::temp_dir().join(format!(
            "genesys-archiver-reconcile-{}-{}",
            std::process::id(),
            org.name
        ));
        let survey = crate::reconcile::platform::survey(client, &org.discovery, &scratch, args.from, args.to).await;
        let _ = std::fs::remove_dir_all(&scratch);
        Some(survey?)
    };
    let sink = crate::app::open_sink(&org, metrics)
        .await
        .map_err(|e| format!("sink: {e}"))?;
    let scope = crate::reconcile::Scope {
        ledger: store.for_org(&org.name),
        sink,
        layout: org.sink.layout.clone(),
        manifest_key: org.sink.manifest_key.clone(),
        from: args.from,
        to: args.to,
        bytes: args.bytes,
        platform,
        retained_since: Utc::now()
            - chrono::Duration::from_std(settings.ledger.retain).unwrap_or(chrono::Duration::MAX),
    };
    scope.run().await
}
