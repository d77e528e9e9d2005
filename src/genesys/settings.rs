//! What the Genesys client needs to know, as `config` validates it: the client owns
//! the type, config builds it (the arrow points from config down to here).

use super::media_policy::MediaPolicy;
use super::model::FormatId;
use reqwest::Url;
use secrecy::SecretString;
use std::time::Duration;

/// How to reach and authenticate against Genesys Cloud.
#[derive(Debug, Clone)]
pub struct GenesysSettings {
    pub api_url: Url,
    pub login_url: Url,
    pub client_id: String,
    /// Wrapped so that `Debug` and logs show `[REDACTED]`.
    pub client_secret: SecretString,
    pub recording_path: RecordingPath,
    pub recordings_path: ConversationPath,
    /// `maxWaitMs` of the listing call: the platform finishes transcoding (up to this
    /// long) before it answers, instead of a follow-up call per transcoding recording.
    /// The worker slot is held meanwhile.
    pub list_max_wait: Duration,
    pub format_id: FormatId,
    /// Where download URLs may point; checked before every request and redirect.
    pub media: MediaPolicy,
    /// The proxy media downloads go through, only when configured: the environment's
    /// `HTTP(S)_PROXY` is never used for them (a public proxy would bypass the address
    /// check; a private one would make every download refused). Through a proxy the
    /// address check sees the proxy, not the media host.
    pub media_proxy: Option<Url>,
    pub request_timeout: Duration,
    pub max_response_bytes: u64,
}

/// The validated `recording_path` template.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingPath(String);

impl RecordingPath {
    pub const DEFAULT: &'static str = "/api/v2/conversations/{conversationId}/recordings/{recordingId}";

    pub fn parse(template: &str) -> Result<Self, String> {
        if !template.starts_with('/') {
            return Err("must start with `/`".into());
        }
        for placeholder in ["{conversationId}", "{recordingId}"] {
            if template.matches(placeholder).count() != 1 {
                return Err(format!("must contain {placeholder} exactly once"));
            }
        }
        if template.contains('?') || template.contains('#') {
            return Err("must be a path without query or fragment".into());
        }
        Ok(Self(template.to_owned()))
    }

    /// The path for one recording. Ids are percent-encoded as one path segment each,
    /// so an id can never add segments or climb with `..`.
    pub fn render(&self, conversation_id: &str, recording_id: &str) -> String {
        self.0
            .replace("{conversationId}", &encode_segment(conversation_id))
            .replace("{recordingId}", &encode_segment(recording_id))
    }
}

/// The validated `recordings_path` template (one conversation's recordings).
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationPath(String);

impl ConversationPath {
    pub const DEFAULT: &'static str = "/api/v2/conversations/{conversationId}/recordings";

    pub fn parse(template: &str) -> Result<Self, String> {
        if !template.starts_with('/') {
            return Err("must start with `/`".into());
        }
        if template.matches("{conversationId}").count() != 1 {
            return Err("must contain {conversationId} exactly once".into());
        }
        if template.contains('?') || template.contains('#') || template.contains("{recordingId}") {
            return Err("must be a path without query, fragment or {recordingId}".into());
        }
        Ok(Self(template.to_owned()))
    }

    pub fn render(&self, conversation_id: &str) -> String {
        self.0.replace("{conversationId}", &encode_segment(conversation_id))
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters; `.` and `..` are
/// encoded too so they cannot act as path navigation.
pub fn encode_segment(segment: &str) -> String {
    if segment == "." || segment == ".." {
        return segment.replace('.', "%2E");
    }
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
