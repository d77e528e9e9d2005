//! `migrate-ledger`: a SQLite ledger copied into PostgreSQL.

use super::*;

/// `migrate-ledger --from FILE`: copies a SQLite ledger into the PostgreSQL ledger the
/// configuration names, for the move from one process to replicas. The file's daemon
/// must be stopped (its lock is taken); running it again copies only what is missing.
pub async fn migrate_ledger(settings: &LedgerSettings, from: &std::path::Path) -> ExitCode {
    let LedgerBackend::Postgres(target) = &settings.backend else {
        // A configuration error: one line naming the key, exit 2, nothing done.
        eprintln!(
            "error: ledger.url: migrate-ledger copies into the PostgreSQL ledger the configuration names, \
             and this configuration names a SQLite file ([ledger] path)"
        );
        return ExitCode::from(2);
    };
    // Before the database is asked anything: a wrong path is the likelier mistake.
    if !from.is_file() {
        return failure(format!("no SQLite ledger at {}", from.display()));
    }
    let ledger = match crate::ledger::postgres::PgLedger::connect(target).await {
        Ok(ledger) => ledger,
        Err(e) => return failure(e),
    };
    match ledger.import_sqlite(from).await {
        Ok(copied) => {
            println!("{:<22} {:>10} {:>10}", "table", "read", "new");
            for (table, read, new) in &copied.tables {
                println!("{table:<22} {read:>10} {new:>10}");
            }
            println!(
                "{} copied into PostgreSQL; start the replicas on it (and keep the file until they run)",
                from.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => failure(e),
    }
}
