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
}

/// Server-side encryption.
#[derive(Debug, Clone, PartialEq)]
pub enum Sse {
    Aes256,
    Kms { key_id: Option<String> },
}

/// The smallest part S3 accepts (except the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
