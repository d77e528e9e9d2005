//! A directory as the archive: the same key layout, as paths.
//!
//! Each object is written to a temporary file under `{root}/.partial/`, fsynced, then
//! hard-linked to its final name, which fails if the name exists (no overwrite, ever,
//! even against a concurrent writer), and the directory is fsynced. A crash leaves at
//! most temporary files, which the next start sweeps away. Used by `demo` and by sites
//! that archive to a mounted volume.

use super::{ObjectInfo, Owner, PutRequest, Sink, SinkError, UploadJournal};
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

fn io(operation: &'static str) -> impl Fn(std::io::Error) -> SinkError {
    move |e| SinkError::store(operation, e)
}

impl FileSink {
    /// Opens (creating) the directory and removes temporary files left by a crash.
    pub fn open(root: &Path) -> Result<Self, SinkError> {
        std::fs::create_dir_all(root.join(PARTIAL)).map_err(io("create directory"))?;
        for entry in std::fs::read_dir(root.join(PARTIAL)).map_err(io("read directory"))? {
            let _ = std::fs::remove_file(entry.map_err(io("read directory"))?.path());
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
        self.root
            .join(PARTIAL)
            .join(format!("{}-{:016x}", std::process::id(), fastrand::u64(..)))
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
    ) -> BoxFuture<'a, Result<(), SinkError>> {
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
            result
        })
    }

    fn put_bytes<'a>(
        &'a self,
        key: &'a str,
        body: Bytes,
        _content_type: &'a str,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let path = self.path(key)?;
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
