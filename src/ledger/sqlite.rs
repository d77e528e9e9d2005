//! The embedded SQLite ledger.
//!
//! WAL journal with `synchronous=FULL`: a state change that returned is on disk, even
//! through a power cut, so "archived" is never claimed for an object the bucket might not
//! have. Calls run on tokio's blocking pool, so an fsync never stalls the async workers.
//! One connection behind a mutex: SQLite serializes writers anyway, and the daemon's
//! write rate (a few per recording) is far below what one connection sustains.

use super::{
    ArchiveFacts, Claimed, ConversationRow, ConversationState, Ledger, LedgerError, LedgerResult, NewRecording,
    OpenUpload, State, StatusReport,
};
use crate::ratelimit::BoxFuture;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::{Arc, Mutex};

pub struct SqliteLedger {
    conn: Arc<Mutex<Connection>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS recordings (
    recording_id    TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    state           TEXT NOT NULL,
    reason          TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    start_time      INTEGER,
    end_time        INTEGER,
    metadata        TEXT NOT NULL,
    object_key      TEXT,
    size            INTEGER,
    sha256          TEXT,
    upload_id       TEXT,
    discovered_at   INTEGER NOT NULL,
    archived_at     INTEGER,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS recordings_due ON recordings(state, next_attempt_at);
-- The workers' queue, in claim order. Partial, so a claim walks to the first waiting
-- recording instead of sorting every waiting one (measured: 76 ms per claim at a
-- backlog of 100,000 without it; `scripts/bench/scale.sh`).
CREATE INDEX IF NOT EXISTS recordings_queue ON recordings(next_attempt_at, start_time)
    WHERE state IN ('discovered', 'transcoding', 'retrying');
-- Discovery asks, per conversation, whether the ledger knows it already.
CREATE INDEX IF NOT EXISTS recordings_conversation ON recordings(conversation_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- Conversations whose recording list could not be used; their recordings are unknown.
CREATE TABLE IF NOT EXISTS parked_conversations (
    conversation_id TEXT PRIMARY KEY,
    reason          TEXT NOT NULL,
    parked_at       INTEGER NOT NULL
);
-- Every discovered conversation's lifecycle (active, ended, checking, settled, parked).
CREATE TABLE IF NOT EXISTS conversations (
    conversation_id TEXT PRIMARY KEY,
    start_time      INTEGER NOT NULL,
    end_time        INTEGER,
    state           TEXT NOT NULL,
    checks          INTEGER NOT NULL DEFAULT 0,
    next_check_at   INTEGER,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_due ON conversations(state, next_check_at);
PRAGMA user_version = 2;
";

const CLAIMED_COLUMNS: &str =
    "recording_id, conversation_id, start_time, end_time, metadata, attempts, object_key, upload_id";

fn claimed(row: &rusqlite::Row<'_>) -> rusqlite::Result<Claimed> {
    Ok(Claimed {
        recording_id: row.get(0)?,
        conversation_id: row.get(1)?,
        start_time: from_ms(row.get(2)?),
        end_time: from_ms(row.get(3)?),
        metadata: row.get(4)?,
        attempts: row.get(5)?,
        open_upload: match (row.get::<_, Option<String>>(6)?, row.get::<_, Option<String>>(7)?) {
            (Some(key), Some(upload_id)) => Some((key, upload_id)),
            _ => None,
        },
    })
}

const CONVERSATION_COLUMNS: &str = "conversation_id, start_time, end_time, state, checks, next_check_at";

fn conversation(row: &rusqlite::Row<'_>) -> rusqlite::Result<ConversationRow> {
    Ok(ConversationRow {
        conversation_id: row.get(0)?,
        start: from_ms(row.get(1)?).unwrap_or_default(),
        end: from_ms(row.get(2)?),
        state: ConversationState::parse(&row.get::<_, String>(3)?),
        checks: row.get(4)?,
        next_check_at: from_ms(row.get(5)?),
    })
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: Option<i64>) -> Option<DateTime<Utc>> {
    v.and_then(DateTime::from_timestamp_millis)
}

fn now_ms() -> i64 {
    ms(Utc::now())
}

fn read_watermark(conn: &Connection) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let value: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'watermark'", [], |r| r.get(0))
        .optional()?;
    Ok(value
        .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
        .map(|t| t.with_timezone(&Utc)))
}

fn err(e: impl std::fmt::Display) -> LedgerError {
    LedgerError(e.to_string())
}

/// SQLite says "unable to open database file" for every cause; the operating system
/// says which (read-only file system, permission denied, no space).
fn why(path: &Path, error: rusqlite::Error) -> String {
    let os = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .err();
    match os {
        Some(os) => format!("{os}"),
        None => error.to_string(),
    }
}

impl SqliteLedger {
    /// Opens (creating) the database. Fails with a message naming the path if it cannot
    /// be opened for writing.
    pub fn open(path: &Path) -> LedgerResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| LedgerError(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)
            .map_err(|e| LedgerError(format!("cannot open {}: {}", path.display(), why(path, e))))?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(err)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(LedgerError(format!(
                "{} does not support WAL (journal mode {mode})",
                path.display()
            )));
        }
        conn.execute_batch("PRAGMA synchronous = FULL;")
            .and_then(|()| conn.execute_batch(SCHEMA))
            .map_err(|e| LedgerError(format!("cannot write {}: {}", path.display(), why(path, e))))?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection in the blocking pool.
    fn run<T, F>(&self, f: F) -> BoxFuture<'_, LedgerResult<T>>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                f(&mut conn)
            })
            .await
            .map_err(err)?
            .map_err(err)
        })
    }

    fn set_state(
        &self,
        recording_id: String,
        sql: &'static str,
        values: Vec<rusqlite::types::Value>,
    ) -> BoxFuture<'_, LedgerResult<()>> {
        self.run(move |conn| {
            let mut all = values;
            all.push(now_ms().into());
            all.push(recording_id.into());
            conn.execute(sql, rusqlite::params_from_iter(all))?;
            Ok(())
        })
    }
}

