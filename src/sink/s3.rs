//! S3 (or an S3-compatible store) as the archive.
//!
//! A body that fits in one part goes up in one PutObject. A larger one streams as a
//! multipart upload: parts of `part_size` are read from the download and uploaded by
//! spawned tasks, at most `parts_in_flight` at a time, so memory per recording is at
//! most `(parts_in_flight + 1) * part_size` whatever the recording's size. The upload id
//! is journalled in the ledger before the first part; any failure, or shutdown, aborts
//! the upload and clears the journal entry.
//!
//! A recording whose length is announced and at most `single_put_max` (but more than a
//! part) skips the part buffers: its download is the body of one streamed PutObject.
//!
//! Writes carry `If-None-Match: *` so S3 itself refuses to overwrite, and object
//! metadata `recording-id`, so an object found at a key can be attributed. Every write
//! carries an additional checksum ([`super::checksum`]) that S3 verifies on receipt, so
//! a body corrupted on its way is refused, never stored; with checksums on, a body
//! larger than a part goes up as a multipart upload whose parts each carry theirs (in
//! headers: the streamed PutObject would need `aws-chunked` trailers, which not every
//! S3-compatible store reads). With Object Lock configured every object is written
//! locked (mode, retain-until, legal hold). With `expected_bucket_owner`, every call
//! carries `x-amz-expected-bucket-owner`, so a bucket name now owned by another account
//! is refused by S3 instead of written to. Credentials come from the AWS default
//! chain: environment, profile, web identity (IRSA), instance metadata.
//!
//! Over 500 lines: the S3 sink is one conversation with the store: a single PutObject or
//! a multipart upload, each request with the checksum, Object Lock and expected-owner
//! headers it needs and the check of what came back. Split by request, the one sequence
//! an upload is would be read across files; the checksum computation is apart
//! (`checksum.rs`).

use super::checksum::{Running, object_checksum};
use super::settings::{ChecksumAlgorithm, LockMode, S3Settings, Sse};
use super::streamed::StreamedBody;
use super::{Lock, Stored};
use super::{ObjectInfo, Owner, PutRequest, Sink, SinkError, UPLOAD_PENDING, UploadJournal};
use crate::download::ByteStream;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream as S3Body, SdkBody};
use aws_sdk_s3::types::{
    BucketVersioningStatus, ChecksumAlgorithm as SdkChecksum, ChecksumMode, ChecksumType, CompletedMultipartUpload,
    CompletedPart, ObjectLockEnabled, ObjectLockLegalHoldStatus, ObjectLockMode, ServerSideEncryption, StorageClass,
};
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What every media object carries: content type, the metadata that attributes it to
/// its recording, encryption and storage class. A macro because PutObject and
/// CreateMultipartUpload have different builder types with the same setters.
macro_rules! object_settings {
    ($builder:expr, $sink:expr, $request:expr) => {{
        let (sse, kms) = $sink.sse();
        let builder = match $request.expected {
            Some(size) => $builder.metadata(EXPECTED_SIZE_META, size.to_string()),
            None => $builder,
        };
        let builder = builder
            .content_type($request.content_type)
            .metadata(RECORDING_ID_META, $request.recording_id)
            .metadata("conversation-id", $request.conversation_id)
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(kms)
            .set_storage_class($sink.settings.storage_class.as_deref().map(StorageClass::from));
        locked!(builder, $sink, $request.locked_from)
    }};
}

/// The Object Lock settings of a write (retention counted from `$from`, a legal hold)
/// and the name of its checksum algorithm (which tells the store which
/// `x-amz-checksum-*` header to read). PutObject and CreateMultipartUpload share the
/// setters but not a type.
macro_rules! locked {
    ($builder:expr, $sink:expr, $from:expr) => {{
        let (mode, until) = $sink.retention($from);
        $builder
            .set_object_lock_mode(mode)
            .set_object_lock_retain_until_date(until)
            .set_object_lock_legal_hold_status($sink.settings.legal_hold.then_some(ObjectLockLegalHoldStatus::On))
            .set_checksum_algorithm($sink.sdk_checksum())
    }};
}

