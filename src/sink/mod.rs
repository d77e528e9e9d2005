//! Where archived recordings go: S3 ([`s3`]) or a directory ([`file`]).
//!
//! The worker drives every sink the same way: is the key taken ([`Sink::head`])? Stream
//! the media in ([`Sink::put_stream`]), confirm it ([`Sink::head`] again), write the
//! sidecar ([`Sink::put_bytes`]). Media objects are never overwritten; the worker
//! checks first and the sinks refuse at write time too (S3 `If-None-Match: *`, which
//! some S3-compatible stores ignore, hence the check first; a hard link for files, which
//! fails if the name exists). Sidecars are the archiver's own derived data and are
//! rewritten freely.

pub mod checksum;
pub mod counted;
pub mod file;
pub mod layout;
pub mod s3;
pub mod settings;
pub mod streamed;
pub mod tally;

use crate::download::ByteStream;
use crate::download::DownloadError;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

/// Who wrote an existing object.
#[derive(Debug, Clone, PartialEq)]
pub enum Owner {
    /// The archiver, for this recording id (S3 object metadata says so).
    Recording(String),
    /// Something else wrote it (S3 object without our metadata).
    Foreign,
    /// The sink cannot tell; the file sink, whose directory belongs to the archiver and
    /// which renames only complete, verified files into place.
    Unknown,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObjectInfo {
    pub size: u64,
    pub owner: Owner,
    /// The size its upload was committed to, as recorded in the object's metadata
    /// (`expected-size`) when it was written: what adoption compares with, since the
    /// upload trusted the host's Content-Length, which may differ from the size the
    /// recording declares. `None`: not recorded (older objects, the file sink).
    pub recorded_size: Option<u64>,
    /// The additional checksum the store keeps (`ALGORITHM:base64`, see
    /// [`checksum`]), `None` when it keeps none (or checksums are off).
    pub checksum: Option<String>,
    /// Its Object Lock retention, if any.
    pub lock: Option<Lock>,
    pub legal_hold: bool,
}

/// An object's Object Lock retention as the store reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Lock {
    /// `GOVERNANCE` or `COMPLIANCE`.
    pub mode: String,
    pub until: chrono::DateTime<chrono::Utc>,
}

/// What a write stored, besides the bytes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stored {
    /// The additional checksum sent with it, which the store verified on receipt
    /// (`ALGORITHM:base64`, the form [`ObjectInfo::checksum`] reports); `None` when
    /// none was sent.
    pub checksum: Option<String>,
}

/// What to write, besides the bytes.
#[derive(Debug, Clone)]
pub struct PutRequest<'a> {
    pub key: &'a str,
    pub recording_id: &'a str,
    pub conversation_id: &'a str,
    pub content_type: &'a str,
    /// The announced length (Content-Length or the recording's metadata), if any; the
    /// body stream fails if the bytes do not match it.
    pub length: Option<u64>,
    /// The size the body is checked against (the host's Content-Length, else the size
    /// the recording declares), recorded in the object's metadata.
    pub expected: Option<u64>,
    /// When the object's Object Lock retention starts counting: the recording's start.
    pub locked_from: Option<chrono::DateTime<chrono::Utc>>,
}

/// Whether `bytes` is a sidecar this daemon wrote for `recording_id` (its `archive`
/// names the recording and the archiver): how a sidecar written before sidecars carried
/// the recording-id metadata, or one in a directory, is told from another tool's file
/// that merely names the same id (Genesys's own export).
pub fn is_own_sidecar(bytes: &[u8], recording_id: &str) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes).is_ok_and(|doc| {
        doc["archive"]["recordingId"] == recording_id
            && doc["archive"]["archiver"]
                .as_str()
                .is_some_and(|a| a.starts_with("genesys-archiver/"))
    })
}

/// Upload id journalled *before* CreateMultipartUpload: a crash between the create and
/// the journal entry would otherwise leave an upload nobody knows about. An entry with
/// this id means "whatever upload is open at this key is ours": abort all of them.
pub const UPLOAD_PENDING: &str = "";