impl Ledger for SqliteLedger {
    fn insert(&self, recordings: Vec<NewRecording>) -> BoxFuture<'_, LedgerResult<u64>> {
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let mut added = 0;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO recordings (recording_id, conversation_id, state, reason, next_attempt_at,
                        start_time, end_time, metadata, discovered_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)
                     ON CONFLICT(recording_id) DO NOTHING",
                )?;
                let now = now_ms();
                for r in recordings {
                    let (state, due) = match (&r.parked, r.not_before, r.transcoding) {
                        (Some(_), _, _) => (State::Parked, None),
                        (None, Some(at), true) => (State::Transcoding, Some(ms(at))),
                        (None, Some(at), false) => (State::Discovered, Some(ms(at))),
                        (None, None, _) => (State::Discovered, Some(now)),
                    };
                    added += stmt.execute(params![
                        r.recording_id,
                        r.conversation_id,
                        state.as_str(),
                        r.parked,
                        due,
                        r.start_time.map(ms),
                        r.end_time.map(ms),
                        r.metadata,
                        now
                    ])? as u64;
                }
            }
            tx.commit()?;
            Ok(added)
        })
    }

    fn conversations(
        &self,
        conversation_ids: Vec<String>,
    ) -> BoxFuture<'_, LedgerResult<std::collections::HashMap<String, ConversationRow>>> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE conversation_id = ?1"
            ))?;
            let mut parked = conn.prepare_cached("SELECT 1 FROM parked_conversations WHERE conversation_id = ?1")?;
            let mut known = std::collections::HashMap::new();
            for id in conversation_ids {
                if let Some(row) = stmt.query_row([&id], conversation).optional()? {
                    known.insert(id, row);
                } else if parked.exists([&id])? {
                    let row = ConversationRow {
                        conversation_id: id.clone(),
                        start: DateTime::default(),
                        end: None,
                        state: ConversationState::Parked,
                        checks: 0,
                        next_check_at: None,
                    };
                    known.insert(id, row);
                }
            }
            Ok(known)
        })
    }

    fn save_conversations(&self, rows: Vec<ConversationRow>) -> BoxFuture<'_, LedgerResult<()>> {
        self.run(move |conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO conversations (conversation_id, start_time, end_time, state, checks, next_check_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT(conversation_id) DO UPDATE SET start_time = excluded.start_time,
                        end_time = excluded.end_time, state = excluded.state, checks = excluded.checks,
                        next_check_at = excluded.next_check_at, updated_at = excluded.updated_at",
                )?;
                let now = now_ms();
                for r in rows {
                    stmt.execute(params![
                        r.conversation_id,
                        ms(r.start),
                        r.end.map(ms),
                        r.state.as_str(),
                        r.checks,
                        r.next_check_at.map(ms),
                        now
                    ])?;
                }
            }
            tx.commit()
        })
    }

    fn active_by_next_check(&self, limit: u32) -> BoxFuture<'_, LedgerResult<Vec<ConversationRow>>> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {CONVERSATION_COLUMNS} FROM conversations INDEXED BY conversations_due
                 WHERE state = 'active' ORDER BY next_check_at LIMIT ?1"
            ))?;
            stmt.query_map(params![limit], conversation)?.collect()
        })
    }

    fn claim_conversation(&self, now: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<Option<ConversationRow>>> {
        self.run(move |conn| {
            conn.query_row(
                &format!(
                    "UPDATE conversations SET state = 'checking', updated_at = ?2
                     WHERE conversation_id = (
                         SELECT conversation_id FROM conversations
                         WHERE state = 'ended' AND next_check_at <= ?1 ORDER BY next_check_at LIMIT 1)
                     RETURNING {CONVERSATION_COLUMNS}"
                ),
                params![ms(now), now_ms()],
                conversation,
            )
            .optional()
        })
    }

    fn next_conversation_due(&self) -> BoxFuture<'_, LedgerResult<Option<DateTime<Utc>>>> {
        self.run(|conn| {
            let at: Option<i64> = conn.query_row(
                "SELECT MIN(next_check_at) FROM conversations WHERE state = 'ended'",
                [],
                |r| r.get(0),
            )?;
            Ok(from_ms(at))
        })
    }

    fn claim_recording(&self, recording_id: String) -> BoxFuture<'_, LedgerResult<Option<Claimed>>> {
        self.run(move |conn| {
            conn.query_row(
                &format!(
                    "UPDATE recordings SET state = 'uploading', updated_at = ?2
                     WHERE recording_id = ?1 AND state IN ('discovered', 'transcoding', 'retrying')
                     RETURNING {CLAIMED_COLUMNS}"
                ),
                params![recording_id, now_ms()],
                claimed,
            )
            .optional()
        })
    }

    fn claim_due(&self, now: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<Option<Claimed>>> {
        self.run(move |conn| {
            conn.query_row(
                &format!(
                    "UPDATE recordings SET state = 'uploading', updated_at = ?2
                 WHERE recording_id = (
                     SELECT recording_id FROM recordings INDEXED BY recordings_queue
                     WHERE state IN ('discovered', 'transcoding', 'retrying') AND next_attempt_at <= ?1
                     ORDER BY next_attempt_at, start_time LIMIT 1)
                 RETURNING {CLAIMED_COLUMNS}"
                ),
                params![ms(now), now_ms()],
                claimed,
            )
            .optional()
        })
    }

    fn next_due(&self) -> BoxFuture<'_, LedgerResult<Option<DateTime<Utc>>>> {
        self.run(|conn| {
            let at: Option<i64> = conn.query_row(
                "SELECT MIN(next_attempt_at) FROM recordings INDEXED BY recordings_queue
                 WHERE state IN ('discovered', 'transcoding', 'retrying')",
                [],
                |r| r.get(0),
            )?;
            Ok(from_ms(at))
        })
    }

    fn unfinished(&self) -> BoxFuture<'_, LedgerResult<u64>> {
        self.run(|conn| {
            conn.query_row(
                "SELECT COUNT(*) FROM recordings WHERE state NOT IN ('archived', 'parked', 'failed')",
                [],
                |r| r.get(0),
            )
        })
    }

    fn reschedule(
        &self,
        recording_id: String,
        state: State,
        at: DateTime<Utc>,
        attempts: u32,
        error: Option<String>,
    ) -> BoxFuture<'_, LedgerResult<()>> {
        debug_assert!(matches!(
            state,
            State::Transcoding | State::Retrying | State::Discovered
        ));
        self.set_state(
            recording_id,
            "UPDATE recordings SET state = ?1, next_attempt_at = ?2, attempts = ?3, reason = ?4, updated_at = ?5
             WHERE recording_id = ?6",
            vec![
                state.as_str().to_owned().into(),
                ms(at).into(),
                i64::from(attempts).into(),
                error.into(),
            ],
        )
    }

    fn park(&self, recording_id: String, reason: String) -> BoxFuture<'_, LedgerResult<()>> {
        self.set_state(
            recording_id,
            "UPDATE recordings SET state = 'parked', reason = ?1, next_attempt_at = NULL, updated_at = ?2
             WHERE recording_id = ?3",
            vec![reason.into()],
        )
    }

    fn fail(&self, recording_id: String, attempts: u32, error: String) -> BoxFuture<'_, LedgerResult<()>> {
        self.set_state(
            recording_id,
            "UPDATE recordings SET state = 'failed', attempts = ?1, reason = ?2, next_attempt_at = NULL, updated_at = ?3
             WHERE recording_id = ?4",
            vec![i64::from(attempts).into(), error.into()],
        )
    }

    fn archived(&self, recording_id: String, facts: ArchiveFacts) -> BoxFuture<'_, LedgerResult<()>> {
        self.set_state(
            recording_id,
            "UPDATE recordings SET state = 'archived', object_key = ?1, size = ?2, sha256 = ?3, archived_at = ?4,
                reason = NULL, next_attempt_at = NULL, upload_id = NULL, updated_at = ?5
             WHERE recording_id = ?6",
            vec![
                facts.key.into(),
                (facts.size as i64).into(),
                facts.sha256.into(),
                ms(facts.archived_at).into(),
            ],
        )
    }

    fn upload_opened(&self, recording_id: String, key: String, upload_id: String) -> BoxFuture<'_, LedgerResult<()>> {
        self.set_state(
            recording_id,
            "UPDATE recordings SET object_key = ?1, upload_id = ?2, updated_at = ?3 WHERE recording_id = ?4",
            vec![key.into(), upload_id.into()],
        )
    }

    fn upload_closed(&self, recording_id: String) -> BoxFuture<'_, LedgerResult<()>> {
        self.set_state(
            recording_id,
            "UPDATE recordings SET upload_id = NULL, updated_at = ?1 WHERE recording_id = ?2",
            vec![],
        )
    }

    fn recover(&self) -> BoxFuture<'_, LedgerResult<Vec<OpenUpload>>> {
        self.run(|conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "UPDATE recordings SET state = 'discovered', next_attempt_at = ?1, updated_at = ?1 WHERE state = 'uploading'",
                params![now_ms()],
            )?;
            tx.execute(
                "UPDATE conversations SET state = 'ended', next_check_at = ?1, updated_at = ?1 WHERE state = 'checking'",
                params![now_ms()],
            )?;
            // Listed recordings wait for their URL (held in memory by the process that
            // listed them): after a restart there is none, so they are due now.
            tx.execute(
                "UPDATE recordings SET next_attempt_at = ?1, updated_at = ?1
                 WHERE state = 'discovered' AND next_attempt_at > ?1",
                params![now_ms()],
            )?;
            let open = {
                let mut stmt = tx.prepare(
                    "SELECT recording_id, object_key, upload_id FROM recordings
                     WHERE upload_id IS NOT NULL AND object_key IS NOT NULL",
                )?;
                stmt.query_map([], |r| Ok(OpenUpload { recording_id: r.get(0)?, key: r.get(1)?, upload_id: r.get(2)? }))?
                    .collect::<rusqlite::Result<Vec<_>>>()?
            };
            tx.commit()?;
            Ok(open)
        })
    }

    fn watermark(&self) -> BoxFuture<'_, LedgerResult<Option<DateTime<Utc>>>> {
        self.run(|conn| read_watermark(conn))
    }

    fn set_watermark(&self, at: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<()>> {
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('watermark', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)],
            )?;
            Ok(())
        })
    }

    fn status(&self) -> BoxFuture<'_, LedgerResult<StatusReport>> {
        self.run(|conn| {
            let mut report = StatusReport::default();
            for state in State::ALL {
                report.counts.insert(state.as_str().to_owned(), 0);
            }
            let mut stmt = conn.prepare("SELECT state, COUNT(*) FROM recordings GROUP BY state")?;
            for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))? {
                let (state, count) = row?;
                report.counts.insert(state, count);
            }
            report.oldest_unarchived = conn
                .query_row(
                    "SELECT recording_id, COALESCE(end_time, start_time, discovered_at) AS t FROM recordings
                     WHERE state NOT IN ('archived', 'parked') ORDER BY t LIMIT 1",
                    [],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
                )
                .optional()?
                .and_then(|(id, t)| Some((id, DateTime::from_timestamp_millis(t)?)));
            report.watermark = read_watermark(conn)?;
            let mut stmt =
                conn.prepare("SELECT conversation_id, reason FROM parked_conversations ORDER BY parked_at LIMIT 1000")?;
            for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
                report.parked_conversations.push(row?);
            }
            for state in ConversationState::ALL {
                report.conversations.insert(state.as_str().to_owned(), 0);
            }
            let mut stmt = conn.prepare("SELECT state, COUNT(*) FROM conversations GROUP BY state")?;
            for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))? {
                let (state, count) = row?;
                report.conversations.insert(state, count);
            }
            Ok(report)
        })
    }

    fn retry_failed(&self) -> BoxFuture<'_, LedgerResult<u64>> {
        self.run(|conn| {
            let n = conn.execute(
                "UPDATE recordings SET state = 'discovered', attempts = 0, next_attempt_at = ?1, updated_at = ?1
                 WHERE state = 'failed'",
                params![now_ms()],
            )?;
            Ok(n as u64)
        })
    }

    fn park_conversation(&self, conversation_id: String, reason: String) -> BoxFuture<'_, LedgerResult<()>> {
        self.run(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO parked_conversations (conversation_id, reason, parked_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(conversation_id) DO UPDATE SET reason = excluded.reason, parked_at = excluded.parked_at",
                params![conversation_id, reason, now_ms()],
            )?;
            tx.execute(
                "UPDATE conversations SET state = 'parked', next_check_at = NULL, updated_at = ?2 WHERE conversation_id = ?1",
                params![conversation_id, now_ms()],
            )?;
            tx.commit()
        })
    }

    fn retry_conversations(&self) -> BoxFuture<'_, LedgerResult<u64>> {
        self.run(|conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "UPDATE conversations SET state = 'ended', checks = 0, next_check_at = ?1, updated_at = ?1
                 WHERE state = 'parked'",
                params![now_ms()],
            )?;
            let n = tx.execute("DELETE FROM parked_conversations", [])? as u64;
            tx.commit()?;
            Ok(n)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_ledger() -> (SqliteLedger, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("ga-ledger-{}-{}", std::process::id(), fastrand::u64(..)));
        let ledger = SqliteLedger::open(&dir.join("ledger.sqlite")).unwrap();
        (ledger, dir)
    }

    fn new(id: &str, parked: Option<&str>) -> NewRecording {
        NewRecording {
            recording_id: id.into(),
            conversation_id: "c".into(),
            start_time: Some(Utc::now()),
            end_time: None,
            metadata: "{}".into(),
            parked: parked.map(str::to_owned),
            not_before: None,
            transcoding: false,
        }
    }

    #[tokio::test]
    async fn duplicates_are_dropped_and_work_is_claimed_once() {
        let (ledger, dir) = temp_ledger();
        assert_eq!(
            ledger
                .insert(vec![new("a", None), new("b", None), new("x", Some("deleted"))])
                .await
                .unwrap(),
            3
        );
        assert_eq!(ledger.insert(vec![new("a", None), new("c", None)]).await.unwrap(), 1);
        let now = Utc::now() + chrono::Duration::seconds(1);
        let mut claimed = Vec::new();
        while let Some(c) = ledger.claim_due(now).await.unwrap() {
            claimed.push(c.recording_id);
        }
        claimed.sort();
        assert_eq!(claimed, ["a", "b", "c"], "parked ones are not work");
        assert_eq!(ledger.unfinished().await.unwrap(), 3);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn recovery_requeues_in_flight_work_and_reports_open_uploads() {
        let (ledger, dir) = temp_ledger();
        ledger.insert(vec![new("a", None), new("b", None)]).await.unwrap();
        let now = Utc::now() + chrono::Duration::seconds(1);
        ledger.claim_due(now).await.unwrap().unwrap();
        ledger.claim_due(now).await.unwrap().unwrap();
        ledger
            .upload_opened("a".into(), "k/a".into(), "up-1".into())
            .await
            .unwrap();
        ledger
            .archived(
                "b".into(),
                ArchiveFacts {
                    key: "k/b".into(),
                    size: 3,
                    sha256: "x".into(),
                    archived_at: Utc::now(),
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

    #[tokio::test]
    async fn failed_recordings_go_back_on_retry_and_the_watermark_persists() {
        let (ledger, dir) = temp_ledger();
        ledger.insert(vec![new("a", None)]).await.unwrap();
        ledger.fail("a".into(), 8, "boom".into()).await.unwrap();
        assert_eq!(ledger.unfinished().await.unwrap(), 0);
        assert_eq!(ledger.retry_failed().await.unwrap(), 1);
        assert_eq!(ledger.unfinished().await.unwrap(), 1);
        let t = DateTime::parse_from_rfc3339("2026-11-23T10:00:00.123Z")
            .unwrap()
            .with_timezone(&Utc);
        ledger.set_watermark(t).await.unwrap();
        drop(ledger);
        let again = SqliteLedger::open(&dir.join("ledger.sqlite")).unwrap();
        assert_eq!(again.watermark().await.unwrap(), Some(t));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
