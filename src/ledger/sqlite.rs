//! The embedded SQLite ledger.
//!
//! WAL journal with `synchronous=FULL`: a state change that returned is on disk, even
//! through a power cut, so "archived" is never claimed for an object the bucket might not
//! have. Calls run on tokio's blocking pool, so an fsync never stalls the async workers.
//! One connection behind a mutex: SQLite serializes writers anyway, and the daemon's
//! write rate (a few per recording) is far below what one connection sustains.

use super::changes::{self, ClaimedChange};
use super::dialect::Dialect;
use super::encoding::{
    DEFAULT_ORG, format_watermark, from_ms, ms, note_key, now_ms, org_state_key, parse_org_state, parse_watermark,
    watermark_key,
};
use super::rows::{self, Columns};
use super::statements::{self, claimed_columns, conversation_columns};
use super::value::Value;
use super::{
    Claim, Claimed, ConversationRow, Handoff, HandoffDue, Ledger, LedgerError, LedgerRecord, LedgerResult, ListFilter,
    NewRecording, OpenUpload, OrgCondition, OrgState, ParkedSelection, Pruned, RecordingRow, StatusReport,
};
use crate::untrusted;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use rusqlite::types::{ToSqlOutput, Value as Cell, ValueRef};
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use rusqlite_migration::{MigrationDefinitionError, Migrations};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The shared statements ([`statements`]) are rendered in SQLite's dialect.
const SQL: Dialect = Dialect::Sqlite;

/// One org's view of the ledger file: every query reads and writes that org's rows.
/// Views of several orgs share one connection ([`SqliteLedger::for_org`]).
pub struct SqliteLedger {
    conn: Arc<Mutex<Connection>>,
    org: Arc<str>,
}

mod ledger;
mod schema;

use schema::MIGRATIONS;

impl Columns for rusqlite::Row<'_> {
    type Error = rusqlite::Error;
    fn text(&self, i: usize) -> rusqlite::Result<String> {
        self.get(i)
    }
    fn opt_text(&self, i: usize) -> rusqlite::Result<Option<String>> {
        self.get(i)
    }
    fn opt_int(&self, i: usize) -> rusqlite::Result<Option<i64>> {
        self.get(i)
    }
}

/// Bound by reference: a text (a recording's metadata) is not copied again to be bound.
impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Int(v) => ToSqlOutput::Owned(v.map_or(Cell::Null, Cell::Integer)),
            Value::Int4(v) => ToSqlOutput::Owned(v.map_or(Cell::Null, |v| Cell::Integer(v.into()))),
            Value::Text(Some(v)) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            Value::Text(None) => ToSqlOutput::Owned(Cell::Null),
        })
    }
}

/// A `meta` value ([`statements::READ_META`]).
fn read_meta(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row(SQL.sql(statements::READ_META), [key], |r| r.get(0))
        .optional()
}

fn write_meta(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.execute(SQL.sql(statements::WRITE_META), [key, value]).map(drop)
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

// What only the SQLite ledger runs: claims without leases (one process owns the file),
// and the counts its triggers keep (a test reads the plans: no table scan).

const CLAIM_CONVERSATION: &str = concat!(
    "UPDATE conversations SET state = 'checking', updated_at = ?2
     WHERE org = ?3 AND conversation_id = (
         SELECT conversation_id FROM conversations INDEXED BY conversations_due
         WHERE org = ?3 AND state = 'ended' AND next_check_at <= ?1 ORDER BY next_check_at LIMIT 1)
     RETURNING ",
    conversation_columns!()
);

const CLAIM_RECORDING: &str = concat!(
    "UPDATE recordings SET state = 'uploading', updated_at = ?2, claim_token = ?3
     WHERE org = ?4 AND recording_id = ?1 AND state IN ('discovered', 'transcoding', 'retrying')
     RETURNING ",
    claimed_columns!()
);

const CLAIM_DUE: &str = concat!(
    "UPDATE recordings SET state = 'uploading', updated_at = ?2, claim_token = ?3
     WHERE org = ?4 AND recording_id = (
         SELECT recording_id FROM recordings INDEXED BY recordings_by_deadline
         WHERE org = ?4 AND state IN ('discovered', 'transcoding', 'retrying') AND next_attempt_at <= ?1
         ORDER BY deadline, next_attempt_at LIMIT 1)
     RETURNING ",
    claimed_columns!()
);

const NEXT_DUE: &str = "SELECT MIN(next_attempt_at) FROM recordings INDEXED BY recordings_queue
     WHERE org = ?1 AND state IN ('discovered', 'transcoding', 'retrying')";

const COUNTS: &str = "SELECT kind, state, n FROM counts WHERE org = ?1";

const UNFINISHED: &str = "SELECT COALESCE(SUM(n), 0) FROM counts
     WHERE org = ?1 AND kind = 'recording' AND state NOT IN ('archived', 'parked', 'failed')";

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

    /// [`Ledger::prune`], one slice: returns what it removed.
    fn prune_slice(&self, cutoff: i64) -> BoxFuture<'_, LedgerResult<Pruned>> {
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let batch = params![cutoff, PRUNE_BATCH];
            let recordings = tx.execute(SQL.sql(statements::PRUNE_RECORDINGS), batch)? as u64;
            let conversations = tx.execute(SQL.sql(statements::PRUNE_CONVERSATIONS), batch)? as u64;
            tx.execute(SQL.sql(statements::PRUNE_PARKED), [cutoff])?;
            tx.commit()?;
            Ok(Pruned {
                recordings,
                conversations,
            })
        })
    }
}

#[cfg(test)]
mod tests;
