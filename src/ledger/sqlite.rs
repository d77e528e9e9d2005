//! The embedded SQLite ledger.
//!
//! WAL journal with `synchronous=FULL`: a state change that returned is on disk, even
//! through a power cut, so "archived" is never claimed for an object the bucket might not
//! have. Calls run on tokio's blocking pool, so an fsync never stalls the async workers.
//! One connection behind a mutex: SQLite serializes writers anyway, and the daemon's
//! write rate (a few per recording) is far below what one connection sustains.

use super::encoding::{
    DEFAULT_ORG, HANDED_OFF, HANDOFF_DUE, LIST, RECORDS, UNSETTLED_BETWEEN, from_ms, list_condition, ms, note_key,
    now_ms, org_state_key, watermark_key,
};
use super::{
    ArchiveFacts, Claim, Claimed, ConversationRow, ConversationState, Handoff, HandoffDue, Ledger, LedgerError,
    LedgerRecord, LedgerResult, ListFilter, NewRecording, OpenUpload, OrgCondition, OrgState, ParkedSelection, Pruned,
    RecordingRow, State, StatusReport, record_files,
};
use crate::untrusted;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use rusqlite::{Connection, OptionalExtension, params};
use rusqlite_migration::{MigrationDefinitionError, Migrations};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// One org's view of the ledger file: every query reads and writes that org's rows.
/// Views of several orgs share one connection ([`SqliteLedger::for_org`]).
pub struct SqliteLedger {
    conn: Arc<Mutex<Connection>>,
    org: Arc<str>,
}

mod schema;

use schema::MIGRATIONS;

const CLAIMED_COLUMNS: &str = "recording_id, conversation_id, start_time, end_time, metadata, attempts, object_key, upload_id, claim_token, discovered_at, upload_key";

fn claimed(row: &rusqlite::Row<'_>) -> rusqlite::Result<Claimed> {
    Ok(Claimed {
        recording_id: row.get(0)?,
        conversation_id: row.get(1)?,
        start_time: from_ms(row.get(2)?),
        end_time: from_ms(row.get(3)?),
        metadata: row.get(4)?,
        attempts: row.get(5)?,
        key: row.get(6)?,
        open_upload: row.get(7)?,
        token: row.get(8)?,
        discovered_at: from_ms(row.get(9)?).unwrap_or_default(),
        upload_key: row.get(10)?,
    })
}

const CONVERSATION_COLUMNS: &str = "conversation_id, start_time, end_time, state, checks, next_check_at, reason";

fn conversation(row: &rusqlite::Row<'_>) -> rusqlite::Result<ConversationRow> {
    Ok(ConversationRow {
        conversation_id: row.get(0)?,
        start: from_ms(row.get(1)?).unwrap_or_default(),
        end: from_ms(row.get(2)?),
        state: ConversationState::parse(&row.get::<_, String>(3)?),
        checks: row.get(4)?,
        next_check_at: from_ms(row.get(5)?),
        reason: row.get(6)?,
    })
}

fn read_org_state(conn: &Connection, org: &str) -> rusqlite::Result<Option<OrgState>> {
    let value: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [org_state_key(org)], |r| {
            r.get(0)
        })
        .optional()?;
    // A value this version cannot read (written by a newer one) is no state, not an error.
    Ok(value.and_then(|v| serde_json::from_str(&v).ok()))
}

fn read_watermark(conn: &Connection, org: &str) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let value: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [watermark_key(org)], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(value
        .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
        .map(|t| t.with_timezone(&Utc)))
}

fn err(e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Store(e.to_string())
}

