//! One suite for every ledger backend: each case runs against the SQLite ledger and
//! against the PostgreSQL ledger (a real throw-away server, a database per case), so a
//! behaviour cannot hold on one backend and silently not on the other. Backend-specific
//! behaviour (leases, SKIP LOCKED, outages, the SQLite file's lock) is tested beside its
//! backend (`ledger_pg.rs`, the SQLite ledger's own tests).
//!
//! Over 500 lines: one case per ledger behaviour, every case run on both backends;
//! splitting it would split the contract.

mod common;

use common::servers::Server;

use chrono::{DateTime, Duration as Span, Utc};
use common::servers::Postgres;
use futures_util::future::BoxFuture;
use genesys_archiver::ledger::postgres::{PgLedger, PgSettings};
use genesys_archiver::ledger::sqlite::SqliteLedger;
use genesys_archiver::ledger::{
    ArchiveFacts, ConversationRow, ConversationState, Ledger, ListFilter, NewRecording, ParkedSelection, PartFacts,
    Pruned, State,
};
use std::sync::Arc;
use std::time::Duration;

type Case = fn(Arc<dyn Ledger>) -> BoxFuture<'static, ()>;

/// Every case, by name.
const CASES: &[(&str, Case)] = &[
    ("duplicates_are_dropped_and_work_is_claimed_once", |l| {
        Box::pin(duplicates_are_dropped_and_work_is_claimed_once(l))
    }),
    ("claims_go_nearest_deadline_first", |l| {
        Box::pin(claims_go_nearest_deadline_first(l))
    }),
    ("every_part_is_kept_with_the_archive", |l| {
        Box::pin(every_part_is_kept_with_the_archive(l))
    }),
    ("an_upload_left_open_at_a_part_key_is_handed_to_the_next_attempt", |l| {
        Box::pin(an_upload_left_open_at_a_part_key_is_handed_to_the_next_attempt(l))
    }),
    ("a_waiting_recording_keeps_its_reason_and_its_time", |l| {
        Box::pin(a_waiting_recording_keeps_its_reason_and_its_time(l))
    }),
    (
        "status_shows_deadlines_unsettled_conversations_and_failing_listings",
        |l| Box::pin(status_shows_deadlines_unsettled_conversations_and_failing_listings(l)),
    ),
    ("a_range_is_complete_only_when_everything_in_it_is_final", |l| {
        Box::pin(a_range_is_complete_only_when_everything_in_it_is_final(l))
    }),
    ("a_newer_listing_moves_a_waiting_recording_on", |l| {
        Box::pin(a_newer_listing_moves_a_waiting_recording_on(l))
    }),
    ("notes_are_kept", |l| Box::pin(notes_are_kept(l))),
    ("untrusted_values_are_kept_safely", |l| {
        Box::pin(untrusted_values_are_kept_safely(l))
    }),
    ("a_hand_off_is_due_once_archived_and_recorded_once", |l| {
        Box::pin(a_hand_off_is_due_once_archived_and_recorded_once(l))
    }),
    ("failed_recordings_go_back_on_retry_and_the_watermark_is_kept", |l| {
        Box::pin(failed_recordings_go_back_on_retry_and_the_watermark_is_kept(l))
    }),
    ("the_first_key_stays_for_every_later_attempt", |l| {
        Box::pin(the_first_key_stays_for_every_later_attempt(l))
    }),
    ("prune_removes_only_finished_rows_older_than_the_cutoff", |l| {
        Box::pin(prune_removes_only_finished_rows_older_than_the_cutoff(l))
    }),
    (
        "parked_recordings_are_listed_with_their_reason_and_put_back_on_request",
        |l| {
            Box::pin(parked_recordings_are_listed_with_their_reason_and_put_back_on_request(
                l,
            ))
        },
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("ga-contract-{}", std::process::id()));
    for (i, (name, case)) in CASES.iter().enumerate() {
        let ledger = SqliteLedger::open(&dir.join(format!("{i}.sqlite"))).unwrap();
        eprintln!("sqlite: {name}");
        case(Arc::new(ledger.for_org("acme"))).await;
    }
    let ledger = SqliteLedger::open(&dir.join("two-orgs.sqlite")).unwrap();
    eprintln!("sqlite: one_org_cannot_touch_another_s_rows");
    one_org_cannot_touch_another_s_rows(Arc::new(ledger.for_org("acme")), Arc::new(ledger.for_org("globex"))).await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_on_postgres() {
    if common::servers::missing(&[Server::Postgres]) {
        return;
    }
    let pg = Postgres::start("contract");
    let (admin, connection) =
        deadpool_postgres::tokio_postgres::connect(&pg.url, deadpool_postgres::tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    for (i, (name, case)) in CASES.iter().enumerate() {
        admin.batch_execute(&format!("CREATE DATABASE case{i}")).await.unwrap();
        let settings = PgSettings {
            url: pg.url.replace("/postgres", &format!("/case{i}")).into(),
            pool_size: 4,
            lease: Duration::from_secs(60),
            outage_patience: Duration::from_secs(30),
        };
        let ledger = PgLedger::connect(&settings).await.unwrap();
        eprintln!("postgres: {name}");
        case(Arc::new(ledger.for_org("acme"))).await;
    }
    admin.batch_execute("CREATE DATABASE two_orgs").await.unwrap();
    let settings = PgSettings {
        url: pg.url.replace("/postgres", "/two_orgs").into(),
        pool_size: 4,
        lease: Duration::from_secs(60),
        outage_patience: Duration::from_secs(30),
    };
    let ledger = PgLedger::connect(&settings).await.unwrap();
    eprintln!("postgres: one_org_cannot_touch_another_s_rows");
    one_org_cannot_touch_another_s_rows(Arc::new(ledger.for_org("acme")), Arc::new(ledger.for_org("globex"))).await;
}

fn recording(id: &str, conversation: &str) -> NewRecording {
    NewRecording {
        end_time: Some(Utc::now()),
        ..NewRecording::due(id, conversation, Some(Utc::now()))
    }
}

fn conversation(id: &str, start: DateTime<Utc>, state: ConversationState) -> ConversationRow {
    ConversationRow {
        conversation_id: id.into(),
        start,
        end: Some(start + Span::minutes(5)),
        state,
        checks: 0,
        next_check_at: (state == ConversationState::Ended).then(Utc::now),
        reason: None,
    }
}

fn later() -> DateTime<Utc> {
    Utc::now() + Span::seconds(1)
}

fn one_file(key: &str) -> ArchiveFacts {
    ArchiveFacts::of_parts(
        vec![PartFacts {
            part: String::new(),
            key: key.into(),
            size: 7,
            sha256: "aa".into(),
            checksum: String::new(),
        }],
        Utc::now(),
    )
}

async fn duplicates_are_dropped_and_work_is_claimed_once(ledger: Arc<dyn Ledger>) {
    let mut parked = recording("x", "c");
    parked.parked = Some("deleted".into());
    let added = ledger
        .insert(vec![recording("a", "c"), recording("b", "c"), parked])
        .await
        .unwrap();
    assert_eq!(added, 3);
    assert_eq!(
        ledger
            .insert(vec![recording("a", "c"), recording("c", "c")])
            .await
            .unwrap(),
        1
    );
    let mut claimed = Vec::new();
    while let Some(c) = ledger.claim_due(later()).await.unwrap() {
        claimed.push(c.recording_id);
    }
    claimed.sort();
    assert_eq!(claimed, ["a", "b", "c"], "parked ones are not work");
    assert_eq!(ledger.unfinished().await.unwrap(), 3);
}

async fn claims_go_nearest_deadline_first(ledger: Arc<dyn Ledger>) {
    let now = Utc::now();
    let with = |id: &str, archive: Option<i64>, delete: Option<i64>| {
        let mut r = recording(id, "c");
        r.archive_date = archive.map(|d| now + Span::days(d));
        r.delete_date = delete.map(|d| now + Span::days(d));
        r
    };
    ledger
        .insert(vec![
            with("unknown", None, None),
            with("far", None, Some(300)),
            with("archive-soon", Some(2), Some(365)),
            with("delete-soon", None, Some(5)),
        ])
        .await
        .unwrap();
    let mut order = Vec::new();
    while let Some(c) = ledger.claim_due(later()).await.unwrap() {
        order.push(c.recording_id);
    }
    assert_eq!(
        order,
        ["archive-soon", "delete-soon", "far", "unknown"],
        "the nearer of archiveDate and deleteDate first, recordings without either last"
    );
    let listed = ledger.list(ListFilter::Waiting, 10).await.unwrap();
    let far = listed.iter().find(|r| r.recording_id == "far").unwrap();
    assert_eq!(
        far.deadline.map(|d| d.timestamp_millis()),
        Some((now + Span::days(300)).timestamp_millis())
    );
}

async fn every_part_is_kept_with_the_archive(ledger: Arc<dyn Ledger>) {
    let start = Utc::now() - Span::hours(2);
    ledger
        .save_conversations(vec![conversation("c", start, ConversationState::Settled)])
        .await
        .unwrap();
    ledger
        .insert(vec![recording("several", "c"), recording("one", "c")])
        .await
        .unwrap();
    let parts: Vec<PartFacts> = (0..3)
        .map(|i| PartFacts {
            part: i.to_string(),
            key: format!("k/several.part-{i}.webm"),
            size: 10 + i,
            sha256: format!("{i:02}"),
            checksum: format!("SHA256:{i:02}="),
        })
        .collect();
    let a = ledger.claim_recording("several".into()).await.unwrap().unwrap();
    ledger
        .archived(a.claim(), ArchiveFacts::of_parts(parts.clone(), Utc::now()))
        .await
        .unwrap();
    let b = ledger.claim_recording("one".into()).await.unwrap().unwrap();
    ledger.archived(b.claim(), one_file("k/one.webm")).await.unwrap();
    // A file of one with the checksum its store verified and keeps.
    ledger.insert(vec![recording("checked", "c")]).await.unwrap();
    let checked = PartFacts {
        part: String::new(),
        key: "k/checked.webm".into(),
        size: 9,
        sha256: "cc".into(),
        checksum: "SHA256:zA==".into(),
    };
    let c = ledger.claim_recording("checked".into()).await.unwrap().unwrap();
    ledger
        .archived(c.claim(), ArchiveFacts::of_parts(vec![checked.clone()], Utc::now()))
        .await
        .unwrap();

    let records = ledger.records(start, start + Span::seconds(1)).await.unwrap();
    let files = |id: &str| records.iter().find(|r| r.recording_id == id).unwrap().files.clone();
    assert_eq!(files("several"), parts, "every part, with its key, size and digest");
    assert_eq!(
        files("one"),
        vec![PartFacts {
            part: String::new(),
            key: "k/one.webm".into(),
            size: 7,
            sha256: "aa".into(),
            checksum: String::new(),
        }]
    );
    assert_eq!(
        files("checked"),
        vec![checked],
        "the store's checksum is kept beside the SHA-256"
    );
    assert!(
        records
            .iter()
            .all(|r| r.state == "archived" && r.conversation_start.timestamp_millis() == start.timestamp_millis())
    );
    assert!(
        ledger
            .records(start + Span::seconds(1), Utc::now())
            .await
            .unwrap()
            .is_empty(),
        "by its conversation's start"
    );
}

async fn an_upload_left_open_at_a_part_key_is_handed_to_the_next_attempt(ledger: Arc<dyn Ledger>) {
    ledger.insert(vec![recording("r", "c")]).await.unwrap();
    let first = ledger.claim_due(later()).await.unwrap().unwrap();
    let pattern = ledger.fix_key(first.claim(), "k/r{part}.webm".into()).await.unwrap();
    assert_eq!(pattern, "k/r{part}.webm");
    ledger
        .upload_opened(first.claim(), "k/r.part-1.webm".into(), "upload-1".into())
        .await
        .unwrap();
    // The attempt fails without being able to abort (the store is down).
    ledger
        .reschedule(first.claim(), State::Retrying, Utc::now(), 1, Some("store down".into()))
        .await
        .unwrap();
    let second = ledger.claim_due(later()).await.unwrap().unwrap();
    assert_eq!(second.open_upload.as_deref(), Some("upload-1"));
    assert_eq!(
        second.upload_key.as_deref(),
        Some("k/r.part-1.webm"),
        "where it was opened"
    );
    assert_eq!(second.key.as_deref(), Some("k/r{part}.webm"), "the pattern stays");
    ledger.upload_closed(second.claim()).await.unwrap();
    ledger
        .reschedule(second.claim(), State::Retrying, Utc::now(), 2, None)
        .await
        .unwrap();
    let third = ledger.claim_due(later()).await.unwrap().unwrap();
    assert_eq!((third.open_upload, third.upload_key), (None, None));
}

async fn a_waiting_recording_keeps_its_reason_and_its_time(ledger: Arc<dyn Ledger>) {
    let mut uploading = recording("u", "c");
    uploading.transcoding = true;
    uploading.not_before = Some(Utc::now() + Span::hours(24));
    uploading.waiting = Some("UPLOADING in Genesys".into());
    ledger.insert(vec![uploading]).await.unwrap();
    assert!(
        ledger.claim_due(later()).await.unwrap().is_none(),
        "not due before its deadline"
    );
    let waiting = ledger.list(ListFilter::Waiting, 10).await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(
        (waiting[0].state.as_str(), waiting[0].reason.as_deref()),
        ("transcoding", Some("UPLOADING in Genesys"))
    );
    let status = ledger.status().await.unwrap();
    assert_eq!(
        status.oldest_unarchived.map(|(id, _)| id).as_deref(),
        Some("u"),
        "counted as unarchived"
    );
    // Its conversation's listing hands over a URL: it is claimed whatever its due time.
    assert!(ledger.claim_recording("u".into()).await.unwrap().is_some());
}

async fn status_shows_deadlines_unsettled_conversations_and_failing_listings(ledger: Arc<dyn Ledger>) {
    let now = Utc::now();
    let empty = ledger.status().await.unwrap();
    assert_eq!((empty.soonest_deadline, empty.oldest_unsettled), (None, None));
    assert!(empty.failing_conversations.is_empty());

    let mut soon = recording("soon", "c1");
    soon.delete_date = Some(now + Span::hours(3));
    let mut later_one = recording("later", "c1");
    later_one.delete_date = Some(now + Span::days(3));
    let mut archived = recording("done", "c1");
    archived.delete_date = Some(now + Span::hours(1));
    ledger.insert(vec![soon, later_one, archived]).await.unwrap();
    let done = ledger.claim_recording("done".into()).await.unwrap().unwrap();
    ledger.archived(done.claim(), one_file("k/done")).await.unwrap();

    let old = conversation("old", now - Span::hours(3), ConversationState::Ended);
    let mut failing = conversation("failing", now - Span::hours(2), ConversationState::Ended);
    failing.reason = Some("listing failed: HTTP 403".into());
    let settled = conversation("settled", now - Span::hours(9), ConversationState::Settled);
    ledger
        .save_conversations(vec![old, failing.clone(), settled])
        .await
        .unwrap();

    let status = ledger.status().await.unwrap();
    let (id, at) = status.soonest_deadline.clone().unwrap();
    assert_eq!(id, "soon", "the archived one no longer counts");
    assert_eq!(at.timestamp_millis(), (now + Span::hours(3)).timestamp_millis());
    let (id, end) = status.oldest_unsettled.clone().unwrap();
    assert_eq!(id, "old", "settled ones do not count");
    assert_eq!(
        end.timestamp_millis(),
        (now - Span::hours(3) + Span::minutes(5)).timestamp_millis()
    );
    assert_eq!(
        status.failing_conversations,
        vec![("failing".to_owned(), "listing failed: HTTP 403".to_owned())]
    );

    // A listing that succeeds clears the reason.
    failing.reason = None;
    failing.state = ConversationState::Settled;
    ledger.save_conversations(vec![failing]).await.unwrap();
    assert!(ledger.status().await.unwrap().failing_conversations.is_empty());
    let known = ledger.conversations(vec!["old".into()]).await.unwrap();
    assert_eq!(known["old"].reason, None);
}

async fn a_range_is_complete_only_when_everything_in_it_is_final(ledger: Arc<dyn Ledger>) {
    let day: DateTime<Utc> = "2026-11-02T00:00:00Z".parse().unwrap();
    let next = day + Span::days(1);
    assert_eq!(ledger.first_start().await.unwrap(), None);
    ledger
        .save_conversations(vec![
            conversation("c1", day + Span::hours(1), ConversationState::Settled),
            conversation("c2", day + Span::hours(2), ConversationState::Ended),
            conversation("c3", next + Span::hours(1), ConversationState::Active),
        ])
        .await
        .unwrap();
    assert_eq!(ledger.first_start().await.unwrap(), Some(day + Span::hours(1)));
    assert_eq!(ledger.unsettled_between(day, next).await.unwrap(), 1, "c2 not settled");
    ledger
        .save_conversations(vec![conversation(
            "c2",
            day + Span::hours(2),
            ConversationState::Settled,
        )])
        .await
        .unwrap();
    assert_eq!(ledger.unsettled_between(day, next).await.unwrap(), 0);
    // A recording of a settled conversation still waiting keeps the range open.
    ledger.insert(vec![recording("r1", "c1")]).await.unwrap();
    assert_eq!(ledger.unsettled_between(day, next).await.unwrap(), 1);
    let r = ledger.claim_recording("r1".into()).await.unwrap().unwrap();
    ledger.fail(r.claim(), 4, "gave up".into()).await.unwrap();
    assert_eq!(
        ledger.unsettled_between(day, next).await.unwrap(),
        0,
        "failed is final here"
    );
    let records = ledger.records(day, next).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0].state.as_str(), records[0].reason.as_deref()),
        ("failed", Some("gave up"))
    );
    assert!(records[0].files.is_empty());
    assert_eq!(
        ledger.unsettled_between(next, next + Span::days(1)).await.unwrap(),
        1,
        "c3 is active"
    );
}

