//! The operator's kit — the alert rules (`deploy/prometheus/`) and the Grafana
//! dashboard (`deploy/grafana/`) — proven against the daemon: the rules pass
//! `promtool check` and their unit tests (a case that fires and one that must not, per
//! alert); a real Prometheus scrapes the daemon while it archives the simulator, loads
//! the rules and evaluates them, and every alert expression and every panel query is
//! evaluated through its HTTP API. A metric renamed in the daemon fails here.

mod common;

use common::harness::{Harness, available, fast_org, free_port};
use common::servers::{self, Prometheus, Server};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

const RULES: &str = "deploy/prometheus/genesys-archiver.rules.yml";
const RULE_TESTS: &str = "deploy/prometheus/genesys-archiver.rules.test.yml";
const DASHBOARD: &str = "deploy/grafana/genesys-archiver.json";
const RUNBOOK: &str = "docs/runbook.md";

/// The job name the rules expect (`up{job="genesys-archiver"}`).
const JOB: &str = "genesys-archiver";

/// Families that have series only once their event happened (a 429, a cooldown, a
/// sink error, a deadline known, a shared budget configured, a failed pass): an
/// archive run on a healthy platform may leave them empty. Every other family the kit
/// names must have series during an archive run.
const EVENT_ONLY: &[&str] = &[
    "genesys_archiver_rate_limited_total",
    "genesys_archiver_budget_cooldowns_total",
    "genesys_archiver_sink_errors_total",
    "genesys_archiver_soonest_deadline_seconds",
    "genesys_archiver_budget_shared_up",
];

fn path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(path(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// The alerts of the rules file, by name, with their expressions (the `expr:` line, or
/// its `|` block).
fn alerts() -> Vec<(String, String)> {
    let text = read(RULES);
    let lines: Vec<&str> = text.lines().collect();
    let mut alerts = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = line.trim().strip_prefix("- alert: ") else {
            continue;
        };
        let expr_at = (i..lines.len())
            .find(|&j| lines[j].trim_start().starts_with("expr:"))
            .unwrap();
        let inline = lines[expr_at].trim_start().trim_start_matches("expr:").trim();
        let expr = if inline == "|" {
            let indent = lines[expr_at + 1].len() - lines[expr_at + 1].trim_start().len();
            lines[expr_at + 1..]
                .iter()
                .take_while(|l| l.len() - l.trim_start().len() >= indent && !l.trim().is_empty())
                .map(|l| l.trim())
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            inline.to_owned()
        };
        alerts.push((name.to_owned(), expr));
    }
    alerts
}

/// Every `genesys_archiver_*` metric an expression names.
fn metric_names(expr: &str) -> BTreeSet<String> {
    expr.match_indices("genesys_archiver_")
        .map(|(i, _)| {
            expr[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

/// The family a series name belongs to, as its `# TYPE` line names it (a histogram's
/// `_bucket`, `_sum`, `_count` dropped; a counter keeps its `_total`).
fn family(name: &str) -> &str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name)
}

fn event_only(expr: &str) -> bool {
    metric_names(expr).iter().any(|n| EVENT_ONLY.contains(&family(n)))
}

/// Every query of the dashboard, by panel title, as Prometheus takes it: `$org` all
/// orgs, `$__rate_interval` one minute (four scrapes at the least).
fn panel_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            queries.push((
                panel["title"].as_str().unwrap().to_owned(),
                expr.replace("$org", ".*").replace("$__rate_interval", "1m"),
            ));
        }
    }
    queries
}

#[test]
fn every_alert_has_a_runbook_section_and_a_firing_and_a_quiet_unit_test() {
    let rules = read(RULES);
    let tests = read(RULE_TESTS);
    let runbook = read(RUNBOOK);
    let alerts = alerts();
    assert!(alerts.len() >= 12, "{alerts:?}");
    for (name, _) in &alerts {
        assert!(
            tests.contains(&format!("- name: {name} fires\n")),
            "no firing test of {name}"
        );
        assert!(
            tests.contains(&format!("- name: {name} stays quiet\n")),
            "no quiet test of {name}"
        );
        assert!(
            runbook.contains(&format!("\n## {name}\n")),
            "no runbook section for {name}"
        );
        let anchor = format!("\"docs/runbook.md\" }}}}#{}'", name.to_lowercase());
        assert!(rules.contains(&anchor), "{name}: its runbook_url is not {anchor}");
    }
    let lines_with = |key: &str| rules.lines().filter(|l| l.trim_start().starts_with(key)).count();
    assert_eq!(lines_with("runbook_url:"), alerts.len(), "a runbook_url per alert");
    assert_eq!(lines_with("severity:"), alerts.len(), "a severity per alert");
}

#[test]
fn the_rules_pass_promtool_check_and_their_unit_tests() {
    if servers::missing(&[Server::Prometheus]) {
        return;
    }
    for args in [["check", "rules", RULES], ["test", "rules", RULE_TESTS]] {
        let out = std::process::Command::new(Prometheus::promtool())
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("promtool {}:\n{said}", args.join(" "));
        assert!(
            out.status.success() && said.contains("SUCCESS"),
            "promtool {args:?}: {said}"
        );
    }
}

