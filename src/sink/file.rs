//! A directory as the archive: the same key layout, as paths.
//!
//! Each object is written to a temporary file under `{root}/.partial/{pid}/` (one
//! directory per process), fsynced, then hard-linked to its final name, which fails if
//! the name exists (no overwrite, ever, even against a concurrent writer), and the
//! directory is fsynced. A crash leaves at most temporary files, which a later start
//! sweeps away: only those of processes no longer running, never another org's or
//! another live process's writes in progress. Used by `demo` and by sites
//! that archive to a mounted volume.

use super::{ObjectInfo, Owner, PutRequest, Sink, SinkError, Stored, UploadJournal};
use crate::download::ByteStream;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};
use std::path::{Component, Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

pub struct FileSink {
    root: PathBuf,
}

const PARTIAL: &str = ".partial";

/// This host's name, as temporary directories are named (`/proc/sys/kernel/hostname`).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// This process's temporary directory under `.partial/`: `{host}-{pid}`, so processes
/// on several hosts sharing a volume never take each other's for their own.
fn own_dir() -> String {
    format!("{}-{}", hostname(), std::process::id())
}

/// Whether a process with this id runs (Linux: `/proc/{pid}`); ours always does.
fn process_alive(pid: u32) -> bool {
    pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists()
}

fn io(operation: &'static str) -> impl Fn(std::io::Error) -> SinkError {
    move |e| SinkError::store(operation, e)
}

impl FileSink {
    /// Opens (creating) the directory and removes the temporary files of processes that
    /// are gone (a crash). Every org of a process opens its sink, and several processes
    /// may share a volume: what a live process is writing is never touched.
    pub fn open(root: &Path) -> Result<Self, SinkError> {
        let partial = root.join(PARTIAL);
        std::fs::create_dir_all(partial.join(own_dir())).map_err(io("create directory"))?;
        let host = hostname();
        for entry in std::fs::read_dir(&partial).map_err(io("read directory"))? {
            let entry = entry.map_err(io("read directory"))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // `{host}-{pid}` directories: this host's, of a process gone. Earlier
            // versions' `{pid}` directories and `{pid}-{n}` files: of a process gone
            // here. Another host's (a shared volume) are never touched.
            let gone = match name.rsplit_once('-') {
                Some((h, pid)) if h == host => pid.parse::<u32>().is_ok_and(|pid| !process_alive(pid)),
                Some((pid, n)) if u64::from_str_radix(n, 16).is_ok() && !n.is_empty() => {
                    pid.parse::<u32>().is_ok_and(|pid| !process_alive(pid))
                }
                Some(_) => false,
                None => name.parse::<u32>().is_ok_and(|pid| !process_alive(pid)),
            };
            if gone {
                let path = entry.path();
                let _ = if path.is_dir() {
                    std::fs::remove_dir_all(path)
                } else {
                    std::fs::remove_file(path)
                };
            }
        }
        Ok(Self { root: root.to_owned() })
    }

    /// The path of a key; keys come from the validated layout, this is a second lock.
    fn path(&self, key: &str) -> Result<PathBuf, SinkError> {
        let relative = Path::new(key);
        if key.is_empty()
            || !relative.components().all(|c| matches!(c, Component::Normal(_)))
            || key.starts_with(PARTIAL)
        {
            return Err(SinkError::store("path", "key is not a plain relative path"));
        }
        Ok(self.root.join(relative))
    }

    fn temp_path(&self) -> PathBuf {
        let dir = self.root.join(PARTIAL).join(own_dir());
        // Made again if something removed it (a sweep by an older build).
        let _ = std::fs::create_dir_all(&dir);
        dir.join(format!("{:016x}", fastrand::u64(..)))
    }

    /// Links a complete temporary file to `path` (failing if it exists) and syncs the directory.
    async fn publish(&self, temp: &Path, path: &Path, replace: bool) -> Result<(), SinkError> {
        let dir = path.parent().expect("keys have a parent");
        tokio::fs::create_dir_all(dir).await.map_err(io("create directory"))?;
        let result = if replace {
            tokio::fs::rename(temp, path).await
        } else {
            let linked = tokio::fs::hard_link(temp, path).await;
            let _ = tokio::fs::remove_file(temp).await;
            linked
        };
        match result {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(SinkError::Exists),
            other => other.map_err(io("publish"))?,
        }
        let dir = dir.to_owned();
        tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
            .await
            .map_err(|e| SinkError::store("sync directory", e))?
            .map_err(io("sync directory"))
    }

    async fn write_stream(
        &self,
        temp: &Path,
        mut body: ByteStream,
        cancel: &CancellationToken,
    ) -> Result<(), SinkError> {
        let mut file = tokio::fs::File::create(temp).await.map_err(io("create"))?;
        loop {
            let chunk = tokio::select! {
                _ = cancel.cancelled() => return Err(SinkError::Cancelled),
                chunk = body.next() => chunk,
            };
            match chunk {
                None => break,
                Some(Err(e)) => return Err(SinkError::Source(e)),
                Some(Ok(bytes)) => file.write_all(&bytes).await.map_err(io("write"))?,
            }
        }
        file.sync_all().await.map_err(io("fsync"))
    }
}

impl Sink for FileSink {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn prefix(&self) -> &str {
        ""
    }

    fn head<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<ObjectInfo>, SinkError>> {
        Box::pin(async move {
            match tokio::fs::metadata(self.path(key)?).await {
                Ok(meta) => Ok(Some(ObjectInfo {
                    size: meta.len(),
                    owner: Owner::Unknown,
                    recorded_size: None,
                    checksum: None,
                    lock: None,
                    legal_hold: false,
                })),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(SinkError::store("stat", e)),
            }
        })
    }

    fn put_stream<'a>(
        &'a self,
        request: PutRequest<'a>,
        body: ByteStream,
        _journal: &'a dyn UploadJournal,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<Stored, SinkError>> {
        Box::pin(async move {
            let path = self.path(request.key)?;
            let temp = self.temp_path();
            let written = self.write_stream(&temp, body, cancel).await;
            let result = match written {
                Ok(()) => self.publish(&temp, &path, false).await,
                Err(e) => Err(e),
            };
            if result.is_err() {
                let _ = tokio::fs::remove_file(&temp).await;
            }
            // A directory keeps no checksum beside the file: the sidecar's SHA-256 is
            // the only one.
            result.map(|()| Stored::default())
        })
    }

    fn put_bytes<'a>(
        &'a self,
        key: &'a str,
        body: Bytes,
        _content_type: &'a str,
        owner: Option<&'a str>,
        _locked_from: Option<chrono::DateTime<chrono::Utc>>,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let path = self.path(key)?;
            // A file has no metadata: one of ours is a sidecar of this recording by its content.
            if let Some(id) = owner
                && let Ok(existing) = tokio::fs::read(&path).await
                && !super::is_own_sidecar(&existing, id)
            {
                return Err(SinkError::Exists);
            }
            let temp = self.temp_path();
            let mut file = tokio::fs::File::create(&temp).await.map_err(io("create"))?;
            file.write_all(&body).await.map_err(io("write"))?;
            file.sync_all().await.map_err(io("fsync"))?;
            self.publish(&temp, &path, true).await
        })
    }

    fn read_checksum<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(u64, String), SinkError>> {
        Box::pin(async move {
            let mut file = tokio::fs::File::open(self.path(key)?).await.map_err(io("open"))?;
            let (mut hasher, mut size, mut buf) = (Sha256::new(), 0u64, vec![0u8; 64 * 1024]);
            loop {
                let n = file.read(&mut buf).await.map_err(io("read"))?;
                if n == 0 {
                    break;
                }
                size += n as u64;
                hasher.update(&buf[..n]);
            }
            Ok((size, crate::hex::hex(&hasher.finalize())))
        })
    }

    fn get_bytes<'a>(&'a self, key: &'a str, max: u64) -> BoxFuture<'a, Result<Option<Bytes>, SinkError>> {
        Box::pin(async move {
            let path = self.path(key)?;
            match tokio::fs::metadata(&path).await {
                Ok(meta) if meta.len() > max => {
                    Err(SinkError::store("read", format!("{key} is larger than {max} bytes")))
                }
                Ok(_) => Ok(Some(Bytes::from(tokio::fs::read(&path).await.map_err(io("read"))?))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(SinkError::store("stat", e)),
            }
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<(String, u64)>, SinkError>> {
        Box::pin(async move {
            // Walk from the deepest directory the prefix names; keys use `/`.
            let dir = prefix.rsplit_once('/').map_or("", |(dir, _)| dir);
            let start = if dir.is_empty() {
                self.root.clone()
            } else {
                self.path(dir)?
            };
            let (root, prefix) = (self.root.clone(), prefix.to_owned());
            tokio::task::spawn_blocking(move || {
                let mut all = Vec::new();
                let mut pending = vec![start];
                while let Some(dir) = pending.pop() {
                    let entries = match std::fs::read_dir(&dir) {
                        Ok(entries) => entries,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(SinkError::store("list", e)),
                    };
                    for entry in entries {
                        let entry = entry.map_err(io("list"))?;
                        let meta = entry.metadata().map_err(io("list"))?;
                        let path = entry.path();
                        if meta.is_dir() {
                            pending.push(path);
                            continue;
                        }
                        let Ok(relative) = path.strip_prefix(&root) else {
                            continue;
                        };
                        let key = relative.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/");
                        // The sink's own temporary files are not objects.
                        if key.starts_with(&prefix) && !key.starts_with(PARTIAL) {
                            all.push((key, meta.len()));
                        }
                    }
                }
                all.sort();
                Ok(all)
            })
            .await
            .map_err(|e| SinkError::store("list", e))?
        })
    }

    fn abort_upload<'a>(&'a self, _key: &'a str, _upload_id: &'a str) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
    }

    fn check(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            let probe = self.temp_path();
            tokio::fs::write(&probe, b"probe").await.map_err(io("write probe"))?;
            tokio::fs::remove_file(&probe).await.map_err(io("remove probe"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_sweeps_only_the_temporary_files_of_processes_that_are_gone() {
        let root = std::env::temp_dir().join(format!("ga-file-sink-{}", fastrand::u64(..)));
        let first = FileSink::open(&root).unwrap();
        // A write of this process in progress (another org's sink), one of a process
        // that died, and one of an earlier version's flat layout from a dead process.
        let ours = first.temp_path();
        std::fs::write(&ours, b"half").unwrap();
        let dead = root.join(PARTIAL).join("4194303");
        std::fs::create_dir_all(&dead).unwrap();
        std::fs::write(dead.join("0123"), b"left").unwrap();
        let flat = root.join(PARTIAL).join("4194302-00ff");
        std::fs::write(&flat, b"left").unwrap();
        let ours_dead = root.join(PARTIAL).join(format!("{}-4194301", hostname()));
        std::fs::create_dir_all(&ours_dead).unwrap();
        let other_host = root.join(PARTIAL).join("another-host-1");
        std::fs::create_dir_all(&other_host).unwrap();
        let _second = FileSink::open(&root).unwrap();
        assert!(ours.exists(), "a live write is never swept");
        assert!(
            !dead.exists() && !flat.exists() && !ours_dead.exists(),
            "a dead process's files are"
        );
        assert!(other_host.exists(), "another host's are never touched");
        std::fs::remove_dir_all(root).unwrap();
    }
}