async fn a_newer_listing_moves_a_waiting_recording_on(ledger: Arc<dyn Ledger>) {
    let uploading = |id: &str| {
        let mut r = recording(id, "c");
        r.transcoding = true;
        r.not_before = Some(Utc::now() + Span::hours(24));
        r.waiting = Some("UPLOADING in Genesys".into());
        r
    };
    ledger
        .insert(vec![uploading("ready"), uploading("gone"), recording("due", "c")])
        .await
        .unwrap();
    // The next listing: one is ready now (with its dates), one was deleted; listing
    // the due one as uploading again changes nothing.
    let delete = Utc::now() + Span::days(30);
    let mut ready = recording("ready", "c");
    ready.delete_date = Some(delete);
    let mut gone = recording("gone", "c");
    gone.parked = Some("deleted in Genesys".into());
    assert_eq!(ledger.insert(vec![ready, gone, uploading("due")]).await.unwrap(), 2);
    let waiting = ledger.list(ListFilter::Waiting, 10).await.unwrap();
    let ready = waiting.iter().find(|r| r.recording_id == "ready").unwrap();
    assert_eq!((ready.state.as_str(), ready.reason.as_deref()), ("discovered", None));
    assert_eq!(
        ready.deadline.map(|d| d.timestamp_millis()),
        Some(delete.timestamp_millis())
    );
    let parked = ledger.list(ListFilter::Parked, 10).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(
        (parked[0].recording_id.as_str(), parked[0].reason.as_deref()),
        ("gone", Some("deleted in Genesys"))
    );
    let mut claimed = Vec::new();
    while let Some(c) = ledger.claim_due(later()).await.unwrap() {
        claimed.push(c.recording_id);
    }
    claimed.sort();
    assert_eq!(
        claimed,
        ["due", "ready"],
        "ready is due now, not in 24 hours; due stayed due"
    );
}

