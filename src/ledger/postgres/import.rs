//! Copies a SQLite ledger into the PostgreSQL ledger (`migrate-ledger`): the move from
//! one process to replicas without losing what the file knows — archived recordings
//! (so nothing is uploaded or adopted again), parked and failed ones with their
//! reasons, the queue, the conversations' lifecycle, the watermarks and the orgs'
//! states.
//!
//! The two schemas share their columns (the PostgreSQL one is the SQLite one at its
//! rows-per-org step, plus the claims' owners and leases), so rows are copied column for
//! column, in batches, each batch one transaction; rows already there are left as they
//! are, so a copy that stopped half-way is simply run again. Work the file's last owner
//! had in hand (`uploading` recordings, `checking` conversations) is given an owner that
//! no replica is and a lease that has run out: the first replica takes it over as it
//! would a dead replica's, open multipart upload included.
//!
//! The file's owner must be stopped: its lock is taken for the copy.

use super::{Failure, PgLedger, Value};
use crate::ledger::lock::LedgerLock;
use crate::ledger::sqlite::SqliteLedger;
use crate::ledger::{LedgerError, LedgerResult};
use rusqlite::types::Value as Cell;
use std::path::Path;

/// Rows read from the file per transaction.
const BATCH: i64 = 1_000;
/// The owner named on work the file's last owner had in hand: never a replica's
/// (theirs are `host/pid/random`).
const NO_OWNER: &str = "migrated-from-sqlite";

#[derive(Clone, Copy)]
enum Kind {
    Text,
    /// PostgreSQL `INTEGER`.
    Int4,
    /// PostgreSQL `BIGINT` (times in milliseconds, sizes, claim tokens).
    Int8,
}

struct Table {
    name: &'static str,
    /// The primary key, for `ON CONFLICT` (rows are read in SQLite's rowid order).
    key: &'static str,
    columns: &'static [(&'static str, Kind)],
}

/// Every table the two ledgers share, with its columns (the SQLite `counts` table is
/// its own: PostgreSQL counts with an index).
const TABLES: &[Table] = &[
    Table {
        name: "recordings",
        key: "org, recording_id",
        columns: &[
            ("recording_id", Kind::Text),
            ("org", Kind::Text),
            ("conversation_id", Kind::Text),
            ("state", Kind::Text),
            ("reason", Kind::Text),
            ("attempts", Kind::Int4),
            ("next_attempt_at", Kind::Int8),
            ("start_time", Kind::Int8),
            ("end_time", Kind::Int8),
            ("metadata", Kind::Text),
            ("object_key", Kind::Text),
            ("size", Kind::Int8),
            ("sha256", Kind::Text),
            ("upload_id", Kind::Text),
            ("discovered_at", Kind::Int8),
            ("archived_at", Kind::Int8),
            ("updated_at", Kind::Int8),
            ("claim_token", Kind::Int8),
            ("parts", Kind::Text),
            ("upload_key", Kind::Text),
            ("archive_date", Kind::Int8),
            ("delete_date", Kind::Int8),
            ("deadline", Kind::Int8),
            // What the retention hand-off did: never done twice after a move.
            ("handoff_at", Kind::Int8),
            ("handoff_old", Kind::Int8),
            ("handoff_new", Kind::Int8),
            ("handoff_note", Kind::Text),
        ],
    },
    Table {
        name: "conversations",
        key: "org, conversation_id",
        columns: &[
            ("conversation_id", Kind::Text),
            ("org", Kind::Text),
            ("start_time", Kind::Int8),
            ("end_time", Kind::Int8),
            ("state", Kind::Text),
            ("checks", Kind::Int4),
            ("next_check_at", Kind::Int8),
            ("updated_at", Kind::Int8),
            ("reason", Kind::Text),
        ],
    },
    Table {
        name: "parked_conversations",
        key: "org, conversation_id",
        columns: &[
            ("conversation_id", Kind::Text),
            ("org", Kind::Text),
            ("reason", Kind::Text),
            ("parked_at", Kind::Int8),
        ],
    },
    Table {
        name: "meta",
        key: "key",
        columns: &[("key", Kind::Text), ("value", Kind::Text)],
    },
];

/// What a copy did, table by table: rows read from the file and rows new in PostgreSQL
/// (the rest were there already).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Copied {
    pub tables: Vec<(&'static str, u64, u64)>,
}

impl Copied {
    /// `(read, new)` of `table`.
    pub fn of(&self, table: &str) -> (u64, u64) {
        self.tables
            .iter()
            .find(|(name, ..)| *name == table)
            .map_or((0, 0), |(_, read, new)| (*read, *new))
    }
}

