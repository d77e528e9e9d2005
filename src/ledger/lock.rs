//! One owner per ledger.
//!
//! Two `run`s on one ledger file would each treat the other's in-flight recordings as
//! left by a crash and queue them again. The owner holds an advisory lock (`flock`) on
//! `<ledger>.lock` for its lifetime, with its pid written inside so a second one can say
//! who holds it. The kernel drops the lock when the process dies, however it dies, so a
//! crash never leaves a stale lock behind. Readers (`status`, `list`) do not take it.

use super::LedgerError;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Held while the process owns the ledger; dropping it releases the lock.
#[derive(Debug)]
pub struct LedgerLock {
    _file: File,
    path: PathBuf,
}

impl LedgerLock {
    /// Takes the lock of the ledger at `ledger`, or says who holds it.
    pub fn acquire(ledger: &Path) -> Result<Self, LedgerError> {
        if let Some(dir) = ledger.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| LedgerError::Store(format!("cannot create {}: {e}", dir.display())))?;
        }
        let path = lock_path(ledger);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| LedgerError::Store(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!("pid {pid}"),
                    Err(_) => "a process that has not written its pid yet".to_owned(),
                };
                return Err(LedgerError::Store(format!(
                    "{} is in use by another genesys-archiver ({holder}); one `run` or `backfill` per ledger",
                    ledger.display()
                )));
            }
            Err(TryLockError::Error(e)) => {
                return Err(LedgerError::Store(format!("cannot lock {}: {e}", path.display())));
            }
        }
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .and_then(|()| file.flush());
        written.map_err(|e| LedgerError::Store(format!("cannot write {}: {e}", path.display())))?;
        Ok(Self { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn lock_path(ledger: &Path) -> PathBuf {
    let mut name = ledger.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = std::env::temp_dir().join(format!("ga-lock-{}-{}", std::process::id(), fastrand::u64(..)));
        let ledger = dir.join("ledger.sqlite");
        let first = LedgerLock::acquire(&ledger).unwrap();
        assert_eq!(
            std::fs::read_to_string(first.path()).unwrap().trim(),
            std::process::id().to_string()
        );
        let refused = LedgerLock::acquire(&ledger).unwrap_err().to_string();
        assert!(
            refused.contains("ledger.sqlite") && refused.contains(&format!("pid {}", std::process::id())),
            "{refused}"
        );
        drop(first);
        LedgerLock::acquire(&ledger).expect("free again once released");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