/// Sets a checksum value (base64) in the header of its algorithm.
macro_rules! checksum_value {
    ($builder:expr, $algorithm:expr, $value:expr) => {{
        match ($algorithm, $value) {
            (ChecksumAlgorithm::Sha256, Some(v)) => $builder.checksum_sha256(v),
            (ChecksumAlgorithm::Crc64Nvme, Some(v)) => $builder.checksum_crc64_nvme(v),
            _ => $builder,
        }
    }};
}

pub struct S3Sink {
    /// Every call without a body to stream (HEAD, GET, LIST, create, complete, abort,
    /// sidecars): bounded by `operation_timeout`, so a half-open connection cannot hold
    /// a worker slot and its claim for ever.
    client: Client,
    /// Calls with a body of at most one part (UploadPart, a PutObject from memory):
    /// `operation_timeout` plus the part at [`SLOWEST_UPLOAD`].
    parts: Client,
    /// A PutObject streamed from the download (at most `single_put_max`): the same rule
    /// for its largest body.
    streamed: Client,
    settings: S3Settings,
}

/// The slowest upload a body call is given time for, in bytes a second: a call that
/// has not finished by then is taken for stuck and tried again.
const SLOWEST_UPLOAD: u64 = 256 * 1024;

/// Object metadata key naming the recording an object holds.
pub const RECORDING_ID_META: &str = "recording-id";
/// Object metadata key recording the size its upload was committed to.
pub const EXPECTED_SIZE_META: &str = "expected-size";

/// One line an operator can read: a service error as its code, message and HTTP status
/// (the SDK's own rendering adds the whole raw response); anything else (timeouts,
/// connection failures) with its cause chain.
fn failed<E>(operation: &'static str) -> impl Fn(SdkError<E, HttpResponse>) -> SinkError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    move |e| match &e {
        SdkError::ServiceError(service) => {
            let error = service.err();
            let status = e.raw_response().map(|r| r.status().as_u16());
            SinkError::store(
                operation,
                format!(
                    "{}{}{}",
                    error.code().unwrap_or("service error"),
                    error.message().map(|m| format!(": {m}")).unwrap_or_default(),
                    status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
                ),
            )
        }
        _ => SinkError::store(operation, DisplayErrorContext(&e)),
    }
}

/// A header on every request: `x-amz-expected-bucket-owner`, so S3 refuses (403) any
/// call on a bucket another account owns. An interceptor rather than the setter of
/// each operation: no call, today's or a future one, can go without it.
#[derive(Debug)]
struct ExpectedOwner(String);

impl aws_sdk_s3::config::Intercept for ExpectedOwner {
    fn name(&self) -> &'static str {
        "ExpectedBucketOwner"
    }

    fn modify_before_signing(
        &self,
        context: &mut aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut<'_>,
        _components: &aws_sdk_s3::config::RuntimeComponents,
        _cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        context
            .request_mut()
            .headers_mut()
            .insert("x-amz-expected-bucket-owner", self.0.clone());
        Ok(())
    }
}

/// S3 refused a conditional write: the key is taken.
fn is_precondition_failed<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|c| c == "PreconditionFailed")
}