async fn notes_are_kept(ledger: Arc<dyn Ledger>) {
    assert_eq!(ledger.note("manifest").await.unwrap(), None);
    ledger.set_note("manifest", "one".into()).await.unwrap();
    ledger.set_note("manifest", "two".into()).await.unwrap();
    assert_eq!(ledger.note("manifest").await.unwrap().as_deref(), Some("two"));
}

/// Values straight from an API answer (a NUL byte, an id of 8,000 bytes, an escape
/// sequence) are kept on every backend: ids under their derived key, reasons through
/// the sanitizer. PostgreSQL refused both raw (22021, 54000) and the org stopped.
async fn untrusted_values_are_kept_safely(ledger: Arc<dyn Ledger>) {
    use genesys_archiver::untrusted::ledger_key;
    let (nul, huge) = ("r\u{0}\u{1b}[2J".to_owned(), "9".repeat(8000));
    let mut parked = recording(&nul, &format!("c{huge}"));
    parked.parked = Some(format!("fileState QUAR\u{0}ANTINED {}", "x".repeat(5000)));
    let mut waiting = recording(&huge, "c1");
    waiting.transcoding = true;
    waiting.waiting = Some("UPLOADING\u{0} in Genesys".into());
    waiting.not_before = Some(later());
    assert_eq!(ledger.insert(vec![parked, waiting]).await.unwrap(), 2);
    // Listed again: the same derived keys, no second row.
    assert_eq!(ledger.insert(vec![recording(&nul, "c2")]).await.unwrap(), 0);

    ledger
        .park_conversation(format!("c\u{0}{huge}"), "unsafe conversation id \u{0}".into())
        .await
        .unwrap();
    let status = ledger.status().await.unwrap();
    let (id, reason) = &status.parked_conversations[0];
    assert_eq!(id, &ledger_key(&format!("c\u{0}{huge}")));
    assert!(!reason.contains('\u{0}'), "{reason:?}");

    let rows = ledger.list(ListFilter::Parked, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].recording_id, ledger_key(&nul));
    assert_eq!(rows[0].conversation_id, ledger_key(&format!("c{huge}")));
    let reason = rows[0].reason.as_deref().unwrap();
    assert!(
        reason.starts_with(r"fileState QUAR\u{0}ANTINED") && reason.len() <= 512,
        "{reason:?}"
    );
    let rows = ledger.list(ListFilter::Waiting, 10).await.unwrap();
    assert_eq!(rows[0].recording_id, ledger_key(&huge));
    assert!(!rows[0].reason.as_deref().unwrap().contains('\u{0}'));

    // A reason handed to a claimed row's change is sanitized too.
    ledger.insert(vec![recording("r-ok", "c3")]).await.unwrap();
    let claimed = ledger.claim_due(Utc::now()).await.unwrap().expect("due");
    ledger
        .fail(claimed.claim(), 1, format!("HTTP 500: \u{0}{}", "e".repeat(100_000)))
        .await
        .unwrap();
    let failed = ledger.list(ListFilter::Failed, 10).await.unwrap();
    assert!(failed[0].reason.as_deref().unwrap().len() <= 512);
}

