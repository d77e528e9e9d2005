//! Payloads of the Genesys Cloud API, as the archiver reads and writes them.
//!
//! Unknown fields are ignored (the platform adds fields often); fields the archiver
//! needs are required, and a payload without one fails with a [`super::error::ApiError::Payload`]
//! that names the field's path. Enumerations keep values they do not know
//! (`Other(..)`), so a new platform value parks a recording with a reason instead of
//! failing a whole page.
//!
//! Over 500 lines: the API's payloads, one type per answer, each with the deserializer
//! that makes untrusted values safe beside it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Body of `POST /api/v2/analytics/conversations/details/query`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsQuery {
    /// `start/end` in ISO-8601, matching conversations that started in it.
    pub interval: String,
    pub order: &'static str,
    pub order_by: &'static str,
    pub paging: Paging,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub segment_filters: Vec<SegmentFilter>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conversation_filters: Vec<SegmentFilter>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Paging {
    pub page_size: u32,
    pub page_number: u32,
}

/// A segment or conversation filter in the API's own shape: its predicates combined by
/// `type` (`and`/`or`); the filters of a list must all hold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SegmentFilter {
    #[serde(rename = "type")]
    pub kind: String,
    pub predicates: Vec<Predicate>,
}

/// One predicate: `dimension` `operator` `value` (operator `matches` when left out).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Predicate {
    /// `dimension` (the only predicate type the archiver sends); optional on input.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub dimension: String,
    /// `matches` (default), `exists` or `notExists`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl Predicate {
    pub fn matches(dimension: &str, value: &str) -> Self {
        Self {
            kind: Some("dimension".into()),
            dimension: dimension.into(),
            operator: Some("matches".into()),
            value: Some(value.into()),
        }
    }

    /// Whether the predicate holds for a row whose `dimension` has `value` (`None`: absent).
    pub fn holds(&self, value: Option<&str>) -> bool {
        match self.operator.as_deref().unwrap_or("matches") {
            "exists" => value.is_some(),
            "notExists" => value.is_none(),
            _ => value.is_some() && value == self.value.as_deref(),
        }
    }
}

impl SegmentFilter {
    /// The default discovery filter: conversations in which a *screen* recording was
    /// started. (`recording` is the audio flag; filtering on it misses every screen
    /// recording of a conversation without audio recording.)
    pub fn screen_recorded() -> Vec<SegmentFilter> {
        vec![SegmentFilter {
            kind: "or".into(),
            predicates: vec![Predicate::matches("screenRecording", "true")],
        }]
    }

    /// Whether the filter holds, `lookup` giving a dimension's values in the row (a
    /// segment dimension can hold several values across segments; any one may match).
    pub fn holds(&self, lookup: &dyn Fn(&str) -> Vec<String>) -> bool {
        let one = |p: &Predicate| {
            let values = lookup(&p.dimension);
            if values.is_empty() {
                p.holds(None)
            } else {
                values.iter().any(|v| p.holds(Some(v)))
            }
        };
        if self.kind.eq_ignore_ascii_case("and") {
            self.predicates.iter().all(one)
        } else {
            self.predicates.iter().any(one)
        }
    }
}

impl AnalyticsQuery {
    /// Largest page the platform serves.
    pub const MAX_PAGE_SIZE: u32 = 100;

    /// Conversations started in `[start, end)`, oldest first, narrowed by `filters`
    /// (by default to conversations with a screen recording) so that no per-conversation
    /// call is spent on a conversation without one.
    pub fn started_between(
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        page_number: u32,
        page_size: u32,
        filters: &[SegmentFilter],
    ) -> Self {
        Self {
            interval: format_interval(start, end),
            order: "asc",
            order_by: "conversationStart",
            paging: Paging {
                page_size: page_size.clamp(1, Self::MAX_PAGE_SIZE),
                page_number,
            },
            segment_filters: filters.to_vec(),
            conversation_filters: Vec::new(),
        }
    }