impl S3Sink {
    pub async fn new(settings: S3Settings) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = &settings.region {
            loader = loader.region(Region::new(region.clone()));
        }
        let shared = loader.load().await;
        let mut builder = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(settings.force_path_style)
            // Integrity is our own SHA-256 plus the length check; the SDK's default CRC
            // trailers are not understood by every S3-compatible store.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if shared.region().is_none() {
            builder = builder.region(Region::new("us-east-1"));
        }
        if let Some(url) = &settings.endpoint_url {
            builder = builder.endpoint_url(url);
        }
        if let Some(owner) = &settings.expected_bucket_owner {
            builder = builder.interceptor(ExpectedOwner(owner.clone()));
        }
        // One connection pool (the shared config's HTTP client), three deadlines.
        let bounded = |bytes: u64| {
            let within = settings.operation_timeout + Duration::from_secs(bytes / SLOWEST_UPLOAD);
            let timeouts = TimeoutConfig::builder()
                .connect_timeout(settings.operation_timeout.min(Duration::from_secs(10)))
                .operation_timeout(within)
                .build();
            Client::from_conf(builder.clone().timeout_config(timeouts).build())
        };
        Self {
            client: bounded(0),
            parts: bounded(settings.part_size as u64),
            streamed: bounded(settings.single_put_max),
            settings,
        }
    }

    /// The next chunk of an object being read, within `operation_timeout`: the call's
    /// own deadline ends with its answer's headers, and a body that stops coming would
    /// hold the caller for ever.
    async fn next_chunk(&self, body: &mut S3Body) -> Result<Option<Bytes>, SinkError> {
        match tokio::time::timeout(self.settings.operation_timeout, body.try_next()).await {
            Ok(chunk) => chunk.map_err(|e| SinkError::store("GetObject", e)),
            Err(_) => Err(SinkError::store(
                "GetObject",
                format!(
                    "no byte of the body for {} s (operation_timeout)",
                    self.settings.operation_timeout.as_secs()
                ),
            )),
        }
    }

    fn sdk_checksum(&self) -> Option<SdkChecksum> {
        match self.settings.checksum {
            ChecksumAlgorithm::Sha256 => Some(SdkChecksum::Sha256),
            ChecksumAlgorithm::Crc64Nvme => Some(SdkChecksum::Crc64Nvme),
            ChecksumAlgorithm::Off => None,
        }
    }

    /// The retention of an object whose retention counts from `from` (the recording's
    /// start; now when unknown): until `from + retain`, at least a minute ahead (S3
    /// refuses a date in the past: a recording older than its retention is kept the
    /// least S3 allows).
    fn retention(
        &self,
        from: Option<DateTime<Utc>>,
    ) -> (Option<ObjectLockMode>, Option<aws_sdk_s3::primitives::DateTime>) {
        let Some(lock) = self.settings.lock else {
            return (None, None);
        };
        let now = Utc::now();
        let retain = chrono::Duration::from_std(lock.retain).unwrap_or(chrono::Duration::MAX);
        let until = from
            .unwrap_or(now)
            .checked_add_signed(retain)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
            .max(now + chrono::Duration::minutes(1));
        let mode = match lock.mode {
            LockMode::Governance => ObjectLockMode::Governance,
            LockMode::Compliance => ObjectLockMode::Compliance,
        };
        (
            Some(mode),
            Some(aws_sdk_s3::primitives::DateTime::from_secs(until.timestamp())),
        )
    }

    fn sse(&self) -> (Option<ServerSideEncryption>, Option<String>) {
        match &self.settings.sse {
            None => (None, None),
            Some(Sse::Aes256) => (Some(ServerSideEncryption::Aes256), None),
            Some(Sse::Kms { key_id }) => (Some(ServerSideEncryption::AwsKms), key_id.clone()),
        }
    }

    async fn put_single(&self, request: &PutRequest<'_>, body: Bytes) -> Result<Stored, SinkError> {
        let algorithm = self.settings.checksum;
        let checksum = algorithm.of(&body);
        let put = self
            .parts
            .put_object()
            .bucket(&self.settings.bucket)
            .key(request.key)
            .body(S3Body::from(body));
        let put = checksum_value!(object_settings!(put, self, request), algorithm, checksum.clone());
        match put.if_none_match("*").send().await {
            Err(e) if is_precondition_failed(&e) => Err(SinkError::Exists),
            Err(e) => Err(failed("PutObject")(e)),
            Ok(_) => Ok(Stored {
                checksum: checksum.map(|c| algorithm.label(&c)),
            }),
        }
    }

    /// One PutObject whose body is the download itself (length announced, so S3 gets a
    /// `Content-Length` and stores nothing unless every byte arrives).
    async fn put_streamed(
        &self,
        request: &PutRequest<'_>,
        body: ByteStream,
        length: u64,
        cancel: &CancellationToken,
    ) -> Result<Stored, SinkError> {
        let (body, source_error) = StreamedBody::new(body, length);
        let put = self
            .streamed
            .put_object()
            .bucket(&self.settings.bucket)
            .key(request.key)
            .content_length(length as i64)
            .body(S3Body::new(SdkBody::from_body_1_x(body)));
        let send = object_settings!(put, self, request).if_none_match("*").send();
        let result = tokio::select! {
            // Dropping the request mid-body: S3 never sees the announced length.
            _ = cancel.cancelled() => return Err(SinkError::Cancelled),
            result = send => result,
        };
        match result {
            Ok(_) => Ok(Stored { checksum: None }),
            Err(e) if is_precondition_failed(&e) => Err(SinkError::Exists),
            Err(e) => match source_error.lock().unwrap().take() {
                Some(source) => Err(SinkError::Source(source)),
                None => Err(failed("PutObject")(e)),
            },
        }
    }

    async fn put_multipart(
        &self,
        request: &PutRequest<'_>,
        reader: &mut PartReader,
        first: Vec<Bytes>,
        journal: &dyn UploadJournal,
        cancel: &CancellationToken,
    ) -> Result<Stored, SinkError> {
        // Journalled first: a crash right after the create leaves a findable upload.
        journal.opened(UPLOAD_PENDING).await?;
        let create = self
            .client
            .create_multipart_upload()
            .bucket(&self.settings.bucket)
            .key(request.key);
        // CRC64NVME is kept of the whole object; SHA-256 as a composite of the parts'.
        let kind = match self.settings.checksum {
            ChecksumAlgorithm::Crc64Nvme => Some(ChecksumType::FullObject),
            ChecksumAlgorithm::Sha256 => Some(ChecksumType::Composite),
            ChecksumAlgorithm::Off => None,
        };
        let created = object_settings!(create, self, request)
            .set_checksum_type(kind)
            .send()
            .await
            .map_err(failed("CreateMultipartUpload"))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| SinkError::store("CreateMultipartUpload", "no upload id"))?;
        let result = match journal.opened(upload_id).await {
            Ok(()) => {
                self.upload_and_complete(request.key, request.recording_id, upload_id, reader, first, cancel)
                    .await
            }
            Err(e) => Err(e),
        };
        // Locked here if the store dropped the create's lock headers (a no-op without Object Lock).
        let result = match result {
            Ok(stored) => Sink::ensure_locked(self, request.key, request.locked_from)
                .await
                .map(|()| stored),
            other => other,
        };
        if result.is_err() {
            // Best effort here; a failed abort stays journalled and is retried at start.
            if let Err(error) = self.abort(request.key, upload_id).await {
                tracing::warn!(message = "Could not abort a multipart upload; it will be retried at start.", %error);
                return result;
            }
        }
        journal.closed().await?;
        result
    }

    async fn upload_and_complete(
        &self,
        key: &str,
        recording_id: &str,
        upload_id: &str,
        reader: &mut PartReader,
        first: Vec<Bytes>,
        cancel: &CancellationToken,
    ) -> Result<Stored, SinkError> {
        let algorithm = self.settings.checksum;
        let mut in_flight: JoinSet<Result<CompletedPart, SinkError>> = JoinSet::new();
        let mut done = Vec::new();
        let mut ready = first.into_iter();
        let mut next = ready.next();
        let mut number = 0i32;
        // The whole object's checksum, fed in order as the parts are read.
        let mut whole: Option<Running> = algorithm.running();
        while let Some(part) = next.take() {
            number += 1;
            if let Some(whole) = whole.as_mut() {
                whole.update(&part);
            }
            in_flight.spawn(upload_part(
                self.parts.clone(),
                self.settings.bucket.clone(),
                key.to_owned(),
                upload_id.to_owned(),
                number,
                part,
                algorithm,
            ));
            while in_flight.len() >= self.settings.parts_in_flight {
                done.push(join_one(&mut in_flight, cancel).await?);
            }
            next = match ready.next() {
                Some(part) => Some(part),
                None => read_part(reader, cancel).await?,
            };
        }
        while !in_flight.is_empty() {
            done.push(join_one(&mut in_flight, cancel).await?);
        }
        done.sort_by_key(|p| p.part_number());
        let part_checksums: Vec<String> = done
            .iter()
            .filter_map(|p| p.checksum_sha256().or(p.checksum_crc64_nvme()).map(str::to_owned))
            .collect();
        let whole = whole.map(Running::finish);
        let stored = Stored {
            checksum: whole
                .as_deref()
                .and_then(|whole| object_checksum(algorithm, whole, &part_checksums)),
        };
        let complete = self
            .client
            .complete_multipart_upload()
            .bucket(&self.settings.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(done)).build());
        // A full-object checksum is sent whole for S3 to compare with what it assembled.
        let complete = match (algorithm, whole) {
            (ChecksumAlgorithm::Crc64Nvme, Some(whole)) => complete
                .checksum_crc64_nvme(whole)
                .checksum_type(ChecksumType::FullObject),
            _ => complete,
        };
        let result = complete.if_none_match("*").send().await;
        match result {
            Ok(_) => Ok(stored),
            Err(e) if is_precondition_failed(&e) => Err(SinkError::Exists),
            // The store answered 200 but the SDK could not read the answer (moto 5.2 sends
            // the wrong XML root). Whether the object exists decides, not the parse error.
            Err(e) if e.raw_response().is_some_and(|r| r.status().is_success()) => match self.head_owner(key).await? {
                Some(owner) if owner == Owner::Recording(recording_id.to_owned()) => {
                    tracing::warn!(
                        message = "CompleteMultipartUpload answered 200 with an unreadable body; the object is there, so the upload is complete."
                    );
                    Ok(stored)
                }
                _ => Err(failed("CompleteMultipartUpload")(e)),
            },
            Err(e) => Err(failed("CompleteMultipartUpload")(e)),
        }
    }

    /// Locks an object whose multipart upload asked for the lock at its creation, if
    /// the store did not apply it there (S3 does; moto and some S3-compatible stores keep
    /// Object Lock headers only on PutObject): the retention and the legal hold are set
    /// on the object itself (`s3:PutObjectRetention`, `s3:PutObjectLegalHold`).
    async fn lock_if_missing(&self, key: &str, from: Option<DateTime<Utc>>) -> Result<(), SinkError> {
        let Some(info) = Sink::head(self, key).await? else {
            return Err(SinkError::store(
                "HeadObject",
                format!("{key} not found after its upload"),
            ));
        };
        let (mode, until) = self.retention(from);
        if let (Some(mode), Some(until)) = (mode, until)
            && info.lock.is_none()
        {
            let retention = aws_sdk_s3::types::ObjectLockRetention::builder()
                .mode(match mode {
                    ObjectLockMode::Compliance => aws_sdk_s3::types::ObjectLockRetentionMode::Compliance,
                    _ => aws_sdk_s3::types::ObjectLockRetentionMode::Governance,
                })
                .retain_until_date(until)
                .build();
            self.client
                .put_object_retention()
                .bucket(&self.settings.bucket)
                .key(key)
                .retention(retention)
                .send()
                .await
                .map_err(failed("PutObjectRetention"))?;
        }
        if self.settings.legal_hold && !info.legal_hold {
            self.client
                .put_object_legal_hold()
                .bucket(&self.settings.bucket)
                .key(key)
                .legal_hold(
                    aws_sdk_s3::types::ObjectLockLegalHold::builder()
                        .status(ObjectLockLegalHoldStatus::On)
                        .build(),
                )
                .send()
                .await
                .map_err(failed("PutObjectLegalHold"))?;
        }
        Ok(())
    }

    async fn head_owner(&self, key: &str) -> Result<Option<Owner>, SinkError> {
        Ok(Sink::head(self, key).await?.map(|info| info.owner))
    }

    /// Aborts every multipart upload open at exactly `key`.
    async fn abort_all_at(&self, key: &str) -> Result<(), SinkError> {
        let answer = self
            .client
            .list_multipart_uploads()
            .bucket(&self.settings.bucket)
            .prefix(key)
            .send()
            .await
            .map_err(failed("ListMultipartUploads"))?;
        for upload in answer.uploads() {
            if let (Some(k), Some(id)) = (upload.key(), upload.upload_id())
                && k == key
            {
                self.abort(key, id).await?;
            }
        }
        Ok(())
    }

    async fn abort(&self, key: &str, upload_id: &str) -> Result<(), SinkError> {
        if upload_id == UPLOAD_PENDING {
            return Box::pin(self.abort_all_at(key)).await;
        }
        let result = self
            .client
            .abort_multipart_upload()
            .bucket(&self.settings.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
        match result {
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_upload()) => Ok(()),
            other => other.map(|_| ()).map_err(failed("AbortMultipartUpload")),
        }
    }
}