/// Two orgs whose API answers carry the same ids (one Genesys org configured twice, a
/// hostile `api_url`): each has rows of its own, and nothing one does reaches the
/// other's, on every backend. Ids used to be global keys: the second org's listing was
/// dropped as a duplicate, and it could claim, park or re-key the first's rows.
async fn one_org_cannot_touch_another_s_rows(acme: Arc<dyn Ledger>, globex: Arc<dyn Ledger>) {
    assert_eq!(acme.insert(vec![recording("r1", "c1")]).await.unwrap(), 1);
    assert_eq!(
        globex.insert(vec![recording("r1", "c1")]).await.unwrap(),
        1,
        "a row of its own"
    );
    let start = Utc::now() - Span::hours(1);
    acme.save_conversations(vec![conversation("c1", start, ConversationState::Ended)])
        .await
        .unwrap();
    globex
        .save_conversations(vec![conversation("c1", start, ConversationState::Settled)])
        .await
        .unwrap();
    assert_eq!(
        acme.conversations(vec!["c1".into()]).await.unwrap()["c1"].state,
        ConversationState::Ended,
        "globex's save did not overwrite acme's conversation"
    );

    // globex claims r1 through a listed URL: its own row, not acme's.
    let claimed = globex.claim_recording("r1".into()).await.unwrap().expect("globex's r1");
    globex.archived(claimed.claim(), one_file("globex/r1")).await.unwrap();
    assert_eq!(acme.status().await.unwrap().recordings_in(State::Archived), 0);
    assert_eq!(globex.status().await.unwrap().recordings_in(State::Archived), 1);
    // A claim token taken to the other org's view changes nothing there.
    let acme_claim = acme.claim_due(Utc::now()).await.unwrap().expect("acme's r1");
    assert!(globex.fail(acme_claim.claim(), 1, "not yours".into()).await.is_err());
    acme.archived(acme_claim.claim(), one_file("acme/r1")).await.unwrap();

    // globex parks c1: acme's conversation is not parked.
    globex.park_conversation("c1".into(), "malformed".into()).await.unwrap();
    assert_eq!(
        acme.conversations(vec!["c1".into()]).await.unwrap()["c1"].state,
        ConversationState::Ended
    );
    assert!(acme.status().await.unwrap().parked_conversations.is_empty());
    assert_eq!(globex.status().await.unwrap().parked_conversations.len(), 1);
    let records = acme.records(start - Span::hours(1), Utc::now()).await.unwrap();
    assert_eq!(
        records.len(),
        1,
        "acme's range reads its own recordings only: {records:?}"
    );
}

