//! Hostile input from the API, end to end: an org whose normal conversations sit beside
//! one conversation per hostile case (`genesys_archiver::sim::hostile`). The daemon must
//! archive the normal ones, park every hostile one with its reason, never crash, never
//! write a key outside its layout, and never fetch from a host it does not trust.

mod common;

use common::harness::{Harness, assert_bucket_holds_exactly, available, screen_only};
use genesys_archiver::sim::SimConfig;

/// What each case's park reason must say.
fn expected_reason(case: &str) -> &'static str {
    match case {
        "MalformedJson" => "EOF while parsing",
        "WrongTypes" => "invalid type",
        "MissingId" => "missing field `id`",
        "HugeBody" => "larger than",
        "MalformedAnalyticsRow" => "invalid analytics row at conversationStart",
        "SlashId" | "DotDotId" | "ControlId" => "unsafe recording id",
        "UnknownFileState" => "QUARANTINED",
        "EmptyMediaUris" => "no download URL",
        "ForeignHost" => "169.254.169.254",
        "RedirectElsewhere" => "169.254.169.254",
        "PlainHttp" => "`http`",
        other => panic!("no expectation for case {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_answers_are_parked_with_their_reason_and_the_rest_is_archived() {
    let sim = SimConfig {
        hostile: true,
        ..screen_only(10, (16 * 1024, 256 * 1024))
    };
    let h = Harness::start(sim, "").await;
    let (status, logs) = h.run_once().await;
    // Parked is a final state: a run with only archived and parked recordings exits 0.
    assert!(status.success(), "{logs}");

    // The normal recordings, exactly, and nothing else: no key shaped by a hostile id.
    assert_bucket_holds_exactly(&h, &available(&h)).await;

    let ledger = h.ledger();
    let conn = rusqlite::Connection::open(h.dir.join("ledger.sqlite")).unwrap();
    let cases = h.sim.hostile_cases();
    assert_eq!(cases.len(), 13);
    for case in &cases {
        let reason = match &case.recording_id {
            Some(id) => {
                let (state, reason, key, _) = ledger
                    .get(id)
                    .unwrap_or_else(|| panic!("{} not in the ledger", case.case));
                assert_eq!(state, "parked", "{}: {reason:?}", case.case);
                // A key is fixed before the download, so a refused URL may leave one
                // (no object behind it: the bucket check above); a hostile id never does.
                if case.case.ends_with("Id") {
                    assert!(key.is_none(), "{}: no key was ever made", case.case);
                }
                reason.clone().unwrap_or_default()
            }
            None => conn
                .query_row(
                    "SELECT reason FROM parked_conversations WHERE conversation_id = ?1",
                    [&case.conversation_id],
                    |r| r.get::<_, String>(0),
                )
                .unwrap_or_else(|e| panic!("{}: conversation not parked ({e})", case.case)),
        };
        println!("{:<18} parked: {reason}", case.case);
        assert!(
            reason.contains(expected_reason(&case.case)),
            "{}: reason {reason:?}",
            case.case
        );
    }
    // The redirect was followed to its first hop only: the media host answered 302 and
    // nothing was downloaded for any hostile recording.
    let stats = h.sim.stats();
    assert!(stats.count("media", "302") >= 1);
    assert_eq!(stats.count("media", "200") as usize, available(&h).len());
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
    let ledger = h.ledger();
    for case in cases.iter().filter(|c| c.case.ends_with("Id")) {
        let Some(id) = case.recording_id.as_ref() else { continue };
        let (state, reason, ..) = &ledger[id];
        assert_eq!(state, "parked", "{}", case.case);
        assert!(
            reason.as_deref().unwrap_or("").starts_with("unsafe recording id"),
            "{reason:?}"
        );
    }
}