#[test]
fn the_dashboard_is_a_current_grafana_dashboard_with_its_variables() {
    let dashboard: serde_json::Value = serde_json::from_str(&read(DASHBOARD)).unwrap();
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 36, "a current schema");
    assert_eq!(dashboard["uid"], "genesys-archiver");
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let variable = |name: &str| variables.iter().find(|v| v["name"] == name).unwrap().clone();
    let datasource = variable("datasource");
    assert_eq!(datasource["type"], "datasource");
    assert_eq!(datasource["query"], "prometheus");
    let org = variable("org");
    assert_eq!(org["type"], "query");
    assert_eq!(org["includeAll"], true);
    assert_eq!(org["allValue"], ".*");
    let mut ids = BTreeSet::new();
    let (mut rows, mut panels) = (Vec::new(), 0);
    for panel in dashboard["panels"].as_array().unwrap() {
        assert!(ids.insert(panel["id"].as_u64().unwrap()), "panel ids are unique");
        let grid = &panel["gridPos"];
        assert!(
            grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap() <= 24,
            "{panel}"
        );
        assert!(grid["h"].as_u64().unwrap() > 0);
        let title = panel["title"].as_str().unwrap();
        match panel["type"].as_str().unwrap() {
            "row" => rows.push(title.to_owned()),
            "timeseries" | "stat" | "table" => {
                panels += 1;
                let targets = panel["targets"].as_array().unwrap();
                assert!(!targets.is_empty(), "{title}: no query");
                for target in targets {
                    assert_eq!(target["datasource"]["uid"], "${datasource}", "{title}");
                    assert!(!target["expr"].as_str().unwrap().is_empty(), "{title}");
                    assert!(target["refId"].is_string(), "{title}");
                }
            }
            other => panic!("{title}: panel type {other}"),
        }
    }
    assert_eq!(rows, ["Fleet: every org", "Org: $org"]);
    assert!(panels >= 14, "{panels} panels");
}

async fn query(prometheus: &Prometheus, expr: &str) -> Result<usize, String> {
    let answer: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/v1/query", prometheus.url))
        .query(&[("query", expr)])
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    if answer["status"] != "success" {
        return Err(format!("{}: {}", answer["errorType"], answer["error"]));
    }
    Ok(answer["data"]["result"].as_array().map_or(0, Vec::len))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alert_and_panel_query_evaluates_against_a_real_prometheus_scraping_the_daemon() {
    if servers::missing(&[Server::Moto, Server::Prometheus]) {
        return;
    }
    let port = free_port();
    let h = Harness::start(
        fast_org(12),
        &format!("[telemetry]\nmetrics_listen = \"127.0.0.1:{port}\"\n"),
    )
    .await;
    let expected = available(&h).len();
    let _daemon = h
        .daemon(&["run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let prometheus = Prometheus::start(JOB, &format!("127.0.0.1:{port}"), &path(RULES));

    // Until Prometheus has seen the whole archive and a few scrapes after it (bounded).
    let archived = format!("sum(genesys_archiver_uploaded_objects_total) == {expected}");
    let mut seen = 0;
    for _ in 0..1200 {
        if query(&prometheus, &archived).await == Ok(1) {
            seen += 1;
            if seen == 5 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(seen, 5, "Prometheus never saw {expected} recordings archived");

    // The daemon exposes every family the kit names, with its TYPE line, even those
    // without series yet.
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&read(DASHBOARD)).unwrap();
    let alerts = alerts();
    let panels = panel_queries(&dashboard);
    let named: BTreeSet<String> = alerts
        .iter()
        .map(|(_, e)| e)
        .chain(panels.iter().map(|(_, e)| e))
        .flat_map(|e| metric_names(e))
        .collect();
    for name in &named {
        let family = family(name);
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "the kit names {name}, which the daemon does not expose; it exposes:\n{}",
            text.lines()
                .filter(|l| l.starts_with("# TYPE"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    // Every expression, through the HTTP API: no error; series where an archive run
    // must have them. Alerts: the expression, and each metric it names.
    let mut evaluated = Vec::new();
    for (name, expr) in &alerts {
        evaluated.push((format!("alert {name}"), expr.clone(), false));
        for metric in metric_names(expr) {
            let must = !EVENT_ONLY.contains(&family(&metric));
            evaluated.push((format!("alert {name}: {metric}"), metric, must));
        }
    }
    evaluated.push((
        "alert GenesysArchiverAbsent: up".into(),
        format!("up{{job=\"{JOB}\"}} == 1"),
        true,
    ));
    for (title, expr) in &panels {
        let must = !event_only(expr);
        evaluated.push((format!("panel {title}"), expr.clone(), must));
    }
    let mut failures = Vec::new();
    eprintln!("{:<70} {:>7}  expression", "what", "series");
    for (what, expr, must) in &evaluated {
        let answer = query(&prometheus, expr).await;
        eprintln!(
            "{:<70} {:>7}  {expr}",
            what,
            answer.as_ref().map_or_else(|e| format!("error {e}"), |n| n.to_string())
        );
        match answer {
            Err(error) => failures.push(format!("{what}: {error}")),
            Ok(0) if *must => failures.push(format!("{what}: no series during an archive run: {expr}")),
            Ok(_) => {}
        }
    }
    eprintln!("{} expressions evaluated", evaluated.len());
    assert!(failures.is_empty(), "{failures:#?}");

    // The server loaded the rules file and evaluates every rule without an error.
    let rules: serde_json::Value = reqwest::get(format!("{}/api/v1/rules", prometheus.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let loaded: Vec<&serde_json::Value> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert_eq!(loaded.len(), alerts.len(), "Prometheus loaded every rule");
    for rule in loaded {
        assert_ne!(rule["health"], "err", "{rule}");
    }
}