/// The retention hand-off's queue: archived recordings only, each due until its
/// hand-off is recorded, recorded once, shown by `list --state handed-off`.
async fn a_hand_off_is_due_once_archived_and_recorded_once(ledger: Arc<dyn Ledger>) {
    use genesys_archiver::ledger::Handoff;
    let delete = Utc::now() + Span::days(300);
    ledger
        .insert(vec![
            NewRecording {
                delete_date: Some(delete),
                ..recording("a", "c")
            },
            recording("b", "c"),
            recording("waiting", "c"),
        ])
        .await
        .unwrap();
    for id in ["a", "b"] {
        let claimed = ledger.claim_recording(id.into()).await.unwrap().unwrap();
        let file = PartFacts {
            part: String::new(),
            key: format!("k/{id}.webm"),
            size: 5,
            sha256: "ee".into(),
            checksum: "SHA256:7g==".into(),
        };
        ledger
            .archived(claimed.claim(), ArchiveFacts::of_parts(vec![file], Utc::now()))
            .await
            .unwrap();
    }
    let due = ledger.handoff_due(None, 10).await.unwrap();
    let ids: Vec<&str> = due.iter().map(|d| d.recording_id.as_str()).collect();
    assert_eq!(ids, ["a", "b"], "archived ones only, the earliest archived first");
    let a = &due[0];
    assert_eq!(
        a.delete_date.map(|d| d.timestamp_millis()),
        Some(delete.timestamp_millis())
    );
    assert_eq!(
        a.files[0].checksum, "SHA256:7g==",
        "the store's checksum, to verify against"
    );
    assert!(ledger.claim_handoff("a".into()).await.unwrap());
    assert!(!ledger.claim_handoff("waiting".into()).await.unwrap(), "not archived");

    let set = Utc::now() + Span::days(30);
    let done = Handoff {
        at: Utc::now(),
        old: Some(delete),
        new: Some(set),
        note: "set".into(),
    };
    ledger.handed_off("a".into(), done.clone()).await.unwrap();
    // Recorded once: a replay changes nothing.
    let again = Handoff {
        new: None,
        note: "replayed".into(),
        ..done.clone()
    };
    ledger.handed_off("a".into(), again).await.unwrap();
    assert!(!ledger.claim_handoff("a".into()).await.unwrap(), "done");
    let due: Vec<String> = ledger
        .handoff_due(None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.recording_id)
        .collect();
    assert_eq!(due, ["b"]);
    let listed = ledger.list(ListFilter::HandedOff, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    let shown = listed[0].handoff.clone().unwrap();
    assert_eq!(
        (shown.new.map(|d| d.timestamp_millis()), shown.note.as_str()),
        (Some(set.timestamp_millis()), "set")
    );
    assert_eq!(shown.old.map(|d| d.timestamp_millis()), Some(delete.timestamp_millis()));
}

async fn failed_recordings_go_back_on_retry_and_the_watermark_is_kept(ledger: Arc<dyn Ledger>) {
    ledger.insert(vec![recording("a", "c")]).await.unwrap();
    let a = ledger.claim_due(later()).await.unwrap().unwrap();
    ledger.fail(a.claim(), 8, "boom".into()).await.unwrap();
    assert_eq!(ledger.unfinished().await.unwrap(), 0);
    let failed = ledger.list(ListFilter::Failed, 10).await.unwrap();
    assert_eq!((failed[0].attempts, failed[0].reason.as_deref()), (8, Some("boom")));
    assert_eq!(ledger.retry_failed().await.unwrap(), 1);
    assert_eq!(ledger.unfinished().await.unwrap(), 1);
    let again = ledger.claim_due(later()).await.unwrap().expect("due again");
    assert_eq!(again.attempts, 0, "a retried recording starts its attempts again");

    assert_eq!(ledger.watermark().await.unwrap(), None);
    let t = DateTime::parse_from_rfc3339("2026-11-23T10:00:00.123Z")
        .unwrap()
        .with_timezone(&Utc);
    ledger.set_watermark(t).await.unwrap();
    ledger.set_watermark(t + Span::minutes(1)).await.unwrap();
    assert_eq!(ledger.watermark().await.unwrap(), Some(t + Span::minutes(1)));
    assert_eq!(ledger.status().await.unwrap().watermark, Some(t + Span::minutes(1)));
}

async fn the_first_key_stays_for_every_later_attempt(ledger: Arc<dyn Ledger>) {
    ledger.insert(vec![recording("a", "c")]).await.unwrap();
    let first = ledger.claim_due(later()).await.unwrap().unwrap();
    assert_eq!(first.key, None);
    assert_eq!(
        ledger.fix_key(first.claim(), "hour=10/a".into()).await.unwrap(),
        "hour=10/a"
    );
    ledger
        .reschedule(first.claim(), State::Retrying, Utc::now(), 1, Some("boom".into()))
        .await
        .unwrap();
    let again = ledger.claim_due(later()).await.unwrap().unwrap();
    assert_eq!((again.key.as_deref(), again.attempts), (Some("hour=10/a"), 1));
    assert_eq!(again.open_upload, None);
    assert_eq!(
        ledger.fix_key(again.claim(), "hour=11/a".into()).await.unwrap(),
        "hour=10/a",
        "a later attempt never moves the key"
    );
}

async fn prune_removes_only_finished_rows_older_than_the_cutoff(ledger: Arc<dyn Ledger>) {
    let old = Utc::now() - Span::days(500);
    let mut rows = Vec::new();
    for (id, start, parked) in [
        ("old-archived", old, None),
        ("old-parked", old, Some("deleted")),
        ("old-waiting", old, None),
        ("new-archived", Utc::now(), None),
    ] {
        rows.push(NewRecording {
            start_time: Some(start),
            parked: parked.map(str::to_owned),
            ..recording(id, "c")
        });
    }
    ledger.insert(rows).await.unwrap();
    for id in ["old-archived", "new-archived"] {
        let c = ledger.claim_recording(id.into()).await.unwrap().unwrap();
        ledger.archived(c.claim(), one_file(id)).await.unwrap();
    }
    ledger
        .save_conversations(vec![
            conversation("old-settled", old, ConversationState::Settled),
            conversation("old-ended", old, ConversationState::Ended),
            conversation("new-settled", Utc::now(), ConversationState::Settled),
        ])
        .await
        .unwrap();
    ledger
        .park_conversation("old-parked".into(), "malformed".into())
        .await
        .unwrap();

    let pruned = ledger.prune(Utc::now() - Span::days(400)).await.unwrap();
    assert_eq!(
        pruned,
        Pruned {
            recordings: 2,
            conversations: 1
        }
    );
    let status = ledger.status().await.unwrap();
    assert_eq!(
        (
            status.recordings_in(State::Archived),
            status.recordings_in(State::Parked),
            status.recordings_in(State::Discovered)
        ),
        (1, 0, 1)
    );
    assert_eq!(
        (
            status.conversations_in(ConversationState::Settled),
            status.conversations_in(ConversationState::Ended)
        ),
        (1, 1)
    );
    assert_eq!(status.parked_conversations.len(), 1, "parked just now: kept");
}

async fn parked_recordings_are_listed_with_their_reason_and_put_back_on_request(ledger: Arc<dyn Ledger>) {
    let parked = |id: &str, reason: &str| NewRecording {
        parked: Some(reason.into()),
        ..recording(id, "c")
    };
    ledger
        .insert(vec![
            parked("restored", "archived in Genesys (restore it there to archive it)"),
            parked("deleted", "deleted in Genesys"),
            parked("other", "not a screen recording"),
            recording("waiting", "c"),
        ])
        .await
        .unwrap();
    let mut listed: Vec<(String, Option<String>)> = ledger
        .list(ListFilter::Parked, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.recording_id, r.reason))
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            ("deleted".to_owned(), Some("deleted in Genesys".to_owned())),
            ("other".to_owned(), Some("not a screen recording".to_owned())),
            (
                "restored".to_owned(),
                Some("archived in Genesys (restore it there to archive it)".to_owned())
            ),
        ]
    );
    assert_eq!(ledger.list(ListFilter::Waiting, 100).await.unwrap().len(), 1);
    assert_eq!(ledger.list(ListFilter::Failed, 100).await.unwrap().len(), 0);

    // By reason (case-insensitive), by id, then all.
    let by_reason = ParkedSelection::ReasonContains("ARCHIVED IN GENESYS".into());
    assert_eq!(ledger.retry_parked(by_reason).await.unwrap(), 1);
    assert_eq!(
        ledger.retry_parked(ParkedSelection::Id("nope".into())).await.unwrap(),
        0
    );
    let waiting: Vec<String> = ledger
        .list(ListFilter::Waiting, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.recording_id)
        .collect();
    assert_eq!(waiting, ["restored", "waiting"]);
    assert_eq!(
        ledger
            .retry_parked(ParkedSelection::Id("deleted".into()))
            .await
            .unwrap(),
        1
    );
    assert_eq!(ledger.retry_parked(ParkedSelection::All).await.unwrap(), 1);
    assert_eq!(ledger.list(ListFilter::Parked, 100).await.unwrap().len(), 0);
    let put_back = ledger.list(ListFilter::Waiting, 100).await.unwrap();
    assert!(
        put_back.iter().all(|r| r.reason.is_none() && r.attempts == 0),
        "{put_back:?}"
    );
}
