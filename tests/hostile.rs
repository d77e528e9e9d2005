//! Hostile input from the API, end to end: an org whose normal conversations sit beside
//! one conversation per hostile case (`genesys_sim::hostile`). The daemon must
//! archive the normal ones, park every hostile one with its reason, never crash, never
//! write a key outside its layout, and never fetch from a host it does not trust.

mod common;

use common::servers::Server;

use common::harness::{Harness, assert_bucket_holds_exactly, available, screen_only};
use common::servers::Postgres;
use genesys_archiver::untrusted::ledger_key;
use genesys_sim::SimConfig;
use std::collections::BTreeMap;

/// What each case's park reason must say.
fn expected_reason(case: &str) -> &'static str {
    match case {
        "MalformedJson" => "EOF while parsing",
        "WrongTypes" => "invalid type",
        "MissingId" => "missing field `id`",
        "HugeBody" => "larger than",
        "MalformedAnalyticsRow" => "invalid analytics row at conversationStart",
        "UnsafeConversationId" => "unsafe conversation id",
        "SlashId" | "DotDotId" | "ControlId" | "HugeId" => "unsafe recording id",
        "UnknownFileState" => "QUARANTINED",
        "EmptyMediaUris" => "no download URL",
        "ForeignHost" => "169.254.169.254",
        "RedirectElsewhere" => "169.254.169.254",
        "PlainHttp" => "`http`",
        other => panic!("no expectation for case {other}"),
    }
}

fn hostile_org() -> SimConfig {
    SimConfig {
        hostile: true,
        ..screen_only(10, (16 * 1024, 256 * 1024))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_answers_are_parked_with_their_reason_and_the_rest_is_archived() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let h = Harness::start(hostile_org(), "").await;
    hostile_answers_are_parked(&h).await;
}

/// The same on the PostgreSQL ledger, which refuses what SQLite takes (a NUL byte in
/// `TEXT`, a key beyond an index page): no hostile value may reach it raw, and the org
/// must not stop on one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_answers_never_stop_an_org_on_the_postgresql_ledger() {
    if common::servers::missing(&[Server::Moto, Server::Postgres]) {
        return;
    }
    let pg = Postgres::start("hostile");
    let h = Harness::start_on_postgres(hostile_org(), "", &pg.url).await;
    hostile_answers_are_parked(&h).await;
}

/// Parked recordings (`list --state parked --json`) by ledger key: reason.
async fn parked_recordings(h: &Harness) -> BTreeMap<String, String> {
    let out = h
        .daemon(&["list", "--state", "parked", "--json", "--limit", "1000"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.iter()
        .map(|r| {
            (
                r["recording_id"].as_str().unwrap().to_owned(),
                r["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Parked conversations (`status --json`) by ledger key: reason.
async fn parked_conversations(h: &Harness) -> BTreeMap<String, String> {
    let out = h.daemon(&["status", "--json"]).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["parked_conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["conversation_id"].as_str().unwrap().to_owned(),
                c["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn hostile_answers_are_parked(h: &Harness) {
    let (status, logs) = h.run_once().await;
    // Parked is a final state: a run with only archived and parked recordings exits 0.
    assert!(status.success(), "{logs}");
    assert!(
        !logs.contains("Org run failed"),
        "an org stopped on a hostile value: {logs}"
    );

    // The normal recordings, exactly, and nothing else: no key shaped by a hostile id.
    assert_bucket_holds_exactly(h, &available(h)).await;

    let (recordings, conversations) = (parked_recordings(h).await, parked_conversations(h).await);
    let cases = h.sim.hostile_cases();
    assert_eq!(cases.len(), 15);
    for case in &cases {
        // Unsafe ids are kept under a derived key (never raw), whichever ledger.
        let reason = match &case.recording_id {
            Some(id) => recordings.get(&ledger_key(id)),
            None => conversations.get(&ledger_key(&case.conversation_id)),
        }
        .unwrap_or_else(|| panic!("{}: not parked ({recordings:?} {conversations:?})", case.case));
        println!("{:<20} parked: {reason}", case.case);
        assert!(
            reason.contains(expected_reason(&case.case)),
            "{}: reason {reason:?}",
            case.case
        );
        assert!(
            !reason.chars().any(char::is_control) && reason.len() <= 512,
            "{}: the reason is sanitized: {reason:?}",
            case.case
        );
    }
    // The redirect was followed to its first hop only: the media host answered 302 and
    // nothing was downloaded for any hostile recording.
    let stats = h.sim.stats();
    assert!(stats.count("media", "302") >= 1);
    assert_eq!(stats.count("media", "200") as usize, available(h).len());
    // The control characters never reached a log line raw.
    assert!(!logs.contains('\u{1b}'), "an escape sequence reached the logs");

    // An operator puts the unsafe ids back: they are parked again before any API call.
    let out = h
        .daemon(&["retry", "--parked", "--reason", "unsafe"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let recording_calls = h.sim.stats().calls("recording");
    let (status, logs) = h.run_once().await;
    assert!(status.success(), "{logs}");
    assert_eq!(
        h.sim.stats().calls("recording"),
        recording_calls,
        "no call with an unsafe id"
    );
    let recordings = parked_recordings(h).await;
    for case in cases.iter().filter(|c| c.case.ends_with("Id")) {
        let Some(id) = case.recording_id.as_ref() else { continue };
        let reason = &recordings[&ledger_key(id)];
        assert!(reason.starts_with("unsafe recording id"), "{reason:?}");
    }
}