/// A claim token: random, so a token from a claim that was recovered and claimed again
/// never matches the new one.
fn token() -> i64 {
    fastrand::i64(..)
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

/// Brings the schema to this build's version, in one transaction per step. A ledger
/// written by a newer build is refused: its rows may mean what this build does not know.
fn migrate(conn: &mut Connection) -> Result<(), String> {
    Migrations::from_slice(MIGRATIONS).to_latest(conn).map_err(|e| match e {
        rusqlite_migration::Error::MigrationDefinition(MigrationDefinitionError::DatabaseTooFarAhead) => format!(
            "schema version is newer than this build knows ({} steps); run a newer genesys-archiver",
            MIGRATIONS.len()
        ),
        other => format!("schema migration failed: {other}"),
    })
}

/// The report's queries (`status`, `/metrics`, the backfill progress): neither may
/// scan the recordings (a test reads their plans).
const COUNTS: &str = "SELECT kind, state, n FROM counts WHERE org = ?1";
const OLDEST_UNARCHIVED: &str = "SELECT recording_id, COALESCE(end_time, start_time, discovered_at) FROM recordings
     INDEXED BY recordings_unfinished
     WHERE org = ?1 AND state NOT IN ('archived', 'parked')
     ORDER BY COALESCE(end_time, start_time, discovered_at) LIMIT 1";
const SOONEST_DEADLINE: &str = "SELECT recording_id, deadline FROM recordings INDEXED BY recordings_open_deadline
     WHERE org = ?1 AND state NOT IN ('archived', 'parked') ORDER BY deadline LIMIT 1";
const OLDEST_UNSETTLED: &str = "SELECT conversation_id, end_time FROM conversations INDEXED BY conversations_unsettled
     WHERE org = ?1 AND state IN ('ended', 'checking') AND end_time IS NOT NULL ORDER BY end_time LIMIT 1";
const FAILING_CONVERSATIONS: &str = "SELECT conversation_id, reason FROM conversations INDEXED BY conversations_failing
     WHERE org = ?1 AND reason IS NOT NULL AND state IN ('active', 'ended', 'checking') LIMIT 1000";

/// How many rows one prune transaction removes at most: the connection is shared with
/// the workers' claims, so a first prune of a large ledger runs in short slices.
const PRUNE_BATCH: i64 = 5_000;

impl SqliteLedger {
    /// Opens (creating) the database. Fails with a message naming the path if it cannot
    /// be opened for writing.
    /// Opens an existing file without migrating it (`status`, `list` read-only; `retry`
    /// read-write), beside a running daemon: a schema change is made only by a process
    /// that holds the ledger's lock (the daemon, at start). A file from an older build
    /// is refused with what to do.
    pub fn open_unmigrated(path: &Path, read_only: bool) -> LedgerResult<Self> {
        use rusqlite::OpenFlags;
        let mode = if read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE
        };
        let conn = Connection::open_with_flags(
            path,
            mode | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(|e| LedgerError::Store(format!("cannot open {}: {}", path.display(), why(path, e))))?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(err)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| LedgerError::Store(format!("cannot read {}: {e}", path.display())))?;
        let known = MIGRATIONS.len() as i64;
        if version != known {
            return Err(LedgerError::Store(format!(
                "{}: schema version {version}, this build's {known}: {}",
                path.display(),
                if version < known {
                    "start the daemon (it migrates under the ledger's lock) before this command"
                } else {
                    "written by a newer build"
                }
            )));
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            org: DEFAULT_ORG.into(),
        })
    }

    pub fn open(path: &Path) -> LedgerResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| LedgerError::Store(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)
            .map_err(|e| LedgerError::Store(format!("cannot open {}: {}", path.display(), why(path, e))))?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(err)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(LedgerError::Store(format!(
                "{} does not support WAL (journal mode {mode})",
                path.display()
            )));
        }
        conn.execute_batch("PRAGMA synchronous = FULL;")
            .map_err(|e| LedgerError::Store(format!("cannot write {}: {}", path.display(), why(path, e))))?;
        let mut conn = conn;
        migrate(&mut conn).map_err(|e| LedgerError::Store(format!("{}: {e}", path.display())))?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            org: DEFAULT_ORG.into(),
        })
    }

    /// The same file, seen as `org`'s ledger.
    pub fn for_org(&self, org: &str) -> Self {
        Self {
            conn: self.conn.clone(),
            org: org.into(),
        }
    }

    /// Every org with rows in the ledger, by name.
    pub fn orgs(&self) -> BoxFuture<'_, LedgerResult<Vec<String>>> {
        self.run(|conn| {
            // Orgs with rows, and orgs the daemon recorded a state of (one that never
            // started has no rows, and is the one an operator must see).
            let mut stmt = conn.prepare(
                "SELECT org FROM counts WHERE n > 0
                 UNION SELECT substr(key, 11) FROM meta WHERE key LIKE 'org_state:%'
                 ORDER BY 1",
            )?;
            stmt.query_map([], |r| r.get(0))?.collect()
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

    /// Runs `sql` (state change of a claimed recording; its last two parameters are the
    /// recording id, the claim token and the org, after `updated_at`) and checks that it changed
    /// the row: a claim taken over changes nothing and says so.
    fn claimed_change(
        &self,
        claim: Claim,
        sql: &'static str,
        values: Vec<rusqlite::types::Value>,
    ) -> BoxFuture<'_, LedgerResult<()>> {
        let (id, org) = (claim.recording_id.clone(), self.org.to_string());
        let changed = self.run(move |conn| {
            let mut all = values;
            all.push(now_ms().into());
            all.push(claim.recording_id.into());
            all.push(claim.token.into());
            all.push(org.into());
            conn.execute(sql, rusqlite::params_from_iter(all))
        });
        Box::pin(async move {
            match changed.await? {
                0 => Err(LedgerError::ClaimLost(id)),
                _ => Ok(()),
            }
        })
    }

    /// [`Ledger::prune`], one slice: returns what it removed.
    fn prune_slice(&self, cutoff: i64) -> BoxFuture<'_, LedgerResult<Pruned>> {
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let recordings = tx.execute(
                "DELETE FROM recordings WHERE rowid IN (
                     SELECT rowid FROM recordings INDEXED BY recordings_finished
                     WHERE state IN ('archived', 'parked') AND COALESCE(start_time, discovered_at) < ?1
                     LIMIT ?2)",
                params![cutoff, PRUNE_BATCH],
            )? as u64;
            let conversations = tx.execute(
                "DELETE FROM conversations WHERE rowid IN (
                     SELECT rowid FROM conversations INDEXED BY conversations_start
                     WHERE start_time < ?1 AND state IN ('settled', 'parked') LIMIT ?2)",
                params![cutoff, PRUNE_BATCH],
            )? as u64;
            tx.execute("DELETE FROM parked_conversations WHERE parked_at < ?1", params![cutoff])?;
            tx.commit()?;
            Ok(Pruned {
                recordings,
                conversations,
            })
        })
    }
}