/// Records multipart uploads while they are open, so that a crash leaves none behind:
/// at start, every upload still recorded is aborted.
pub trait UploadJournal: Send + Sync {
    fn opened<'a>(&'a self, upload_id: &'a str) -> BoxFuture<'a, Result<(), SinkError>>;
    fn closed(&self) -> BoxFuture<'_, Result<(), SinkError>>;
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SinkError {
    /// The key is taken; nothing was written.
    #[error("object already exists")]
    Exists,
    /// The body stream failed (download error, truncation); the upload was aborted.
    #[error("{0}")]
    Source(DownloadError),
    /// Shutdown asked the upload to stop; it was aborted.
    #[error("upload cancelled by shutdown")]
    Cancelled,
    /// The store failed.
    #[error("{operation}: {message}")]
    Store { operation: &'static str, message: String },
    /// The bucket refuses what the configuration asks of it (another owner, no Object
    /// Lock): a configuration to mend, not an outage to wait out.
    #[error("{0}")]
    Refused(String),
}

impl SinkError {
    pub fn store(operation: &'static str, message: impl ToString) -> Self {
        SinkError::Store {
            operation,
            message: message.to_string(),
        }
    }
}

pub trait Sink: Send + Sync {
    /// `s3://bucket/prefix` or the directory, for logs and reports.
    fn describe(&self) -> String;

    /// Substituted for `{prefix}` in the key template.
    fn prefix(&self) -> &str;

    /// The object at `key`, if any.
    fn head<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<ObjectInfo>, SinkError>>;

    /// Streams `body` into a new object. Nothing is left behind on failure or
    /// cancellation: a multipart upload is aborted, a temporary file removed.
    fn put_stream<'a>(
        &'a self,
        request: PutRequest<'a>,
        body: ByteStream,
        journal: &'a dyn UploadJournal,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<Stored, SinkError>>;

    /// Writes a small object whole. With `owner` (a recording's sidecar) the object is
    /// attributed to that recording and replaces only an object of the same recording:
    /// anything else at the key (Genesys's own export `_metadata.json` in the same
    /// layout, another tool's file) is never overwritten, [`SinkError::Exists`]. Without
    /// (a manifest, which the daemon alone writes), it replaces what is there. With
    /// Object Lock, its retention counts from `locked_from` (now when `None`).
    fn put_bytes<'a>(
        &'a self,
        key: &'a str,
        body: Bytes,
        content_type: &'a str,
        owner: Option<&'a str>,
        locked_from: Option<chrono::DateTime<chrono::Utc>>,
    ) -> BoxFuture<'a, Result<(), SinkError>>;

    /// Reads an object back: its size and SHA-256 (adopting an upload that finished
    /// just before a crash).
    fn read_checksum<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(u64, String), SinkError>>;

    /// Reads a small object whole (a manifest), `None` when there is none; one larger
    /// than `max` bytes is refused rather than held in memory.
    fn get_bytes<'a>(&'a self, key: &'a str, max: u64) -> BoxFuture<'a, Result<Option<Bytes>, SinkError>>;

    /// Every object whose key starts with `prefix`, with its size, in key order
    /// (`reconcile` looks for objects the ledger does not know).
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<(String, u64)>, SinkError>>;

    /// Aborts a multipart upload left open by a crash (no-op where there are none);
    /// with [`UPLOAD_PENDING`], every upload open at `key`.
    fn abort_upload<'a>(&'a self, key: &'a str, upload_id: &'a str) -> BoxFuture<'a, Result<(), SinkError>>;

    /// Whether the sink answers and can be written (readiness, `check-config --connect`).
    fn check(&self) -> BoxFuture<'_, Result<(), SinkError>>;

    /// Locks `key` as the configuration asks (retention from `from`, legal hold) if it
    /// is not locked yet: an object adopted from an attempt that stopped between its
    /// upload and its lock. A no-op without Object Lock.
    fn ensure_locked<'a>(
        &'a self,
        _key: &'a str,
        _from: Option<chrono::DateTime<chrono::Utc>>,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
    }

    /// Whether the bucket is what the configuration asks (its owner, Object Lock),
    /// checked once before an org starts: [`SinkError::Refused`] when it is not.
    fn check_bucket(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
    }
}
