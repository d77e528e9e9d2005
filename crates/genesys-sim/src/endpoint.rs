//! The platform's API endpoint families, as the simulator limits and counts them.
//!
//! Written from `docs/platform.md` (rate limits: one budget per OAuth token shared by
//! every call that carries it, and a limit of each endpoint on top), not from the
//! archiver's client: the names are the ones operators and statistics use, and a
//! caller maps its own endpoints onto them by name ([`Endpoint::from_name`]).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// `POST /oauth/token` on the login host.
    Token,
    /// `POST /api/v2/analytics/conversations/details/query`.
    Analytics,
    /// `GET /api/v2/conversations/{id}/recordingmetadata`.
    RecordingMetadata,
    /// `GET /api/v2/conversations/{id}/recordings/{recordingId}`.
    Recording,
    /// `GET /api/v2/conversations/{id}/recordings`.
    ConversationRecordings,
    /// `/api/v2/analytics/conversations/details/jobs...`.
    AnalyticsJobs,
    /// `GET /api/v2/organizations/limits/namespaces/platform.api`.
    Limits,
    /// `GET /api/v2/organizations/me`.
    Organization,
    /// `PUT /api/v2/conversations/{id}/recordings/{recordingId}` (retention).
    RecordingRetention,
}

impl Endpoint {
    pub const ALL: [Endpoint; 9] = [
        Endpoint::Token,
        Endpoint::Analytics,
        Endpoint::RecordingMetadata,
        Endpoint::Recording,
        Endpoint::ConversationRecordings,
        Endpoint::AnalyticsJobs,
        Endpoint::Limits,
        Endpoint::Organization,
        Endpoint::RecordingRetention,
    ];

    /// The family's name in statistics (`GET /sim/stats`) and limits (`recording=80`).
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Token => "token",
            Endpoint::Analytics => "analytics",
            Endpoint::RecordingMetadata => "recordingmetadata",
            Endpoint::Recording => "recording",
            Endpoint::ConversationRecordings => "conversation_recordings",
            Endpoint::AnalyticsJobs => "analytics_jobs",
            Endpoint::Limits => "limits",
            Endpoint::Organization => "organization",
            Endpoint::RecordingRetention => "recording_retention",
        }
    }

    /// The family named `name` ([`Endpoint::as_str`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == name)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::from_name(s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|e| e.as_str()).collect();
            format!("unknown endpoint {s:?} (one of {})", names.join(", "))
        })
    }
}
