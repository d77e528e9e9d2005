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
use rusqlite_migration::{M, MigrationDefinitionError, Migrations};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// One org's view of the ledger file: every query reads and writes that org's rows.
/// Views of several orgs share one connection ([`SqliteLedger::for_org`]).
pub struct SqliteLedger {
    conn: Arc<Mutex<Connection>>,
    org: Arc<str>,
}

/// The schema, one step per version; `PRAGMA user_version` counts the steps applied
/// (`rusqlite_migration`). Ledgers written before migrations existed carry
/// `user_version = 2`, i.e. steps 1 and 2: never edit a released step, add one.
const MIGRATIONS: &[M<'static>] = &[
    M::up(
        "CREATE TABLE IF NOT EXISTS recordings (
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
        -- Discovery asks, per conversation, whether the ledger knows it already.
        CREATE INDEX IF NOT EXISTS recordings_conversation ON recordings(conversation_id);
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        -- Conversations whose recording list could not be used; their recordings are unknown.
        CREATE TABLE IF NOT EXISTS parked_conversations (
            conversation_id TEXT PRIMARY KEY,
            reason          TEXT NOT NULL,
            parked_at       INTEGER NOT NULL
        );",
    ),
    M::up(
        "-- The workers' queue, in claim order. Partial, so a claim walks to the first waiting
        -- recording instead of sorting every waiting one (measured: 76 ms per claim at a
        -- backlog of 100,000 without it; `scripts/bench/scale.sh`).
        CREATE INDEX IF NOT EXISTS recordings_queue ON recordings(next_attempt_at, start_time)
            WHERE state IN ('discovered', 'transcoding', 'retrying');
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
        CREATE INDEX IF NOT EXISTS conversations_due ON conversations(state, next_check_at);",
    ),
    M::up(
        "-- Every state change of a claimed recording names its claim.
        ALTER TABLE recordings ADD COLUMN claim_token INTEGER;
        -- Rows per state, kept by triggers in the same transaction as the change, so a
        -- /metrics scrape reads a dozen rows instead of grouping the whole ledger
        -- (measured: 15.4 ms per report at 100,000 recordings; `cargo bench --bench scrape`).
        CREATE TABLE counts (
            kind  TEXT NOT NULL,
            state TEXT NOT NULL,
            n     INTEGER NOT NULL,
            PRIMARY KEY (kind, state)
        ) WITHOUT ROWID;
        INSERT INTO counts SELECT 'recording', state, COUNT(*) FROM recordings GROUP BY state;
        INSERT INTO counts SELECT 'conversation', state, COUNT(*) FROM conversations GROUP BY state;
        CREATE TRIGGER recordings_counted_in AFTER INSERT ON recordings BEGIN
            INSERT INTO counts (kind, state, n) VALUES ('recording', NEW.state, 1)
                ON CONFLICT (kind, state) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER recordings_counted_out AFTER DELETE ON recordings BEGIN
            UPDATE counts SET n = n - 1 WHERE kind = 'recording' AND state = OLD.state;
        END;
        CREATE TRIGGER recordings_counted_moved AFTER UPDATE OF state ON recordings
            WHEN OLD.state <> NEW.state BEGIN
            UPDATE counts SET n = n - 1 WHERE kind = 'recording' AND state = OLD.state;
            INSERT INTO counts (kind, state, n) VALUES ('recording', NEW.state, 1)
                ON CONFLICT (kind, state) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER conversations_counted_in AFTER INSERT ON conversations BEGIN
            INSERT INTO counts (kind, state, n) VALUES ('conversation', NEW.state, 1)
                ON CONFLICT (kind, state) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER conversations_counted_out AFTER DELETE ON conversations BEGIN
            UPDATE counts SET n = n - 1 WHERE kind = 'conversation' AND state = OLD.state;
        END;
        CREATE TRIGGER conversations_counted_moved AFTER UPDATE OF state ON conversations
            WHEN OLD.state <> NEW.state BEGIN
            UPDATE counts SET n = n - 1 WHERE kind = 'conversation' AND state = OLD.state;
            INSERT INTO counts (kind, state, n) VALUES ('conversation', NEW.state, 1)
                ON CONFLICT (kind, state) DO UPDATE SET n = n + 1;
        END;
        -- The oldest unarchived recording (status, /metrics) without a scan.
        CREATE INDEX recordings_unfinished ON recordings(COALESCE(end_time, start_time, discovered_at))
            WHERE state NOT IN ('archived', 'parked');
        -- Pruning walks only finished rows, oldest first.
        CREATE INDEX recordings_finished ON recordings(COALESCE(start_time, discovered_at))
            WHERE state IN ('archived', 'parked');
        CREATE INDEX conversations_start ON conversations(start_time);
        -- status lists the parked conversations oldest first.
        CREATE INDEX parked_conversations_at ON parked_conversations(parked_at);",
    ),
    M::up(
        "-- One ledger for several orgs: every row carries its org. Rows written before
        -- belong to the org of a single-org configuration.
        ALTER TABLE recordings ADD COLUMN org TEXT NOT NULL DEFAULT 'default';
        ALTER TABLE conversations ADD COLUMN org TEXT NOT NULL DEFAULT 'default';
        ALTER TABLE parked_conversations ADD COLUMN org TEXT NOT NULL DEFAULT 'default';
        -- Counts per org (status gives a line per org, /metrics a label).
        DROP TRIGGER recordings_counted_in;
        DROP TRIGGER recordings_counted_out;
        DROP TRIGGER recordings_counted_moved;
        DROP TRIGGER conversations_counted_in;
        DROP TRIGGER conversations_counted_out;
        DROP TRIGGER conversations_counted_moved;
        CREATE TABLE org_counts (
            org   TEXT NOT NULL,
            kind  TEXT NOT NULL,
            state TEXT NOT NULL,
            n     INTEGER NOT NULL,
            PRIMARY KEY (org, kind, state)
        ) WITHOUT ROWID;
        INSERT INTO org_counts SELECT 'default', kind, state, n FROM counts;
        DROP TABLE counts;
        ALTER TABLE org_counts RENAME TO counts;
        CREATE TRIGGER recordings_counted_in AFTER INSERT ON recordings BEGIN
            INSERT INTO counts (org, kind, state, n) VALUES (NEW.org, 'recording', NEW.state, 1)
                ON CONFLICT (org, kind, state) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER recordings_counted_out AFTER DELETE ON recordings BEGIN
            UPDATE counts SET n = n - 1 WHERE org = OLD.org AND kind = 'recording' AND state = OLD.state;
        END;
        CREATE TRIGGER recordings_counted_moved AFTER UPDATE OF state ON recordings
            WHEN OLD.state <> NEW.state BEGIN
            UPDATE counts SET n = n - 1 WHERE org = OLD.org AND kind = 'recording' AND state = OLD.state;
            INSERT INTO counts (org, kind, state, n) VALUES (NEW.org, 'recording', NEW.state, 1)
                ON CONFLICT (org, kind, state) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER conversations_counted_in AFTER INSERT ON conversations BEGIN
            INSERT INTO counts (org, kind, state, n) VALUES (NEW.org, 'conversation', NEW.state, 1)
                ON CONFLICT (org, kind, state) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER conversations_counted_out AFTER DELETE ON conversations BEGIN
            UPDATE counts SET n = n - 1 WHERE org = OLD.org AND kind = 'conversation' AND state = OLD.state;
        END;
        CREATE TRIGGER conversations_counted_moved AFTER UPDATE OF state ON conversations
            WHEN OLD.state <> NEW.state BEGIN
            UPDATE counts SET n = n - 1 WHERE org = OLD.org AND kind = 'conversation' AND state = OLD.state;
            INSERT INTO counts (org, kind, state, n) VALUES (NEW.org, 'conversation', NEW.state, 1)
                ON CONFLICT (org, kind, state) DO UPDATE SET n = n + 1;
        END;
        -- The queues and the oldest unarchived, per org: led by the org, so one org's
        -- claim walks its own queue, not the backlog of every other org.
        DROP INDEX recordings_queue;
        CREATE INDEX recordings_queue ON recordings(org, next_attempt_at, start_time)
            WHERE state IN ('discovered', 'transcoding', 'retrying');
        DROP INDEX conversations_due;
        CREATE INDEX conversations_due ON conversations(org, state, next_check_at);
        DROP INDEX recordings_unfinished;
        CREATE INDEX recordings_unfinished ON recordings(org, COALESCE(end_time, start_time, discovered_at))
            WHERE state NOT IN ('archived', 'parked');
        CREATE INDEX parked_conversations_org ON parked_conversations(org, parked_at);",
    ),
    M::up(
        "-- A screen recording can be several files (parts): each part's key, size and
        -- SHA-256, as JSON, for a recording of several; NULL for one file (object_key,
        -- size and sha256 say it all).
        ALTER TABLE recordings ADD COLUMN parts TEXT;
        -- Where the open multipart upload is: one of the part keys (NULL: object_key).
        ALTER TABLE recordings ADD COLUMN upload_key TEXT;
        -- Deadlines from the listing: after archive_date a restore is needed, after
        -- delete_date the recording is gone. deadline is the nearer of the two (a year
        -- after the start when neither is known): the queue is claimed nearest deadline first.
        ALTER TABLE recordings ADD COLUMN archive_date INTEGER;
        ALTER TABLE recordings ADD COLUMN delete_date INTEGER;
        ALTER TABLE recordings ADD COLUMN deadline INTEGER NOT NULL DEFAULT 0;
        -- Rows from before: a year after their start (Genesys keeps recordings a year at
        -- most), so the backlog keeps its place by age.
        UPDATE recordings SET deadline = COALESCE(start_time, discovered_at) + 31536000000;
        CREATE INDEX recordings_by_deadline ON recordings(org, deadline, next_attempt_at)
            WHERE state IN ('discovered', 'transcoding', 'retrying');
        -- The soonest deadline of what is not archived yet (status, /metrics) without a scan.
        CREATE INDEX recordings_open_deadline ON recordings(org, deadline)
            WHERE state NOT IN ('archived', 'parked');
        -- Why a conversation's last listing failed (NULL once one succeeds).
        ALTER TABLE conversations ADD COLUMN reason TEXT;
        CREATE INDEX conversations_failing ON conversations(org) WHERE reason IS NOT NULL;
        -- The oldest ended-but-unsettled conversation (status, /metrics) without a scan.
        CREATE INDEX conversations_unsettled ON conversations(org, end_time)
            WHERE state IN ('ended', 'checking');",
    ),
    M::up(
        "-- Rows keyed by (org, id): an org whose API answers with another org's ids (the
        -- same Genesys org configured twice, a hostile api_url) gets rows of its own and
        -- can never claim, park or re-key the other's. SQLite changes a primary key by
        -- rebuilding the table; its indexes and triggers are made again as they were.
        CREATE TABLE recordings_by_org (
            recording_id    TEXT NOT NULL,
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
            updated_at      INTEGER NOT NULL,
            claim_token     INTEGER,
            org             TEXT NOT NULL DEFAULT 'default',
            parts           TEXT,
            upload_key      TEXT,
            archive_date    INTEGER,
            delete_date     INTEGER,
            deadline        INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (org, recording_id)
        );
        INSERT INTO recordings_by_org (recording_id, conversation_id, state, reason, attempts, next_attempt_at,
            start_time, end_time, metadata, object_key, size, sha256, upload_id, discovered_at, archived_at,
            updated_at, claim_token, org, parts, upload_key, archive_date, delete_date, deadline)
        SELECT recording_id, conversation_id, state, reason, attempts, next_attempt_at,
            start_time, end_time, metadata, object_key, size, sha256, upload_id, discovered_at, archived_at,
            updated_at, claim_token, org, parts, upload_key, archive_date, delete_date, deadline
        FROM recordings;
        DROP TABLE recordings;
        ALTER TABLE recordings_by_org RENAME TO recordings;
        CREATE INDEX recordings_due ON recordings(state, next_attempt_at);
        CREATE INDEX recordings_conversation ON recordings(org, conversation_id);
        CREATE INDEX recordings_queue ON recordings(org, next_attempt_at, start_time)
            WHERE state IN ('discovered', 'transcoding', 'retrying');
        CREATE INDEX recordings_unfinished ON recordings(org, COALESCE(end_time, start_time, discovered_at))
            WHERE state NOT IN ('archived', 'parked');
        CREATE INDEX recordings_finished ON recordings(COALESCE(start_time, discovered_at))
            WHERE state IN ('archived', 'parked');
        CREATE INDEX recordings_by_deadline ON recordings(org, deadline, next_attempt_at)
            WHERE state IN ('discovered', 'transcoding', 'retrying');
        CREATE INDEX recordings_open_deadline ON recordings(org, deadline)
            WHERE state NOT IN ('archived', 'parked');
        CREATE TRIGGER recordings_counted_in AFTER INSERT ON recordings BEGIN
            INSERT INTO counts (org, kind, state, n) VALUES (NEW.org, 'recording', NEW.state, 1)
                ON CONFLICT (org, kind, state) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER recordings_counted_out AFTER DELETE ON recordings BEGIN
            UPDATE counts SET n = n - 1 WHERE org = OLD.org AND kind = 'recording' AND state = OLD.state;
        END;
        CREATE TRIGGER recordings_counted_moved AFTER UPDATE OF state ON recordings
            WHEN OLD.state <> NEW.state BEGIN
            UPDATE counts SET n = n - 1 WHERE org = OLD.org AND kind = 'recording' AND state = OLD.state;
            INSERT INTO counts (org, kind, state, n) VALUES (NEW.org, 'recording', NEW.state, 1)
                ON CONFLICT (org, kind, state) DO UPDATE SET n = n + 1;
        END;

        CREATE TABLE conversations_by_org (
            conversation_id TEXT NOT NULL,
            start_time      INTEGER NOT NULL,
            end_time        INTEGER,
            state           TEXT NOT NULL,
            checks          INTEGER NOT NULL DEFAULT 0,
            next_check_at   INTEGER,
            updated_at      INTEGER NOT NULL,
            org             TEXT NOT NULL DEFAULT 'default',
            reason          TEXT,
            PRIMARY KEY (org, conversation_id)
        );
        INSERT INTO conversations_by_org (conversation_id, start_time, end_time, state, checks, next_check_at,
            updated_at, org, reason)
        SELECT conversation_id, start_time, end_time, state, checks, next_check_at, updated_at, org, reason
        FROM conversations;
        DROP TABLE conversations;
        ALTER TABLE conversations_by_org RENAME TO conversations;
        CREATE INDEX conversations_due ON conversations(org, state, next_check_at);
        CREATE INDEX conversations_start ON conversations(start_time);
        CREATE INDEX conversations_failing ON conversations(org) WHERE reason IS NOT NULL;
        CREATE INDEX conversations_unsettled ON conversations(org, end_time)
            WHERE state IN ('ended', 'checking');
        CREATE TRIGGER conversations_counted_in AFTER INSERT ON conversations BEGIN
            INSERT INTO counts (org, kind, state, n) VALUES (NEW.org, 'conversation', NEW.state, 1)
                ON CONFLICT (org, kind, state) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER conversations_counted_out AFTER DELETE ON conversations BEGIN
            UPDATE counts SET n = n - 1 WHERE org = OLD.org AND kind = 'conversation' AND state = OLD.state;
        END;
        CREATE TRIGGER conversations_counted_moved AFTER UPDATE OF state ON conversations
            WHEN OLD.state <> NEW.state BEGIN
            UPDATE counts SET n = n - 1 WHERE org = OLD.org AND kind = 'conversation' AND state = OLD.state;
            INSERT INTO counts (org, kind, state, n) VALUES (NEW.org, 'conversation', NEW.state, 1)
                ON CONFLICT (org, kind, state) DO UPDATE SET n = n + 1;
        END;

        CREATE TABLE parked_conversations_by_org (
            conversation_id TEXT NOT NULL,
            reason          TEXT NOT NULL,
            parked_at       INTEGER NOT NULL,
            org             TEXT NOT NULL DEFAULT 'default',
            PRIMARY KEY (org, conversation_id)
        );
        INSERT INTO parked_conversations_by_org (conversation_id, reason, parked_at, org)
        SELECT conversation_id, reason, parked_at, org FROM parked_conversations;
        DROP TABLE parked_conversations;
        ALTER TABLE parked_conversations_by_org RENAME TO parked_conversations;
        CREATE INDEX parked_conversations_at ON parked_conversations(parked_at);
        CREATE INDEX parked_conversations_org ON parked_conversations(org, parked_at);",
    ),
    M::up(
        "-- The retention hand-off to Genesys: when it was done, the deleteDate before and the
        -- one set (NULL: left as it was, handoff_note says why). Due: archived, not yet.
        ALTER TABLE recordings ADD COLUMN handoff_at INTEGER;
        ALTER TABLE recordings ADD COLUMN handoff_old INTEGER;
        ALTER TABLE recordings ADD COLUMN handoff_new INTEGER;
        ALTER TABLE recordings ADD COLUMN handoff_note TEXT;
        CREATE INDEX recordings_handoff_due ON recordings(org, archived_at)
            WHERE state = 'archived' AND handoff_at IS NULL;",
    ),
];

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
mod tests {
    use super::*;

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