fn recording_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RecordingRow> {
    Ok(RecordingRow {
        recording_id: row.get(0)?,
        conversation_id: row.get(1)?,
        state: row.get(2)?,
        reason: row.get(3)?,
        attempts: row.get(4)?,
        start_time: from_ms(row.get(5)?),
        discovered_at: from_ms(row.get(6)?).unwrap_or_default(),
        updated_at: from_ms(row.get(7)?).unwrap_or_default(),
        deadline: from_ms(row.get(8)?),
        handoff: Handoff::from_columns(row.get(9)?, row.get(10)?, row.get(11)?, row.get(12)?),
    })
}

fn handoff_due_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<HandoffDue> {
    let (key, size, sha256, parts): (Option<String>, Option<i64>, Option<String>, Option<String>) =
        (row.get(6)?, row.get(7)?, row.get(8)?, row.get(9)?);
    Ok(HandoffDue {
        recording_id: row.get(0)?,
        conversation_id: row.get(1)?,
        start_time: from_ms(row.get(2)?),
        archived_at: from_ms(row.get(3)?).unwrap_or_default(),
        archive_date: from_ms(row.get(4)?),
        delete_date: from_ms(row.get(5)?),
        files: record_files("archived", key.as_deref(), size, sha256.as_deref(), parts.as_deref()),
    })
}