async fn upload_part(
    client: Client,
    bucket: String,
    key: String,
    upload_id: String,
    number: i32,
    body: Bytes,
    algorithm: ChecksumAlgorithm,
) -> Result<CompletedPart, SinkError> {
    let length = body.len() as i64;
    let checksum = algorithm.of(&body);
    let upload = client
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .part_number(number)
        .content_length(length)
        .body(S3Body::from(body));
    let upload = match algorithm {
        ChecksumAlgorithm::Sha256 => upload.checksum_algorithm(SdkChecksum::Sha256),
        ChecksumAlgorithm::Crc64Nvme => upload.checksum_algorithm(SdkChecksum::Crc64Nvme),
        ChecksumAlgorithm::Off => upload,
    };
    let answer = checksum_value!(upload, algorithm, checksum.clone())
        .send()
        .await
        .map_err(failed("UploadPart"))?;
    let part = CompletedPart::builder()
        .part_number(number)
        .set_e_tag(answer.e_tag().map(str::to_owned));
    Ok(checksum_value!(part, algorithm, checksum).build())
}

async fn join_one(
    set: &mut JoinSet<Result<CompletedPart, SinkError>>,
    cancel: &CancellationToken,
) -> Result<CompletedPart, SinkError> {
    let joined = tokio::select! {
        _ = cancel.cancelled() => return Err(SinkError::Cancelled),
        joined = set.join_next() => joined,
    };
    match joined {
        Some(Ok(part)) => {
            // A part stored is the upload moving (liveness), however long the object.
            crate::progress::tick();
            part
        }
        Some(Err(e)) => Err(SinkError::store("UploadPart", e)),
        None => Err(SinkError::store("UploadPart", "no part in flight")),
    }
}