    /// The current state of the conversations `ids`, whose starts all lie in
    /// `[start, end)`: one call answers many (an `or` of `conversationId` predicates).
    pub fn conversations(ids: &[String], start: DateTime<Utc>, end: DateTime<Utc>, page_number: u32) -> Self {
        Self {
            interval: format_interval(start, end),
            order: "asc",
            order_by: "conversationStart",
            paging: Paging {
                page_size: Self::MAX_PAGE_SIZE,
                page_number,
            },
            segment_filters: Vec::new(),
            conversation_filters: vec![SegmentFilter {
                kind: "or".into(),
                predicates: ids.iter().map(|id| Predicate::matches("conversationId", id)).collect(),
            }],
        }
    }
}

/// Formats an analytics interval the way the platform writes it (millisecond precision, `Z`).
pub fn format_interval(start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    let f = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    format!("{}/{}", f(start), f(end))
}

/// One page of the analytics answer. Rows are kept as JSON and read one by one
/// ([`ConversationSummary::from_row`]), so one malformed row costs that conversation,
/// not the page.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsPage {
    /// Missing or empty ends the paging.
    #[serde(default)]
    pub conversations: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_hits: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConversationSummary {
    pub conversation_id: String,
    pub conversation_start: DateTime<Utc>,
    /// Absent while the conversation is still going on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_end: Option<DateTime<Utc>>,
}

/// A row that cannot be read: its conversation id when that much is readable.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRow {
    pub conversation_id: Option<String>,
    pub error: String,
}

impl ConversationSummary {
    pub fn from_row(row: &serde_json::Value) -> Result<Self, BadRow> {
        serde_path_to_error::deserialize(row).map_err(|e| BadRow {
            conversation_id: row.get("conversationId").and_then(|v| v.as_str()).map(str::to_owned),
            error: format!("invalid analytics row at {}: {}", e.path(), e.inner()),
        })
    }
}

/// Body of `POST /api/v2/analytics/conversations/details/jobs` (AsyncConversationQuery):
/// conversations with *activity* in `interval`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AsyncQuery {
    pub interval: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub segment_filters: Vec<SegmentFilter>,
    pub order: &'static str,
    pub order_by: &'static str,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobCreated {
    pub job_id: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    /// QUEUED, PENDING, FULFILLED, FAILED, CANCELLED or EXPIRED.
    pub state: String,
    #[serde(default)]
    pub error_message: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobResults {
    #[serde(default)]
    pub conversations: Vec<serde_json::Value>,
    /// Absent on the last page.
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub data_availability_date: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DataAvailability {
    pub data_availability_date: DateTime<Utc>,
}

/// `GET /api/v2/organizations/me`: who the client's org is. Only `id` is relied on
/// (the `{orgId}` key placeholder); the name is for logs.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Organization {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// `GET /api/v2/organizations/limits/namespaces/{namespace}`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct LimitEntities {
    #[serde(default)]
    pub entities: Vec<LimitEntity>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct LimitEntity {
    pub key: String,
    #[serde(default)]
    pub namespace: Option<String>,
    pub value: f64,
}

/// One entry of `GET /api/v2/conversations/{id}/recordingmetadata`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecordingMetadata {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<DateTime<Utc>>,
    pub media: Media,
    /// Trunk, Station, Consult, Screen or Snippet; `Screen` marks a screen recording
    /// too (2026-12 facts), whatever `media` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_subtype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_state: Option<FileState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_date: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_date: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exported_date: Option<DateTime<Utc>>,
}

impl RecordingMetadata {
    /// A screen recording: `media` is `screen`, or `mediaSubtype` is `Screen` (either
    /// reading of the facts marks one).
    pub fn is_screen(&self) -> bool {
        self.media == Media::Screen
            || self
                .media_subtype
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("screen"))
    }
}

/// `GET` of one recording: the metadata plus download URLs and transcoding facts.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Recording {
    #[serde(flatten)]
    pub metadata: RecordingMetadata,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_uris: Option<BTreeMap<String, MediaResult>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_transcode_time_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_transcode_time_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_size_in_bytes: Option<u64>,
}

