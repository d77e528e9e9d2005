//! The rate-limited API endpoints the archiver calls.
//!
//! Each has its own budget on the platform, on top of the per-token budget that all of
//! them share. Media downloads are not here: they go to pre-signed URLs on other hosts
//! and do not spend the API budget.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// `POST {login}/oauth/token`.
    Token,
    /// `POST /api/v2/analytics/conversations/details/query`.
    Analytics,
    /// `GET /api/v2/conversations/{id}/recordingmetadata`.
    RecordingMetadata,
    /// `GET` of one recording (the configurable `recording_path`).
    Recording,
    /// `GET /api/v2/conversations/{id}/recordings`: every recording of a conversation,
    /// with download URLs for the ready ones (the configurable `recordings_path`).
    ConversationRecordings,
    /// The asynchronous analytics jobs API (`/api/v2/analytics/conversations/details/jobs...`).
    AnalyticsJobs,
    /// `GET /api/v2/organizations/limits/namespaces/platform.api`: the org's real limits.
    Limits,
    /// `GET /api/v2/organizations/me`: the org's id and name (no permission needed); the
    /// `{orgId}` of Genesys's own export layout.
    Organization,
    /// `PUT` of one recording (the `recording_path`): its retention update, which
    /// sets the `deleteDate` of a recording once its copy is proven (the retention
    /// hand-off).
    RecordingRetention,
}

impl Endpoint {
    pub const COUNT: usize = 9;

    pub const ALL: [Endpoint; Self::COUNT] = [
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

    /// The name used in configuration, logs, metrics and simulator statistics.
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

    /// The endpoint's place in [`Endpoint::ALL`]: per-endpoint state is kept in arrays
    /// in that order.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether a call carries the bearer token and so spends the per-token budget.
    pub fn uses_token_budget(self) -> bool {
        self != Endpoint::Token
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_indexes_its_own_place_in_all() {
        for (i, endpoint) in Endpoint::ALL.into_iter().enumerate() {
            assert_eq!(endpoint.index(), i, "{endpoint}");
        }
    }
}