/// The next part, unless shutdown comes first.
async fn read_part(reader: &mut PartReader, cancel: &CancellationToken) -> Result<Option<Bytes>, SinkError> {
    tokio::select! {
        _ = cancel.cancelled() => Err(SinkError::Cancelled),
        part = reader.next_part() => part,
    }
}

/// Cuts a byte stream into parts of exactly `part_size` (the last may be shorter).
///
/// Each part is allocated once at its exact size and filled; a chunk that straddles two
/// parts is split (a cheap slice of the same buffer). A growing buffer would double its
/// capacity past the part size and pin that whole allocation while the part uploads.
struct PartReader {
    body: ByteStream,
    carry: Option<Bytes>,
    part_size: usize,
    ended: bool,
}

impl PartReader {
    fn new(body: ByteStream, part_size: usize) -> Self {
        Self {
            body,
            carry: None,
            part_size,
            ended: false,
        }
    }

    /// The next part; `None` once the body is exhausted.
    async fn next_part(&mut self) -> Result<Option<Bytes>, SinkError> {
        let mut part = BytesMut::with_capacity(self.part_size);
        while part.len() < self.part_size {
            let chunk = match self.carry.take() {
                Some(chunk) => chunk,
                None if self.ended => break,
                None => match self.body.next().await {
                    Some(Ok(chunk)) => chunk,
                    Some(Err(e)) => return Err(SinkError::Source(e)),
                    None => {
                        self.ended = true;
                        break;
                    }
                },
            };
            let room = self.part_size - part.len();
            if chunk.len() > room {
                part.extend_from_slice(&chunk[..room]);
                self.carry = Some(chunk.slice(room..));
            } else {
                part.extend_from_slice(&chunk);
            }
        }
        Ok((!part.is_empty()).then(|| part.freeze()))
    }
}