#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MediaResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_uri: Option<String>,
}

impl fmt::Debug for MediaResult {
    /// The URL is a credential (a pre-signed download): never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaResult")
            .field("media_uri", &self.media_uri.as_ref().map(|_| "[signed URL]"))
            .finish()
    }
}

/// One file of a recording to download: its entry in `mediaUris` and its URL.
///
/// A screen recording can be served as several files (one per monitor or segment,
/// `../shared/genesys-api.md` 2026-12): each is a part, archived as its own object. The
/// name is the platform's map key as it came (untrusted: the key layout derives a safe
/// label from it), the URL already checked against `media_hosts`.
#[derive(Clone, PartialEq)]
pub struct MediaPart {
    pub name: String,
    pub url: reqwest::Url,
}

impl fmt::Debug for MediaPart {
    /// The URL is a credential (a pre-signed download): only its host is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaPart")
            .field("name", &self.name)
            .field("host", &self.url.host_str())
            .finish()
    }
}

/// The answer to "give me this recording", as the pipeline branches on it.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordingFetch {
    /// Downloadable now: every entry of its `mediaUris`, in the map's order.
    Ready {
        recording: Box<Recording>,
        parts: Vec<MediaPart>,
    },
    /// Not yet: transcoding (HTTP 202), uploading or being restored. Ask again after `estimate`.
    Pending {
        file_state: Option<FileState>,
        estimate: Option<std::time::Duration>,
    },
    /// Never downloadable as it stands (deleted, archived in Genesys, error, unknown state).
    NotDownloadable { file_state: FileState },
}

/// `media` of a recording. Only `Screen` is archived.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(from = "String", into = "String")]
pub enum Media {
    Screen,
    Audio,
    Chat,
    Email,
    Message,
    Other(String),
}

impl From<String> for Media {
    fn from(s: String) -> Self {
        match s.to_ascii_lowercase().as_str() {
            "screen" => Media::Screen,
            "audio" => Media::Audio,
            "chat" => Media::Chat,
            "email" => Media::Email,
            "message" => Media::Message,
            _ => Media::Other(s),
        }
    }
}

impl From<Media> for String {
    fn from(m: Media) -> String {
        match m {
            Media::Screen => "screen".into(),
            Media::Audio => "audio".into(),
            Media::Chat => "chat".into(),
            Media::Email => "email".into(),
            Media::Message => "message".into(),
            Media::Other(s) => s,
        }
    }
}

/// `fileState` of a recording.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(from = "String", into = "String")]
pub enum FileState {
    Available,
    Uploading,
    Archived,
    Restoring,
    Restored,
    Deleted,
    Error,
    Other(String),
}

impl From<String> for FileState {
    fn from(s: String) -> Self {
        match s.as_str() {
            "AVAILABLE" => FileState::Available,
            "UPLOADING" => FileState::Uploading,
            "ARCHIVED" => FileState::Archived,
            "RESTORING" => FileState::Restoring,
            "RESTORED" => FileState::Restored,
            "DELETED" => FileState::Deleted,
            "ERROR" => FileState::Error,
            _ => FileState::Other(s),
        }
    }
}

impl From<FileState> for String {
    fn from(f: FileState) -> String {
        f.to_string()
    }
}

impl fmt::Display for FileState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileState::Available => "AVAILABLE",
            FileState::Uploading => "UPLOADING",
            FileState::Archived => "ARCHIVED",
            FileState::Restoring => "RESTORING",
            FileState::Restored => "RESTORED",
            FileState::Deleted => "DELETED",
            FileState::Error => "ERROR",
            FileState::Other(s) => s,
        })
    }
}

impl FileState {
    /// The media can be fetched now.
    pub fn is_downloadable(&self) -> bool {
        matches!(self, FileState::Available | FileState::Restored)
    }

