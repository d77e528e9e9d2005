//! The SQLite ledger's own behaviour (the file, its recovery at start, its migrations,
//! its counters and query plans); the behaviour both ledgers share is
//! `tests/ledger_contract.rs`, run on both.

use super::*;
use crate::ledger::{ArchiveFacts, State};

fn temp_ledger() -> (SqliteLedger, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("ga-ledger-{}-{}", std::process::id(), fastrand::u64(..)));
    let ledger = SqliteLedger::open(&dir.join("ledger.sqlite")).unwrap();
    (ledger, dir)
}

fn new(id: &str, parked: Option<&str>) -> NewRecording {
    NewRecording {
        parked: parked.map(str::to_owned),
        ..NewRecording::due(id, "c", Some(Utc::now()))
    }
}

#[tokio::test]
async fn the_watermark_persists_when_the_file_is_opened_again() {
    let (ledger, dir) = temp_ledger();
    let t = DateTime::parse_from_rfc3339("2026-11-23T10:00:00.123Z")
        .unwrap()
        .with_timezone(&Utc);
    ledger.set_watermark(t).await.unwrap();
    drop(ledger);
    let again = SqliteLedger::open(&dir.join("ledger.sqlite")).unwrap();
    assert_eq!(again.watermark().await.unwrap(), Some(t));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn recovery_requeues_in_flight_work_and_reports_open_uploads() {
    let (ledger, dir) = temp_ledger();
    ledger.insert(vec![new("a", None), new("b", None)]).await.unwrap();
    let now = Utc::now() + chrono::Duration::seconds(1);
    let a = ledger.claim_due(now).await.unwrap().unwrap();
    let b = ledger.claim_due(now).await.unwrap().unwrap();
    assert_eq!((a.recording_id.as_str(), b.recording_id.as_str()), ("a", "b"));
    ledger.fix_key(a.claim(), "k/a".into()).await.unwrap();
    ledger
        .upload_opened(a.claim(), "k/a".into(), "up-1".into())
        .await
        .unwrap();
    ledger
        .archived(
            b.claim(),
            ArchiveFacts {
                key: "k/b".into(),
                size: 3,
                sha256: "x".into(),
                checksum: String::new(),
                archived_at: Utc::now(),
                parts: Vec::new(),
            },
        )
        .await
        .unwrap();
    let open = ledger.recover().await.unwrap();
    assert_eq!(
        open,
        vec![OpenUpload {
            recording_id: "a".into(),
            key: "k/a".into(),
            upload_id: "up-1".into()
        }]
    );
    let status = ledger.status().await.unwrap();
    assert_eq!(status.counts["discovered"], 1);
    assert_eq!(status.counts["archived"], 1);
    assert_eq!(status.counts["uploading"], 0);
    std::fs::remove_dir_all(dir).unwrap();
}

fn facts(key: &str) -> ArchiveFacts {
    ArchiveFacts {
        key: key.into(),
        size: 1,
        sha256: "x".into(),
        checksum: String::new(),
        archived_at: Utc::now(),
        parts: Vec::new(),
    }
}

fn soon() -> DateTime<Utc> {
    Utc::now() + chrono::Duration::seconds(1)
}

/// What the triggers keep must equal what a full count says.
fn counted_matches_grouped(dir: &std::path::Path) {
    let conn = Connection::open(dir.join("ledger.sqlite")).unwrap();
    for (kind, table) in [("recording", "recordings"), ("conversation", "conversations")] {
        let grouped: Vec<(String, i64)> = conn
            .prepare(&format!(
                "SELECT org || '/' || state, COUNT(*) FROM {table} GROUP BY org, state ORDER BY org, state"
            ))
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let counted: Vec<(String, i64)> = conn
            .prepare("SELECT org || '/' || state, n FROM counts WHERE kind = ?1 AND n <> 0 ORDER BY org, state")
            .unwrap()
            .query_map([kind], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(counted, grouped, "{kind} counts");
    }
}

#[tokio::test]
async fn a_claim_taken_over_changes_nothing() {
    let (ledger, dir) = temp_ledger();
    ledger.insert(vec![new("a", None)]).await.unwrap();
    let first = ledger.claim_due(soon()).await.unwrap().unwrap();
    // Another owner recovers the ledger and claims the recording again.
    ledger.recover().await.unwrap();
    let second = ledger.claim_due(soon()).await.unwrap().unwrap();
    assert_ne!(first.token, second.token);
    for lost in [
        ledger.archived(first.claim(), facts("k/a")).await,
        ledger.park(first.claim(), "x".into()).await,
        ledger.fail(first.claim(), 1, "x".into()).await,
        ledger
            .reschedule(first.claim(), State::Retrying, Utc::now(), 1, None)
            .await,
        ledger.upload_opened(first.claim(), "k".into(), "u".into()).await,
        ledger.upload_closed(first.claim()).await,
        ledger.fix_key(first.claim(), "k/a".into()).await.map(drop),
    ] {
        assert_eq!(lost, Err(LedgerError::ClaimLost("a".into())));
    }
    ledger.archived(second.claim(), facts("k/a")).await.unwrap();
    assert_eq!(ledger.status().await.unwrap().counts["archived"], 1);
    // A finished recording takes no claimed change either.
    assert!(ledger.park(second.claim(), "late".into()).await.is_err());
    counted_matches_grouped(&dir);
    std::fs::remove_dir_all(dir).unwrap();
}

/// The schema as released before migrations existed (`user_version = 2`).
const RELEASED_V2: &str = "
    CREATE TABLE recordings (recording_id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL,
        state TEXT NOT NULL, reason TEXT, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER,
        start_time INTEGER, end_time INTEGER, metadata TEXT NOT NULL, object_key TEXT, size INTEGER,
        sha256 TEXT, upload_id TEXT, discovered_at INTEGER NOT NULL, archived_at INTEGER,
        updated_at INTEGER NOT NULL);
    CREATE INDEX recordings_due ON recordings(state, next_attempt_at);
    CREATE INDEX recordings_queue ON recordings(next_attempt_at, start_time)
        WHERE state IN ('discovered', 'transcoding', 'retrying');
    CREATE INDEX recordings_conversation ON recordings(conversation_id);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE parked_conversations (conversation_id TEXT PRIMARY KEY, reason TEXT NOT NULL,
        parked_at INTEGER NOT NULL);
    CREATE TABLE conversations (conversation_id TEXT PRIMARY KEY, start_time INTEGER NOT NULL,
        end_time INTEGER, state TEXT NOT NULL, checks INTEGER NOT NULL DEFAULT 0, next_check_at INTEGER,
        updated_at INTEGER NOT NULL);
    CREATE INDEX conversations_due ON conversations(state, next_check_at);
    PRAGMA user_version = 2;
    INSERT INTO recordings (recording_id, conversation_id, state, next_attempt_at, start_time, metadata,
        object_key, discovered_at, updated_at)
    VALUES ('done', 'c1', 'archived', NULL, 1000, '{}', 'k/done', 1000, 1000),
           ('gone', 'c1', 'parked', NULL, 1000, '{}', NULL, 1000, 1000),
           ('next', 'c2', 'discovered', 0, 2000, '{}', NULL, 2000, 2000);
    INSERT INTO conversations VALUES ('c1', 1000, 1500, 'settled', 1, NULL, 1500),
                                     ('c2', 2000, NULL, 'active', 0, 3000, 2000);
    INSERT INTO meta VALUES ('watermark', '2026-11-23T10:00:00.000Z');
";

#[tokio::test]
async fn a_ledger_of_the_released_schema_is_upgraded_in_place() {
    let dir = std::env::temp_dir().join(format!("ga-ledger-{}-{}", std::process::id(), fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ledger.sqlite");
    Connection::open(&path).unwrap().execute_batch(RELEASED_V2).unwrap();

    let ledger = SqliteLedger::open(&path).unwrap();
    let status = ledger.status().await.unwrap();
    assert_eq!(
        (
            status.counts["archived"],
            status.counts["parked"],
            status.counts["discovered"]
        ),
        (1, 1, 1),
        "counts carried over"
    );
    assert_eq!(
        (status.conversations["settled"], status.conversations["active"]),
        (1, 1)
    );
    assert_eq!(
        status.oldest_unarchived.as_ref().map(|(id, _)| id.as_str()),
        Some("next")
    );
    assert!(status.watermark.is_some());
    let claimed = ledger.claim_due(Utc::now()).await.unwrap().unwrap();
    assert_eq!(claimed.recording_id, "next");
    ledger.archived(claimed.claim(), facts("k/next")).await.unwrap();
    drop(ledger);
    let version: i64 = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, MIGRATIONS.len() as i64);
    counted_matches_grouped(&dir);
    // Opening again applies nothing twice.
    let again = SqliteLedger::open(&path).unwrap();
    assert_eq!(again.status().await.unwrap().counts["archived"], 2);
    drop(again);

    // A ledger from a newer build is refused, naming the file.
    Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99;")
        .unwrap();
    let refused = SqliteLedger::open(&path).err().unwrap().to_string();
    assert!(
        refused.contains("ledger.sqlite") && refused.contains("newer"),
        "{refused}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn the_report_reads_no_table_scan() {
    let (ledger, dir) = temp_ledger();
    drop(ledger);
    let conn = Connection::open(dir.join("ledger.sqlite")).unwrap();
    for sql in [
        COUNTS,
        UNFINISHED,
        SQL.sql(statements::OLDEST_UNARCHIVED),
        SQL.sql(statements::SOONEST_DEADLINE),
        SQL.sql(statements::OLDEST_UNSETTLED),
        SQL.sql(statements::PRUNE_RECORDINGS),
    ] {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let org: &[&dyn rusqlite::ToSql] = if sql.contains("?2") { &[&"acme", &1] } else { &[&"acme"] };
        let plan: Vec<String> = stmt
            .query_map(org, |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        // An index walked in order and stopped at LIMIT 1 is fine; the table, no.
        let bare_scan = plan
            .iter()
            .any(|step| step.starts_with("SCAN recordings") && !step.contains("INDEX"));
        let plan = plan.join("; ");
        assert!(!bare_scan, "{sql}: {plan}");
        assert!(!plan.contains("TEMP B-TREE"), "no sort: {sql}: {plan}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn each_org_sees_only_its_own_rows() {
    let (default, dir) = temp_ledger();
    let acme = default.for_org("acme");
    let globex = default.for_org("globex");
    acme.insert(vec![new("a1", None), new("a2", None)]).await.unwrap();
    globex
        .insert(vec![new("g1", None), new("g2", Some("deleted"))])
        .await
        .unwrap();
    // Claims walk one org's queue only.
    let mut claimed = Vec::new();
    while let Some(c) = acme.claim_due(soon()).await.unwrap() {
        claimed.push(c);
    }
    let ids: Vec<_> = claimed.iter().map(|c| c.recording_id.as_str()).collect();
    assert_eq!(ids, ["a1", "a2"]);
    assert_eq!(globex.unfinished().await.unwrap(), 1);
    assert_eq!(default.unfinished().await.unwrap(), 0);
    acme.fail(claimed[0].claim(), 8, "boom".into()).await.unwrap();
    acme.archived(claimed[1].claim(), facts("acme/a2")).await.unwrap();
    // Counts, the oldest unarchived, parked lists and watermarks are per org.
    let (a, g) = (acme.status().await.unwrap(), globex.status().await.unwrap());
    assert_eq!(
        (a.counts["failed"], a.counts["archived"], a.counts["parked"]),
        (1, 1, 0)
    );
    assert_eq!((g.counts["discovered"], g.counts["parked"]), (1, 1));
    assert_eq!(g.oldest_unarchived.map(|(id, _)| id).as_deref(), Some("g1"));
    assert_eq!(a.oldest_unarchived.map(|(id, _)| id).as_deref(), Some("a1"));
    let t = Utc::now();
    acme.set_watermark(t).await.unwrap();
    assert!(acme.watermark().await.unwrap().is_some());
    assert_eq!(globex.watermark().await.unwrap(), None);
    assert_eq!(default.watermark().await.unwrap(), None);
    // Retries and lists stay within the org.
    assert_eq!(globex.retry_failed().await.unwrap(), 0);
    assert_eq!(globex.list(ListFilter::Failed, 10).await.unwrap().len(), 0);
    assert_eq!(acme.list(ListFilter::Failed, 10).await.unwrap().len(), 1);
    assert_eq!(acme.retry_parked(ParkedSelection::All).await.unwrap(), 0);
    assert_eq!(globex.retry_parked(ParkedSelection::All).await.unwrap(), 1);
    assert_eq!(acme.retry_failed().await.unwrap(), 1);
    assert_eq!(default.orgs().await.unwrap(), ["acme", "globex"]);
    // A recovery of one org leaves the other's claims alone.
    let g1 = globex.claim_due(soon()).await.unwrap().unwrap();
    acme.recover().await.unwrap();
    globex.archived(g1.claim(), facts("globex/g1")).await.unwrap();
    counted_matches_grouped(&dir);
    std::fs::remove_dir_all(dir).unwrap();
}