impl Ledger for SqliteLedger {
    fn insert(&self, recordings: Vec<NewRecording>) -> BoxFuture<'_, LedgerResult<u64>> {
        let recordings: Vec<NewRecording> = recordings.into_iter().map(NewRecording::sanitized).collect();
        let org = self.org.to_string();
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let mut added = 0;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO recordings (recording_id, conversation_id, state, reason, next_attempt_at,
                        start_time, end_time, metadata, discovered_at, updated_at, org,
                        archive_date, delete_date, deadline)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11, ?12, ?13)
                     ON CONFLICT(org, recording_id) DO UPDATE SET state = excluded.state, reason = excluded.reason,
                        next_attempt_at = CASE WHEN excluded.state = 'parked' THEN NULL
                            ELSE MIN(recordings.next_attempt_at, excluded.next_attempt_at) END,
                        archive_date = COALESCE(excluded.archive_date, recordings.archive_date),
                        delete_date = COALESCE(excluded.delete_date, recordings.delete_date),
                        deadline = MIN(recordings.deadline, excluded.deadline),
                        metadata = excluded.metadata, updated_at = excluded.updated_at
                     WHERE recordings.state = 'transcoding'",
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
                        r.parked.as_ref().or(r.waiting.as_ref()),
                        due,
                        r.start_time.map(ms),
                        r.end_time.map(ms),
                        r.metadata,
                        now,
                        &org,
                        r.archive_date.map(ms),
                        r.delete_date.map(ms),
                        ms(r.deadline(Utc::now())),
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
        let org = self.org.to_string();
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE org = ?2 AND conversation_id = ?1"
            ))?;
            let mut parked =
                conn.prepare_cached("SELECT 1 FROM parked_conversations WHERE org = ?2 AND conversation_id = ?1")?;
            let mut known = std::collections::HashMap::new();
            for id in conversation_ids {
                if let Some(row) = stmt.query_row([&id, &org], conversation).optional()? {
                    known.insert(id, row);
                } else if parked.exists([&id, &org])? {
                    let row = ConversationRow {
                        conversation_id: id.clone(),
                        start: DateTime::default(),
                        end: None,
                        state: ConversationState::Parked,
                        checks: 0,
                        next_check_at: None,
                        reason: None,
                    };
                    known.insert(id, row);
                }
            }
            Ok(known)
        })
    }

    fn save_conversations(&self, rows: Vec<ConversationRow>) -> BoxFuture<'_, LedgerResult<()>> {
        let rows: Vec<ConversationRow> = rows.into_iter().map(ConversationRow::sanitized).collect();
        let org = self.org.to_string();
        self.run(move |conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO conversations (conversation_id, start_time, end_time, state, checks, next_check_at, updated_at, org, reason)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT(org, conversation_id) DO UPDATE SET start_time = excluded.start_time,
                        end_time = excluded.end_time, state = excluded.state, checks = excluded.checks,
                        next_check_at = excluded.next_check_at, updated_at = excluded.updated_at,
                        reason = excluded.reason",
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
                        now,
                        &org,
                        r.reason
                    ])?;
                }
            }
            tx.commit()
        })
    }

    fn active_by_next_check(&self, limit: u32) -> BoxFuture<'_, LedgerResult<Vec<ConversationRow>>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {CONVERSATION_COLUMNS} FROM conversations INDEXED BY conversations_due
                 WHERE org = ?2 AND state = 'active' ORDER BY next_check_at LIMIT ?1"
            ))?;
            stmt.query_map(params![limit, org], conversation)?.collect()
        })
    }

    fn claim_conversation(&self, now: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<Option<ConversationRow>>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            conn.query_row(
                &format!(
                    "UPDATE conversations SET state = 'checking', updated_at = ?2
                     WHERE org = ?3 AND conversation_id = (
                         SELECT conversation_id FROM conversations INDEXED BY conversations_due
                         WHERE org = ?3 AND state = 'ended' AND next_check_at <= ?1 ORDER BY next_check_at LIMIT 1)
                     RETURNING {CONVERSATION_COLUMNS}"
                ),
                params![ms(now), now_ms(), org],
                conversation,
            )
            .optional()
        })
    }

    fn next_conversation_due(&self) -> BoxFuture<'_, LedgerResult<Option<DateTime<Utc>>>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            let at: Option<i64> = conn.query_row(
                "SELECT MIN(next_check_at) FROM conversations WHERE org = ?1 AND state = 'ended'",
                [org],
                |r| r.get(0),
            )?;
            Ok(from_ms(at))
        })
    }

    fn claim_recording(&self, recording_id: String) -> BoxFuture<'_, LedgerResult<Option<Claimed>>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            conn.query_row(
                &format!(
                    "UPDATE recordings SET state = 'uploading', updated_at = ?2, claim_token = ?3
                     WHERE org = ?4 AND recording_id = ?1 AND state IN ('discovered', 'transcoding', 'retrying')
                     RETURNING {CLAIMED_COLUMNS}"
                ),
                params![recording_id, now_ms(), token(), org],
                claimed,
            )
            .optional()
        })
    }

    fn claim_due(&self, now: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<Option<Claimed>>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            conn.query_row(
                &format!(
                    "UPDATE recordings SET state = 'uploading', updated_at = ?2, claim_token = ?3
                 WHERE org = ?4 AND recording_id = (
                     SELECT recording_id FROM recordings INDEXED BY recordings_by_deadline
                     WHERE org = ?4 AND state IN ('discovered', 'transcoding', 'retrying') AND next_attempt_at <= ?1
                     ORDER BY deadline, next_attempt_at LIMIT 1)
                 RETURNING {CLAIMED_COLUMNS}"
                ),
                params![ms(now), now_ms(), token(), org],
                claimed,
            )
            .optional()
        })
    }

    fn next_due(&self) -> BoxFuture<'_, LedgerResult<Option<DateTime<Utc>>>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            let at: Option<i64> = conn.query_row(
                "SELECT MIN(next_attempt_at) FROM recordings INDEXED BY recordings_queue
                 WHERE org = ?1 AND state IN ('discovered', 'transcoding', 'retrying')",
                [org],
                |r| r.get(0),
            )?;
            Ok(from_ms(at))
        })
    }

    fn unfinished(&self) -> BoxFuture<'_, LedgerResult<u64>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            conn.query_row(
                "SELECT COALESCE(SUM(n), 0) FROM counts
                 WHERE org = ?1 AND kind = 'recording' AND state NOT IN ('archived', 'parked', 'failed')",
                [org],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
        })
    }

    fn reschedule(
        &self,
        claim: Claim,
        state: State,
        at: DateTime<Utc>,
        attempts: u32,
        error: Option<String>,
    ) -> BoxFuture<'_, LedgerResult<()>> {
        let error = error.as_deref().map(untrusted::reason);
        debug_assert!(matches!(
            state,
            State::Transcoding | State::Retrying | State::Discovered
        ));
        self.claimed_change(
            claim,
            "UPDATE recordings SET state = ?1, next_attempt_at = ?2, attempts = ?3, reason = ?4, claim_token = NULL,
                updated_at = ?5
             WHERE recording_id = ?6 AND claim_token = ?7 AND org = ?8 AND state = 'uploading'",
            vec![
                state.as_str().to_owned().into(),
                ms(at).into(),
                i64::from(attempts).into(),
                error.into(),
            ],
        )
    }

    fn park(&self, claim: Claim, reason: String) -> BoxFuture<'_, LedgerResult<()>> {
        let reason = untrusted::reason(&reason);
        self.claimed_change(
            claim,
            "UPDATE recordings SET state = 'parked', reason = ?1, next_attempt_at = NULL, claim_token = NULL,
                updated_at = ?2
             WHERE recording_id = ?3 AND claim_token = ?4 AND org = ?5 AND state = 'uploading'",
            vec![reason.into()],
        )
    }

    fn fail(&self, claim: Claim, attempts: u32, error: String) -> BoxFuture<'_, LedgerResult<()>> {
        let error = untrusted::reason(&error);
        self.claimed_change(
            claim,
            "UPDATE recordings SET state = 'failed', attempts = ?1, reason = ?2, next_attempt_at = NULL,
                claim_token = NULL, updated_at = ?3
             WHERE recording_id = ?4 AND claim_token = ?5 AND org = ?6 AND state = 'uploading'",
            vec![i64::from(attempts).into(), error.into()],
        )
    }

    fn archived(&self, claim: Claim, facts: ArchiveFacts) -> BoxFuture<'_, LedgerResult<()>> {
        self.claimed_change(
            claim,
            "UPDATE recordings SET state = 'archived', object_key = ?1, size = ?2, sha256 = ?3, archived_at = ?4,
                parts = ?5, reason = NULL, next_attempt_at = NULL, upload_id = NULL, upload_key = NULL,
                claim_token = NULL, updated_at = ?6
             WHERE recording_id = ?7 AND claim_token = ?8 AND org = ?9 AND state = 'uploading'",
            vec![
                facts.key.clone().into(),
                (facts.size as i64).into(),
                facts.sha256_column().into(),
                ms(facts.archived_at).into(),
                facts.parts_column().into(),
            ],
        )
    }

    fn fix_key(&self, claim: Claim, key: String) -> BoxFuture<'_, LedgerResult<String>> {
        let (id, org) = (claim.recording_id.clone(), self.org.to_string());
        let stored = self.run(move |conn| {
            conn.query_row(
                "UPDATE recordings SET object_key = COALESCE(object_key, ?1), updated_at = ?2
                 WHERE recording_id = ?3 AND claim_token = ?4 AND org = ?5 AND state = 'uploading'
                 RETURNING object_key",
                params![key, now_ms(), claim.recording_id, claim.token, org],
                |r| r.get::<_, String>(0),
            )
            .optional()
        });
        Box::pin(async move { stored.await?.ok_or(LedgerError::ClaimLost(id)) })
    }

    fn upload_opened(&self, claim: Claim, key: String, upload_id: String) -> BoxFuture<'_, LedgerResult<()>> {
        self.claimed_change(
            claim,
            "UPDATE recordings SET upload_id = ?1, upload_key = ?2, updated_at = ?3
             WHERE recording_id = ?4 AND claim_token = ?5 AND org = ?6 AND state = 'uploading' AND object_key IS NOT NULL",
            vec![upload_id.into(), key.into()],
        )
    }

    fn upload_closed(&self, claim: Claim) -> BoxFuture<'_, LedgerResult<()>> {
        self.claimed_change(
            claim,
            "UPDATE recordings SET upload_id = NULL, upload_key = NULL, updated_at = ?1
             WHERE recording_id = ?2 AND claim_token = ?3 AND org = ?4 AND state = 'uploading'",
            vec![],
        )
    }

    fn forget_upload(&self, recording_id: String) -> BoxFuture<'_, LedgerResult<()>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            conn.execute(
                "UPDATE recordings SET upload_id = NULL, upload_key = NULL, updated_at = ?1
                 WHERE org = ?3 AND recording_id = ?2",
                params![now_ms(), recording_id, org],
            )?;
            Ok(())
        })
    }

    fn recover(&self) -> BoxFuture<'_, LedgerResult<Vec<OpenUpload>>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "UPDATE recordings SET state = 'discovered', next_attempt_at = ?1, claim_token = NULL, updated_at = ?1
                 WHERE org = ?2 AND state = 'uploading'",
                params![now_ms(), org],
            )?;
            tx.execute(
                "UPDATE conversations SET state = 'ended', next_check_at = ?1, updated_at = ?1
                 WHERE org = ?2 AND state = 'checking'",
                params![now_ms(), org],
            )?;
            // Listed recordings wait for their URL (held in memory by the process that
            // listed them): after a restart there is none, so they are due now.
            tx.execute(
                "UPDATE recordings SET next_attempt_at = ?1, updated_at = ?1
                 WHERE org = ?2 AND state = 'discovered' AND next_attempt_at > ?1",
                params![now_ms(), org],
            )?;
            let open = {
                let mut stmt = tx.prepare(
                    "SELECT recording_id, COALESCE(upload_key, object_key), upload_id FROM recordings
                     WHERE org = ?1 AND upload_id IS NOT NULL AND COALESCE(upload_key, object_key) IS NOT NULL",
                )?;
                stmt.query_map([&org], |r| {
                    Ok(OpenUpload {
                        recording_id: r.get(0)?,
                        key: r.get(1)?,
                        upload_id: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?
            };
            tx.commit()?;
            Ok(open)
        })
    }

    fn watermark(&self) -> BoxFuture<'_, LedgerResult<Option<DateTime<Utc>>>> {
        let org = self.org.to_string();
        self.run(move |conn| read_watermark(conn, &org))
    }

    fn set_watermark(&self, at: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<()>> {
        let key = watermark_key(&self.org);
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?2, ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true), key],
            )?;
            Ok(())
        })
    }

    fn status(&self) -> BoxFuture<'_, LedgerResult<StatusReport>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            let mut report = StatusReport::default();
            for state in State::ALL {
                report.counts.insert(state.as_str().to_owned(), 0);
            }
            for state in ConversationState::ALL {
                report.conversations.insert(state.as_str().to_owned(), 0);
            }
            // Kept by triggers: a dozen rows, whatever the ledger's size.
            let mut stmt = conn.prepare_cached(COUNTS)?;
            let rows = stmt.query_map([&org], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
            })?;
            for row in rows {
                let (kind, state, n) = row?;
                let counts = if kind == "recording" {
                    &mut report.counts
                } else {
                    &mut report.conversations
                };
                counts.insert(state, n.max(0) as u64);
            }
            report.oldest_unarchived = conn
                .query_row(OLDEST_UNARCHIVED, [&org], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                })
                .optional()?
                .and_then(|(id, t)| Some((id, DateTime::from_timestamp_millis(t)?)));
            report.soonest_deadline = conn
                .query_row(SOONEST_DEADLINE, [&org], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                })
                .optional()?
                .and_then(|(id, t)| Some((id, DateTime::from_timestamp_millis(t)?)));
            report.oldest_unsettled = conn
                .query_row(OLDEST_UNSETTLED, [&org], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                })
                .optional()?
                .and_then(|(id, t)| Some((id, DateTime::from_timestamp_millis(t)?)));
            let mut stmt = conn.prepare_cached(FAILING_CONVERSATIONS)?;
            for row in stmt.query_map([&org], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
                report.failing_conversations.push(row?);
            }
            report.watermark = read_watermark(conn, &org)?;
            report.org_state = read_org_state(conn, &org)?;
            let mut stmt = conn.prepare_cached(
                "SELECT conversation_id, reason FROM parked_conversations INDEXED BY parked_conversations_org
                 WHERE org = ?1 ORDER BY parked_at LIMIT 1000",
            )?;
            for row in stmt.query_map([&org], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
                report.parked_conversations.push(row?);
            }
            Ok(report)
        })
    }

    fn record_org_state(&self, condition: OrgCondition) -> BoxFuture<'_, LedgerResult<()>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let state = OrgState::then(read_org_state(&tx, &org)?.as_ref(), condition);
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![
                    org_state_key(&org),
                    serde_json::to_string(&state).expect("org states serialize")
                ],
            )?;
            tx.commit()
        })
    }

    fn retry_parked(&self, which: ParkedSelection) -> BoxFuture<'_, LedgerResult<u64>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            let (condition, value) = match which {
                ParkedSelection::All => ("1 = ?2", rusqlite::types::Value::Integer(1)),
                ParkedSelection::ReasonContains(text) => (
                    "instr(lower(COALESCE(reason, '')), lower(?2)) > 0",
                    rusqlite::types::Value::Text(text),
                ),
                ParkedSelection::Id(id) => ("recording_id = ?2", rusqlite::types::Value::Text(id)),
            };
            let n = conn.execute(
                &format!(
                    "UPDATE recordings SET state = 'discovered', attempts = 0, reason = NULL, next_attempt_at = ?1,
                        updated_at = ?1
                     WHERE org = ?3 AND state = 'parked' AND {condition}"
                ),
                params![now_ms(), value, org],
            )?;
            Ok(n as u64)
        })
    }

    fn list(&self, filter: ListFilter, limit: u32) -> BoxFuture<'_, LedgerResult<Vec<RecordingRow>>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            let mut stmt = conn.prepare(&LIST.replace("{condition}", list_condition(filter)))?;
            stmt.query_map(params![org, limit], recording_row)?.collect()
        })
    }

    fn handoff_due(
        &self,
        after: Option<(DateTime<Utc>, String)>,
        limit: u32,
    ) -> BoxFuture<'_, LedgerResult<Vec<HandoffDue>>> {
        let org = self.org.to_string();
        let (at, id) = after.map_or((-1, String::new()), |(at, id)| (ms(at), id));
        self.run(move |conn| {
            // One process owns a SQLite ledger (its lock): nothing else can hold a hand-off.
            let mut stmt = conn.prepare_cached(&HANDOFF_DUE.replace("{free}", "1 = 1"))?;
            stmt.query_map(params![org, limit, at, id], handoff_due_row)?.collect()
        })
    }

    fn claim_handoff(&self, recording_id: String) -> BoxFuture<'_, LedgerResult<bool>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            conn.query_row(
                "SELECT COUNT(*) FROM recordings
                 WHERE org = ?1 AND recording_id = ?2 AND state = 'archived' AND handoff_at IS NULL",
                params![org, recording_id],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n == 1)
        })
    }

    fn handed_off(&self, recording_id: String, handoff: Handoff) -> BoxFuture<'_, LedgerResult<()>> {
        let org = self.org.to_string();
        let note = untrusted::reason(&handoff.note);
        self.run(move |conn| {
            conn.execute(
                &HANDED_OFF.replace("{release}", ""),
                params![
                    org,
                    recording_id,
                    ms(handoff.at),
                    handoff.old.map(ms),
                    handoff.new.map(ms),
                    note
                ],
            )?;
            Ok(())
        })
    }

    fn prune(&self, cutoff: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<Pruned>> {
        Box::pin(async move {
            let mut total = Pruned::default();
            loop {
                let slice = self.prune_slice(ms(cutoff)).await?;
                total.recordings += slice.recordings;
                total.conversations += slice.conversations;
                if slice.recordings < PRUNE_BATCH as u64 && slice.conversations < PRUNE_BATCH as u64 {
                    return Ok(total);
                }
            }
        })
    }

    fn retry_failed(&self) -> BoxFuture<'_, LedgerResult<u64>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            let n = conn.execute(
                "UPDATE recordings SET state = 'discovered', attempts = 0, next_attempt_at = ?1, updated_at = ?1
                 WHERE org = ?2 AND state = 'failed'",
                params![now_ms(), org],
            )?;
            Ok(n as u64)
        })
    }

    fn park_conversation(&self, conversation_id: String, reason: String) -> BoxFuture<'_, LedgerResult<()>> {
        let (conversation_id, reason) = (untrusted::ledger_key(&conversation_id), untrusted::reason(&reason));
        let org = self.org.to_string();
        self.run(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO parked_conversations (conversation_id, reason, parked_at, org) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(org, conversation_id) DO UPDATE SET reason = excluded.reason, parked_at = excluded.parked_at",
                params![conversation_id, reason, now_ms(), org],
            )?;
            tx.execute(
                "UPDATE conversations SET state = 'parked', next_check_at = NULL, updated_at = ?2
                 WHERE org = ?3 AND conversation_id = ?1",
                params![conversation_id, now_ms(), org],
            )?;
            tx.commit()
        })
    }

    fn records(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<Vec<LedgerRecord>>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(RECORDS)?;
            stmt.query_map(params![org, ms(from), ms(to)], |r| {
                let state: String = r.get(2)?;
                let key: Option<String> = r.get(5)?;
                let sha256: Option<String> = r.get(7)?;
                let parts: Option<String> = r.get(8)?;
                let files = record_files(&state, key.as_deref(), r.get(6)?, sha256.as_deref(), parts.as_deref());
                Ok(LedgerRecord {
                    recording_id: r.get(0)?,
                    conversation_id: r.get(1)?,
                    state,
                    reason: r.get(3)?,
                    conversation_start: from_ms(r.get(4)?).unwrap_or_default(),
                    key,
                    files,
                    handoff: Handoff::from_columns(r.get(9)?, r.get(10)?, r.get(11)?, r.get(12)?),
                })
            })?
            .collect()
        })
    }

    fn unsettled_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<u64>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            conn.query_row(UNSETTLED_BETWEEN, params![org, ms(from), ms(to)], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n.max(0) as u64)
        })
    }

    fn first_start(&self) -> BoxFuture<'_, LedgerResult<Option<DateTime<Utc>>>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            let at: Option<i64> =
                conn.query_row("SELECT MIN(start_time) FROM conversations WHERE org = ?1", [org], |r| {
                    r.get(0)
                })?;
            Ok(from_ms(at))
        })
    }

    fn note(&self, name: &'static str) -> BoxFuture<'_, LedgerResult<Option<String>>> {
        let key = note_key(name, &self.org);
        self.run(move |conn| {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
        })
    }

    fn set_note(&self, name: &'static str, value: String) -> BoxFuture<'_, LedgerResult<()>> {
        let key = note_key(name, &self.org);
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )?;
            Ok(())
        })
    }

    fn retry_conversations(&self) -> BoxFuture<'_, LedgerResult<u64>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "UPDATE conversations SET state = 'ended', checks = 0, next_check_at = ?1, updated_at = ?1
                 WHERE org = ?2 AND state = 'parked'",
                params![now_ms(), org],
            )?;
            let n = tx.execute("DELETE FROM parked_conversations WHERE org = ?1", [&org])? as u64;
            tx.commit()?;
            Ok(n)
        })
    }
}

#[cfg(test)]
mod tests;