/// One cell, typed for PostgreSQL.
fn cell(value: Cell, kind: Kind, table: &str, column: &str) -> LedgerResult<Value> {
    let wrong = |what: &str| LedgerError::Store(format!("{table}.{column} holds {what} in the SQLite ledger"));
    Ok(match (kind, value) {
        (Kind::Text, Cell::Text(s)) => Value::Text(Some(s)),
        (Kind::Text, Cell::Null) => Value::Text(None),
        (Kind::Int4, Cell::Integer(n)) => {
            Value::Int4(Some(i32::try_from(n).map_err(|_| wrong("an integer out of range"))?))
        }
        (Kind::Int4, Cell::Null) => Value::Int4(None),
        (Kind::Int8, Cell::Integer(n)) => Value::Int(Some(n)),
        (Kind::Int8, Cell::Null) => Value::Int(None),
        (_, Cell::Real(_)) => return Err(wrong("a real number")),
        (_, Cell::Blob(_)) => return Err(wrong("a blob")),
        (_, Cell::Text(_)) => return Err(wrong("text where a number belongs")),
        (_, Cell::Integer(_)) => return Err(wrong("a number where text belongs")),
    })
}

/// One row's cells, in the table's column order.
type Cells = Vec<Value>;

/// Up to [`BATCH`] rows of `table` whose rowid follows `after`, in rowid order, and the
/// last rowid read (where the next batch starts): one order whatever the key's columns.
fn read_batch(conn: &rusqlite::Connection, table: &Table, after: i64) -> LedgerResult<(Vec<Cells>, Option<i64>)> {
    let names: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
    let sql = format!(
        "SELECT {}, rowid FROM {} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
        names.join(", "),
        table.name,
    );
    let failed = |e: rusqlite::Error| LedgerError::Store(format!("reading {} from the SQLite ledger: {e}", table.name));
    let mut statement = conn.prepare_cached(&sql).map_err(failed)?;
    let mut rows = statement.query(rusqlite::params![after, BATCH]).map_err(failed)?;
    let (mut batch, mut last) = (Vec::new(), None);
    while let Some(row) = rows.next().map_err(failed)? {
        last = Some(row.get::<_, i64>(table.columns.len()).map_err(failed)?);
        let mut cells = Vec::with_capacity(table.columns.len());
        for (i, (column, kind)) in table.columns.iter().enumerate() {
            cells.push(cell(row.get::<_, Cell>(i).map_err(failed)?, *kind, table.name, column)?);
        }
        batch.push(cells);
    }
    Ok((batch, last))
}

impl PgLedger {
    /// Copies the SQLite ledger at `from` into this database; see the module's doc.
    pub async fn import_sqlite(&self, from: &Path) -> LedgerResult<Copied> {
        if !from.exists() {
            return Err(LedgerError::Store(format!("no SQLite ledger at {}", from.display())));
        }
        let _lock = LedgerLock::acquire(from)?;
        // An older file is brought to this build's schema first, as `run` would.
        drop(SqliteLedger::open(from)?);
        let conn = rusqlite::Connection::open_with_flags(from, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| LedgerError::Store(format!("cannot open {}: {e}", from.display())))?;
        let mut copied = Copied::default();
        for table in TABLES {
            let (mut read, mut new) = (0u64, 0u64);
            let mut after = i64::MIN;
            loop {
                let (batch, last) = read_batch(&conn, table, after)?;
                let Some(last) = last else { break };
                after = last;
                read += batch.len() as u64;
                new += self.insert_batch(table, batch).await?;
            }
            copied.tables.push((table.name, read, new));
        }
        self.orphan_work_in_hand().await?;
        Ok(copied)
    }

    /// Inserts `rows` of `table` in one transaction, leaving rows already there alone;
    /// returns how many were new.
    async fn insert_batch(&self, table: &Table, rows: Vec<Cells>) -> LedgerResult<u64> {
        let names: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
        let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO NOTHING",
            table.name,
            names.join(", "),
            placeholders.join(", "),
            table.key
        );
        let failed = |e: Failure| LedgerError::Store(format!("writing {} into PostgreSQL: {e}", table.name));
        let mut client = self.store.pool.get().await.map_err(|e| failed(Failure::Pool(e)))?;
        let tx = client.transaction().await.map_err(|e| failed(Failure::Sql(e)))?;
        let statement = tx.prepare(&sql).await.map_err(|e| failed(Failure::Sql(e)))?;
        let mut new = 0;
        for row in &rows {
            let params = super::bind(row);
            new += tx
                .execute(&statement, &params)
                .await
                .map_err(|e| failed(Failure::Sql(e)))?;
        }
        tx.commit().await.map_err(|e| failed(Failure::Sql(e)))?;
        Ok(new)
    }

    /// Work the file's owner had in hand goes to the first replica that looks: an owner
    /// that is no replica, a lease long run out.
    async fn orphan_work_in_hand(&self) -> LedgerResult<()> {
        let failed = |e: Failure| LedgerError::Store(format!("releasing work in hand: {e}"));
        let client = self.store.pool.get().await.map_err(|e| failed(Failure::Pool(e)))?;
        for sql in [
            "UPDATE recordings SET claim_owner = $1, lease_until = 0 WHERE state = 'uploading' AND claim_owner IS NULL",
            "UPDATE conversations SET claim_owner = $1, lease_until = 0 WHERE state = 'checking' AND claim_owner IS NULL",
        ] {
            client
                .execute(sql, &[&NO_OWNER])
                .await
                .map_err(|e| failed(Failure::Sql(e)))?;
        }
        Ok(())
    }
}