    #[tokio::test]
    async fn failed_recordings_go_back_on_retry_and_the_watermark_persists() {
        let (ledger, dir) = temp_ledger();
        ledger.insert(vec![new("a", None)]).await.unwrap();
        let a = ledger
            .claim_due(Utc::now() + chrono::Duration::seconds(1))
            .await
            .unwrap()
            .unwrap();
        ledger.fail(a.claim(), 8, "boom".into()).await.unwrap();
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

    #[tokio::test]
    async fn the_first_key_stays_for_every_later_attempt() {
        let (ledger, dir) = temp_ledger();
        ledger.insert(vec![new("a", None)]).await.unwrap();
        let first = ledger.claim_due(soon()).await.unwrap().unwrap();
        assert_eq!(first.key, None);
        assert_eq!(
            ledger.fix_key(first.claim(), "hour=10/a".into()).await.unwrap(),
            "hour=10/a"
        );
        ledger
            .reschedule(first.claim(), State::Retrying, Utc::now(), 1, Some("boom".into()))
            .await
            .unwrap();
        let again = ledger.claim_due(soon()).await.unwrap().unwrap();
        assert_eq!(again.key.as_deref(), Some("hour=10/a"));
        assert_eq!(again.open_upload, None);
        assert_eq!(
            ledger.fix_key(again.claim(), "hour=11/a".into()).await.unwrap(),
            "hour=10/a",
            "a later attempt never moves the key"
        );
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
    async fn prune_removes_only_finished_rows_older_than_the_cutoff() {
        let (ledger, dir) = temp_ledger();
        let old = Utc::now() - chrono::Duration::days(500);
        let mut rows = Vec::new();
        for (id, start, parked) in [
            ("old-archived", old, None),
            ("old-parked", old, Some("deleted")),
            ("old-waiting", old, None),
            ("new-archived", Utc::now(), None),
        ] {
            rows.push(NewRecording {
                start_time: Some(start),
                ..new(id, parked)
            });
        }
        ledger.insert(rows).await.unwrap();
        for id in ["old-archived", "new-archived"] {
            let c = ledger.claim_recording(id.into()).await.unwrap().unwrap();
            ledger.archived(c.claim(), facts(id)).await.unwrap();
        }
        let conversation = |id: &str, start, state| ConversationRow {
            conversation_id: id.into(),
            start,
            end: Some(start),
            state,
            checks: 0,
            next_check_at: None,
            reason: None,
        };
        ledger
            .save_conversations(vec![
                conversation("old-settled", old, ConversationState::Settled),
                conversation("old-ended", old, ConversationState::Ended),
                conversation("new-settled", Utc::now(), ConversationState::Settled),
            ])
            .await
            .unwrap();

        let pruned = ledger.prune(Utc::now() - chrono::Duration::days(400)).await.unwrap();
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
                status.counts["archived"],
                status.counts["parked"],
                status.counts["discovered"]
            ),
            (1, 0, 1)
        );
        assert_eq!((status.conversations["settled"], status.conversations["ended"]), (1, 1));
        counted_matches_grouped(&dir);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn parked_recordings_are_listed_with_their_reason_and_put_back_on_request() {
        let (ledger, dir) = temp_ledger();
        ledger
            .insert(vec![
                new("restored", Some("archived in Genesys (restore it there to archive it)")),
                new("deleted", Some("deleted in Genesys")),
                new("waiting", None),
            ])
            .await
            .unwrap();
        let parked = ledger.list(ListFilter::Parked, 100).await.unwrap();
        let mut ids: Vec<_> = parked
            .iter()
            .map(|r| (r.recording_id.as_str(), r.reason.as_deref()))
            .collect();
        ids.sort();
        assert_eq!(
            ids,
            [
                ("deleted", Some("deleted in Genesys")),
                ("restored", Some("archived in Genesys (restore it there to archive it)"))
            ]
        );
        assert_eq!(ledger.list(ListFilter::Waiting, 100).await.unwrap().len(), 1);
        assert_eq!(ledger.list(ListFilter::Failed, 100).await.unwrap().len(), 0);

        let by_reason = ParkedSelection::ReasonContains("ARCHIVED IN GENESYS".into());
        assert_eq!(ledger.retry_parked(by_reason).await.unwrap(), 1);
        assert_eq!(
            ledger.retry_parked(ParkedSelection::Id("nope".into())).await.unwrap(),
            0
        );
        let waiting: Vec<_> = ledger
            .list(ListFilter::Waiting, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.recording_id)
            .collect();
        assert_eq!(waiting.len(), 2);
        assert!(waiting.contains(&"restored".to_owned()));
        assert_eq!(
            ledger
                .retry_parked(ParkedSelection::Id("deleted".into()))
                .await
                .unwrap(),
            1
        );
        assert_eq!(ledger.list(ListFilter::Parked, 100).await.unwrap().len(), 0);
        counted_matches_grouped(&dir);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn the_report_reads_no_table_scan() {
        let (ledger, dir) = temp_ledger();
        drop(ledger);
        let conn = Connection::open(dir.join("ledger.sqlite")).unwrap();
        for sql in [
            COUNTS,
            OLDEST_UNARCHIVED,
            "SELECT SUM(n) FROM counts WHERE kind = 'recording'",
        ] {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let org: &[&dyn rusqlite::ToSql] = if sql.contains("?1") { &[&"acme"] } else { &[] };
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
}