impl Sink for S3Sink {
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.settings.bucket, self.settings.prefix)
    }

    fn prefix(&self) -> &str {
        &self.settings.prefix
    }

    fn head<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<ObjectInfo>, SinkError>> {
        Box::pin(async move {
            match self
                .client
                .head_object()
                .bucket(&self.settings.bucket)
                .key(key)
                .checksum_mode(ChecksumMode::Enabled)
                .send()
                .await
            {
                Ok(head) => {
                    let algorithm = self.settings.checksum;
                    let checksum = match algorithm {
                        ChecksumAlgorithm::Sha256 => head.checksum_sha256(),
                        ChecksumAlgorithm::Crc64Nvme => head.checksum_crc64_nvme(),
                        ChecksumAlgorithm::Off => None,
                    }
                    .map(|value| algorithm.label(value));
                    let lock = match (head.object_lock_mode(), head.object_lock_retain_until_date()) {
                        (Some(mode), Some(until)) => Some(Lock {
                            mode: mode.as_str().to_owned(),
                            until: DateTime::<Utc>::from_timestamp(until.secs(), 0).unwrap_or_default(),
                        }),
                        _ => None,
                    };
                    let legal_hold = head.object_lock_legal_hold_status() == Some(&ObjectLockLegalHoldStatus::On);
                    let owner = match head.metadata().and_then(|m| m.get(RECORDING_ID_META)) {
                        Some(id) => Owner::Recording(id.clone()),
                        None => Owner::Foreign,
                    };
                    let recorded_size = head
                        .metadata()
                        .and_then(|m| m.get(EXPECTED_SIZE_META))
                        .and_then(|v| v.parse().ok());
                    Ok(Some(ObjectInfo {
                        size: head.content_length().unwrap_or(0).max(0) as u64,
                        owner,
                        recorded_size,
                        checksum,
                        lock,
                        legal_hold,
                    }))
                }
                Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
                Err(e) => Err(failed("HeadObject")(e)),
            }
        })
    }

    fn put_stream<'a>(
        &'a self,
        request: PutRequest<'a>,
        body: ByteStream,
        journal: &'a dyn UploadJournal,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<Stored, SinkError>> {
        Box::pin(async move {
            if let Some(length) = request.length
                && length > self.settings.part_size as u64
                && length <= self.settings.single_put_max
                && self.settings.checksum == ChecksumAlgorithm::Off
            {
                return self.put_streamed(&request, body, length, cancel).await;
            }
            let mut reader = PartReader::new(body, self.settings.part_size);
            let first = read_part(&mut reader, cancel).await?.unwrap_or_default();
            // At or under one part: one PutObject. The second read also surfaces a final
            // body error (truncation) before anything is written.
            let Some(second) = read_part(&mut reader, cancel).await? else {
                return self.put_single(&request, first).await;
            };
            self.put_multipart(&request, &mut reader, vec![first, second], journal, cancel)
                .await
        })
    }

    fn put_bytes<'a>(
        &'a self,
        key: &'a str,
        body: Bytes,
        content_type: &'a str,
        owner: Option<&'a str>,
        locked_from: Option<DateTime<Utc>>,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let (sse, kms) = self.sse();
            let algorithm = self.settings.checksum;
            let checksum = algorithm.of(&body);
            let put = |fresh_only: bool| {
                let put = self
                    .parts
                    .put_object()
                    .bucket(&self.settings.bucket)
                    .key(key)
                    .body(S3Body::from(body.clone()))
                    .content_type(content_type)
                    .set_server_side_encryption(sse.clone())
                    .set_ssekms_key_id(kms.clone());
                let put = checksum_value!(locked!(put, self, locked_from), algorithm, checksum.clone());
                let put = match owner {
                    Some(id) => put.metadata(RECORDING_ID_META, id),
                    None => put,
                };
                if fresh_only { put.if_none_match("*") } else { put }
            };
            let Some(id) = owner else {
                return put(false).send().await.map(|_| ()).map_err(failed("PutObject"));
            };
            // Written where nothing is; over an object only if it is this recording's.
            match put(true).send().await {
                Ok(_) => Ok(()),
                Err(e) if is_precondition_failed(&e) => {
                    let ours = match self.head_owner(key).await? {
                        Some(Owner::Recording(held)) => held == id,
                        // Written before sidecars carried the metadata: ours by content.
                        Some(_) => Sink::get_bytes(self, key, 1024 * 1024)
                            .await?
                            .is_some_and(|bytes| super::is_own_sidecar(&bytes, id)),
                        None => false,
                    };
                    if !ours {
                        return Err(SinkError::Exists);
                    }
                    put(false).send().await.map(|_| ()).map_err(failed("PutObject"))
                }
                Err(e) => Err(failed("PutObject")(e)),
            }
        })
    }

    fn read_checksum<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(u64, String), SinkError>> {
        Box::pin(async move {
            let object = self
                .client
                .get_object()
                .bucket(&self.settings.bucket)
                .key(key)
                .send()
                .await
                .map_err(failed("GetObject"))?;
            let mut body = object.body;
            let (mut hasher, mut size) = (Sha256::new(), 0u64);
            while let Some(chunk) = self.next_chunk(&mut body).await? {
                size += chunk.len() as u64;
                hasher.update(&chunk);
            }
            Ok((size, crate::hex::hex(&hasher.finalize())))
        })
    }

    fn get_bytes<'a>(&'a self, key: &'a str, max: u64) -> BoxFuture<'a, Result<Option<Bytes>, SinkError>> {
        Box::pin(async move {
            let object = match self
                .client
                .get_object()
                .bucket(&self.settings.bucket)
                .key(key)
                .send()
                .await
            {
                Ok(object) => object,
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
                Err(e) => return Err(failed("GetObject")(e)),
            };
            if object.content_length().unwrap_or(0).max(0) as u64 > max {
                return Err(SinkError::store(
                    "GetObject",
                    format!("{key} is larger than {max} bytes"),
                ));
            }
            let mut body = object.body;
            let mut all = Vec::new();
            while let Some(chunk) = self.next_chunk(&mut body).await? {
                all.extend_from_slice(&chunk);
                if all.len() as u64 > max {
                    return Err(SinkError::store(
                        "GetObject",
                        format!("{key} is larger than {max} bytes"),
                    ));
                }
            }
            Ok(Some(Bytes::from(all)))
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<(String, u64)>, SinkError>> {
        Box::pin(async move {
            let mut all = Vec::new();
            let mut pages = self
                .client
                .list_objects_v2()
                .bucket(&self.settings.bucket)
                .prefix(prefix)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(failed("ListObjectsV2"))?;
                for object in page.contents() {
                    if let Some(key) = object.key() {
                        all.push((key.to_owned(), object.size().unwrap_or(0).max(0) as u64));
                    }
                }
            }
            Ok(all)
        })
    }

    fn abort_upload<'a>(&'a self, key: &'a str, upload_id: &'a str) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(self.abort(key, upload_id))
    }

    fn check(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            self.client
                .head_bucket()
                .bucket(&self.settings.bucket)
                .send()
                .await
                .map(|_| ())
                .map_err(failed("HeadBucket"))
        })
    }

    fn ensure_locked<'a>(&'a self, key: &'a str, from: Option<DateTime<Utc>>) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            if !self.settings.needs_object_lock() {
                return Ok(());
            }
            self.lock_if_missing(key, from).await
        })
    }

    fn check_bucket(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            let bucket = &self.settings.bucket;
            if let Some(owner) = &self.settings.expected_bucket_owner {
                match self.client.head_bucket().bucket(bucket).send().await {
                    Ok(_) => {}
                    Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 403) => {
                        return Err(SinkError::Refused(format!(
                            "s3.expected_bucket_owner: bucket `{bucket}` is not owned by account {owner} \
                             (S3 answered 403 to a call naming that owner; or these credentials may not read it)"
                        )));
                    }
                    Err(e) => return Err(failed("HeadBucket")(e)),
                }
            }
            if !self.settings.needs_object_lock() {
                return Ok(());
            }
            let key = if self.settings.lock.is_some() {
                "s3.object_lock_mode"
            } else {
                "s3.legal_hold"
            };
            let versioning = self
                .client
                .get_bucket_versioning()
                .bucket(bucket)
                .send()
                .await
                .map_err(failed("GetBucketVersioning"))?;
            if versioning.status() != Some(&BucketVersioningStatus::Enabled) {
                return Err(SinkError::Refused(format!(
                    "{key}: bucket `{bucket}` does not have versioning enabled, which Object Lock needs"
                )));
            }
            let lock = match self.client.get_object_lock_configuration().bucket(bucket).send().await {
                Ok(answer) => answer
                    .object_lock_configuration()
                    .and_then(|c| c.object_lock_enabled())
                    .cloned(),
                Err(e) if e.code() == Some("ObjectLockConfigurationNotFoundError") => None,
                Err(e) => return Err(failed("GetObjectLockConfiguration")(e)),
            };
            if lock != Some(ObjectLockEnabled::Enabled) {
                return Err(SinkError::Refused(format!(
                    "{key}: bucket `{bucket}` does not have Object Lock enabled (it can only be \
                     turned on for a versioned bucket; objects would be written unlocked)"
                )));
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn parts_are_exactly_part_sized_and_allocated_once() {
        let chunks: Vec<Result<Bytes, crate::download::DownloadError>> =
            (0..10u8).map(|i| Ok(Bytes::from(vec![i; 700]))).collect();
        let mut reader = PartReader::new(Box::pin(futures_util::stream::iter(chunks)), 1000);
        let mut sizes = Vec::new();
        let mut all = Vec::new();
        while let Some(part) = reader.next_part().await.unwrap() {
            sizes.push(part.len());
            all.extend_from_slice(&part);
        }
        assert_eq!(sizes, [1000; 7]);
        assert_eq!(all.len(), 7000);
        assert!(all[..700].iter().all(|b| *b == 0) && all[700..1400].iter().all(|b| *b == 1));
    }
}
