//! A download's body as the sink receives it, and how a body can fail.
//!
//! A leaf: the Genesys media client produces these streams, the sink consumes them,
//! and neither needs the other's types (the sink never sees an API error).

use bytes::Bytes;
use futures_util::Stream;
use std::pin::Pin;

/// The body of a download, chunk by chunk.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, DownloadError>> + Send>>;

/// Why a body did not arrive whole. Every case is worth another attempt later.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DownloadError {
    /// The connection broke (reset, read timeout); the text has no URL.
    #[error("{0}")]
    Transport(String),

    /// The body ended cleanly but short of (or ran past) its announced length.
    #[error("body has {received} bytes where {expected} were announced")]
    LengthMismatch { received: u64, expected: u64 },

    /// The host sent fewer bytes in a window than the slowest rate accepted.
    #[error("{received} bytes in the last {window_s} s, below the minimum of {minimum} bytes/s")]
    TooSlow { received: u64, window_s: u64, minimum: u64 },
}
