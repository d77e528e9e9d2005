//! What the S3 sink is told, as `config` validates it into the sink's own types.

#[derive(Debug, Clone)]
pub struct S3Settings {
    pub bucket: String,
    pub prefix: String,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub force_path_style: bool,
    pub sse: Option<Sse>,
    pub storage_class: Option<String>,
    pub part_size: usize,
    pub parts_in_flight: usize,
    /// A recording whose length is announced, larger than one part and at most this,
    /// streams as one PutObject without part buffers; above it, multipart.
    pub single_put_max: u64,
    /// Deadline of a call without a body to stream; body calls get it plus their
    /// largest body at the slowest upload rate allowed.
    pub operation_timeout: std::time::Duration,
    /// The additional checksum every object is written with (S3 checks it on receipt
    /// and refuses a body that does not match).
    pub checksum: ChecksumAlgorithm,
    /// Write-once retention of every object written, when the bucket has Object Lock.
    pub lock: Option<ObjectLock>,
    /// A legal hold on every object written.
    pub legal_hold: bool,
    /// The account that must own the bucket (`x-amz-expected-bucket-owner` on every call).
    pub expected_bucket_owner: Option<String>,
}

impl S3Settings {
    /// Whether anything asks the bucket for Object Lock (retention or legal hold).
    pub fn needs_object_lock(&self) -> bool {
        self.lock.is_some() || self.legal_hold
    }
}

/// The S3 additional checksum written with every object.
///
/// SHA-256 by default: the hash the archiver computes anyway (so a single-file object's
/// S3 checksum is the sidecar's SHA-256, one value for an auditor to compare) and a
/// cryptographic one; AWS S3, MinIO, Ceph RGW and moto accept it. For a multipart upload
/// S3 keeps it as a composite (the SHA-256 of the parts' SHA-256s, `-N`), each part
/// verified on receipt. CRC64NVME is a full-object checksum (independent of the part
/// size, AWS S3's own default) for stores that support it. `Off` for stores that keep
/// no additional checksums (Garage, older MinIO), which then verify nothing themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumAlgorithm {
    Sha256,
    Crc64Nvme,
    Off,
}

impl ChecksumAlgorithm {
    /// The name S3 gives it (`x-amz-checksum-…`, `ChecksumAlgorithm`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Sha256 => "SHA256",
            ChecksumAlgorithm::Crc64Nvme => "CRC64NVME",
            ChecksumAlgorithm::Off => "none",
        }
    }
}

/// Object Lock retention (WORM): every object is locked in `mode` until the
/// recording's start plus `retain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectLock {
    pub mode: LockMode,
    pub retain: std::time::Duration,
}

/// GOVERNANCE: users with `s3:BypassGovernanceRetention` may still delete; COMPLIANCE:
/// nobody, the root account included, until the date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    Governance,
    Compliance,
}

impl LockMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }
}

/// Server-side encryption.
#[derive(Debug, Clone, PartialEq)]
pub enum Sse {
    Aes256,
    Kms { key_id: Option<String> },
}

/// The smallest part S3 accepts (except the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