    /// The media will become downloadable without anyone acting.
    pub fn is_transient(&self) -> bool {
        matches!(self, FileState::Uploading | FileState::Restoring)
    }
}

/// `formatId` of the recording call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatId {
    Webm,
    Wav,
    Mp3,
    OggVorbis,
    OggOpus,
    /// The original format.
    None,
}

impl FormatId {
    pub fn as_str(self) -> &'static str {
        match self {
            FormatId::Webm => "WEBM",
            FormatId::Wav => "WAV",
            FormatId::Mp3 => "MP3",
            FormatId::OggVorbis => "OGG_VORBIS",
            FormatId::OggOpus => "OGG_OPUS",
            FormatId::None => "NONE",
        }
    }

    /// File extension of archived objects in this format.
    pub fn extension(self) -> &'static str {
        match self {
            FormatId::Webm => "webm",
            FormatId::Wav => "wav",
            FormatId::Mp3 => "mp3",
            FormatId::OggVorbis => "ogg",
            FormatId::OggOpus => "opus",
            FormatId::None => "bin",
        }
    }
}

impl FromStr for FormatId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.trim().to_ascii_uppercase().as_str() {
            "WEBM" => FormatId::Webm,
            "WAV" => FormatId::Wav,
            "MP3" => FormatId::Mp3,
            "OGG_VORBIS" => FormatId::OggVorbis,
            "OGG_OPUS" => FormatId::OggOpus,
            "NONE" => FormatId::None,
            other => {
                return Err(format!(
                    "`{other}` is not one of WEBM, WAV, MP3, OGG_VORBIS, OGG_OPUS, NONE"
                ));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_screen_recording_is_known_by_its_media_or_its_subtype() {
        let json = r#"[{"id":"a","media":"screen"},{"id":"b","media":"video","mediaSubtype":"Screen"},{"id":"c","media":"audio","mediaSubtype":"Trunk"}]"#;
        let list: Vec<RecordingMetadata> = serde_json::from_str(json).unwrap();
        let screen: Vec<bool> = list.iter().map(RecordingMetadata::is_screen).collect();
        assert_eq!(screen, [true, true, false]);
    }

    #[test]
    fn a_signed_url_never_reaches_a_debug_line() {
        let json =
            r#"{"id":"r","media":"screen","mediaUris":{"S":{"mediaUri":"https://m.example/x?X-Amz-Signature=abc"}}}"#;
        let recording: Recording = serde_json::from_str(json).unwrap();
        let shown = format!("{recording:?}");
        assert!(
            !shown.contains("Signature") && shown.contains("[signed URL]"),
            "{shown}"
        );
    }

    #[test]
    fn unknown_fields_are_ignored_and_unknown_values_kept() {
        let json = r#"[{"id":"r1","conversationId":"c1","media":"screen","fileState":"FROZEN","newField":{"x":1}}]"#;
        let list: Vec<RecordingMetadata> = serde_json::from_str(json).unwrap();
        assert_eq!(list[0].media, Media::Screen);
        assert_eq!(list[0].file_state, Some(FileState::Other("FROZEN".into())));
    }

    #[test]
    fn query_serializes_like_the_platform_expects() {
        let start = "2026-11-23T10:00:00Z".parse().unwrap();
        let end = "2026-11-23T11:00:00Z".parse().unwrap();
        let filters = SegmentFilter::screen_recorded();
        let q = serde_json::to_value(AnalyticsQuery::started_between(start, end, 2, 500, &filters)).unwrap();
        assert_eq!(q["interval"], "2026-11-23T10:00:00.000Z/2026-11-23T11:00:00.000Z");
        assert_eq!(q["paging"]["pageSize"], 100);
        assert_eq!(q["paging"]["pageNumber"], 2);
        assert_eq!(q["orderBy"], "conversationStart");
        assert_eq!(q["segmentFilters"][0]["predicates"][0]["dimension"], "screenRecording");
        assert!(q.get("conversationFilters").is_none());
    }
}
