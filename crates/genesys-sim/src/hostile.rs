//! Hostile answers: what a broken or compromised API could send.
//!
//! With `SimConfig::hostile`, the simulated org gains one conversation per case below,
//! besides its normal ones. The archiver must park each with a reason, archive the
//! normal ones, and never crash, write outside its layout, or fetch from a host it was
//! not told to trust.

/// A conversation whose recordingmetadata answer is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadListing {
    /// The JSON stops half-way.
    MalformedJson,
    /// `id` is a number, `fileState` an object.
    WrongTypes,
    /// A recording without `id`.
    MissingId,
    /// A valid but enormous answer (beyond any cap a client should read).
    HugeBody,
}

/// A listed recording that must not be archived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRecording {
    /// An id with `/` and `..` in it (path traversal into keys or files).
    SlashId,
    /// The id `..`.
    DotDotId,
    /// An id with control characters (log and key injection) and a NUL byte, which
    /// PostgreSQL refuses in `TEXT`.
    ControlId,
    /// An id of 8,000 bytes: beyond any key a btree index page takes.
    HugeId,
    /// A `fileState` the API documents nowhere, with a NUL byte in it.
    UnknownFileState,
    /// AVAILABLE, but `mediaUris` is empty.
    EmptyMediaUris,
    /// The download URL points at instance metadata.
    ForeignHost,
    /// The download URL is on the media host, which redirects to instance metadata.
    RedirectElsewhere,
    /// The download URL is plain `http` to a non-loopback host.
    PlainHttp,
}

impl BadListing {
    pub const ALL: [BadListing; 4] = [
        BadListing::MalformedJson,
        BadListing::WrongTypes,
        BadListing::MissingId,
        BadListing::HugeBody,
    ];

    /// The body of the recordingmetadata answer.
    pub fn body(self, conversation_id: &str) -> Vec<u8> {
        match self {
            BadListing::MalformedJson => format!("[{{\"id\": \"{conversation_id}-r\", \"media\": \"scr").into_bytes(),
            BadListing::WrongTypes => {
                br#"[{"id": 42, "media": "screen", "fileState": {"state": "AVAILABLE"}}]"#.to_vec()
            }
            BadListing::MissingId => br#"[{"media": "screen", "fileState": "AVAILABLE"}]"#.to_vec(),
            BadListing::HugeBody => {
                // 48 MiB of one long, valid string: only a cap stops it.
                let mut body = b"[{\"id\": \"x\", \"media\": \"screen\", \"name\": \"".to_vec();
                body.resize(body.len() + 48 * 1024 * 1024, b'a');
                body.extend_from_slice(b"\"}]");
                body
            }
        }
    }
}

impl BadRecording {
    pub const ALL: [BadRecording; 9] = [
        BadRecording::SlashId,
        BadRecording::DotDotId,
        BadRecording::ControlId,
        BadRecording::HugeId,
        BadRecording::UnknownFileState,
        BadRecording::EmptyMediaUris,
        BadRecording::ForeignHost,
        BadRecording::RedirectElsewhere,
        BadRecording::PlainHttp,
    ];

    /// The recording's id: hostile where the id is the attack, else `normal`.
    pub fn id(self, normal: String) -> String {
        match self {
            BadRecording::SlashId => format!("{normal}/../../../etc/passwd"),
            BadRecording::DotDotId => "..".into(),
            BadRecording::ControlId => format!("{normal}\u{1b}[31m\n\r\u{0}"),
            BadRecording::HugeId => format!("{normal}{}", "9".repeat(8000)),
            _ => normal,
        }
    }
}

/// The conversation id of the hostile case whose analytics row names an unsafe
/// conversation id (a NUL byte and an escape sequence after a normal id).
pub fn unsafe_conversation_id(normal: &str) -> String {
    format!("{normal}\u{0}\u{1b}[2J")
}

/// Where instance metadata lives on every cloud: the classic SSRF target.
pub const METADATA_URL: &str = "https://169.254.169.254/latest/meta-data/iam/security-credentials/";
