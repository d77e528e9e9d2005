//! The Genesys Cloud client: one typed method per endpoint.
//!
//! Every method goes through [`Transport::execute`], so every attempt spends the shared
//! budget and follows the retry rules; this file only knows paths, payloads and how to
//! read the answers.

use super::auth::{OAuthSource, TokenCache};
use super::error::ApiError;
use super::media::{MediaClient, MediaDownload};
use super::model::{
    AnalyticsPage, AnalyticsQuery, AsyncQuery, DataAvailability, FileState, JobCreated, JobResults, JobStatus,
    LimitEntities, MediaPart, Organization, Recording, RecordingFetch, RecordingMetadata,
};
use super::settings::GenesysSettings;
use super::transport::{Transport, parse_json};
use crate::endpoint::Endpoint;
use crate::metrics::OrgMetrics;
use crate::ratelimit::Budget;
use crate::retry::settings::RetrySettings;
use chrono::{DateTime, Utc};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

pub struct GenesysClient {
    transport: Arc<Transport>,
    auth: TokenCache<OAuthSource>,
    media: MediaClient,
    settings: GenesysSettings,
}

/// A client could not be built (TLS setup); not an API error.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct BuildError(String);

impl GenesysClient {
    pub fn new(
        g: &GenesysSettings,
        retry: &RetrySettings,
        budget: Arc<dyn Budget>,
        metrics: OrgMetrics,
    ) -> Result<Self, BuildError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("genesys-archiver/", env!("CARGO_PKG_VERSION")))
            .timeout(g.request_timeout)
            .connect_timeout(Duration::from_secs(10))
            // API answers never redirect; following one would carry the bearer token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| BuildError(e.to_string()))?;
        let transport = Arc::new(Transport::new(
            http,
            budget,
            retry.clone(),
            g.max_response_bytes,
            metrics,
        ));
        let token_url = g.login_url.join("oauth/token").map_err(|e| BuildError(e.to_string()))?;
        let auth = TokenCache::new(OAuthSource {
            transport: transport.clone(),
            token_url,
            client_id: g.client_id.clone(),
            client_secret: g.client_secret.clone(),
        });
        let media = MediaClient::new(g.media.clone(), g.request_timeout, g.media_proxy.as_ref())
            .map_err(|e| BuildError(e.to_string()))?;
        Ok(Self {
            transport,
            auth,
            media,
            settings: g.clone(),
        })
    }

    pub fn budget(&self) -> &Arc<dyn Budget> {
        self.transport.budget()
    }

    /// The org's metrics handle (the pipeline built on this client records through it).
    pub fn metrics(&self) -> &OrgMetrics {
        self.transport.metrics()
    }

    /// Tokens fetched so far.
    pub fn token_refreshes(&self) -> u64 {
        self.auth.refreshes()
    }

    /// Gets a token now (used by `check-config --connect` and readiness).
    pub async fn authenticate(&self) -> Result<(), ApiError> {
        self.auth.get().await.map(|_| ())
    }

    /// The API URL of `path` (built from templates and encoded ids), refused before any
    /// call when the URL parser would make it another path: `set_path` keeps `%2F` as
    /// is, but resolves `.`, `..`, `%2E` and `%2E%2E` segments, so an id of `..` (from a
    /// hostile answer, or requeued by `retry --parked`) would climb to another endpoint.
    fn api(&self, endpoint: Endpoint, path: &str) -> Result<Url, ApiError> {
        let mut url = self.settings.api_url.clone();
        // A base URL with a path (a gateway, the multi-org simulator) prefixes it.
        let prefix = url.path().trim_end_matches('/').to_owned();
        let wanted = format!("{prefix}{path}");
        url.set_path(&wanted);
        if url.path() != wanted {
            return Err(ApiError::Payload {
                endpoint,
                path: "id".into(),
                message: "an id that would change the request path (a `.` or `..` segment); never sent".into(),
            });
        }
        Ok(url)
    }

    /// `GET path?query` on the API, through the budget; the raw answer.
    async fn get(
        &self,
        endpoint: Endpoint,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<super::transport::ApiResponse, ApiError> {
        let url = self.api(endpoint, path)?;
        let make = |http: &reqwest::Client, token: Option<&str>| {
            http.get(url.clone())
                .query(query)
                .bearer_auth(token.unwrap_or_default())
        };
        self.transport.execute(endpoint, &make, Some(&self.auth)).await
    }

    /// `POST path` with a JSON body on the API, through the budget; the raw answer.
    async fn post<B: serde::Serialize + Sync>(
        &self,
        endpoint: Endpoint,
        path: &str,
        body: &B,
    ) -> Result<super::transport::ApiResponse, ApiError> {
        let url = self.api(endpoint, path)?;
        let make = |http: &reqwest::Client, token: Option<&str>| {
            http.post(url.clone()).bearer_auth(token.unwrap_or_default()).json(body)
        };
        self.transport.execute(endpoint, &make, Some(&self.auth)).await
    }

    /// One page of conversations matching `query`.
    pub async fn analytics_page(&self, query: &AnalyticsQuery) -> Result<AnalyticsPage, ApiError> {
        let answer = self
            .post(
                Endpoint::Analytics,
                "/api/v2/analytics/conversations/details/query",
                query,
            )
            .await?;
        if answer.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(AnalyticsPage {
                conversations: Vec::new(),
                total_hits: Some(0),
            });
        }
        parse_json(Endpoint::Analytics, &answer.body)
    }

    /// Every recording of a conversation (all media); empty for a conversation without any.
    pub async fn recording_metadata(&self, conversation_id: &str) -> Result<Vec<RecordingMetadata>, ApiError> {
        let path = format!(
            "/api/v2/conversations/{}/recordingmetadata",
            super::settings::encode_segment(conversation_id)
        );
        let answer = self.get(Endpoint::RecordingMetadata, &path, &[]).await?;
        parse_json(Endpoint::RecordingMetadata, &answer.body)
    }

    /// Every recording of a conversation in the configured format, in one call: the
    /// ready ones carry `mediaUris`. `maxWaitMs` lets the platform finish transcoding
    /// before it answers (documented on this call), which saves the follow-up call per
    /// transcoding recording. It answers 200, or 202 while some are still transcoding
    /// (inferred: both are read the same way, and an entry without a download URL is
    /// treated as not ready, whichever status came, so a platform that answers before
    /// `maxWaitMs` costs only the follow-up calls).
    pub async fn conversation_recordings(&self, conversation_id: &str) -> Result<Vec<Recording>, ApiError> {
        let path = self.settings.recordings_path.render(conversation_id);
        let format = self.settings.format_id.as_str();
        let wait = self.settings.list_max_wait.as_millis().to_string();
        let answer = self
            .get(
                Endpoint::ConversationRecordings,
                &path,
                &[("formatId", format), ("maxWaitMs", &wait)],
            )
            .await?;
        if answer.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Vec::new());
        }
        parse_json(Endpoint::ConversationRecordings, &answer.body)
    }

    /// What one entry of [`GenesysClient::conversation_recordings`] means for the pipeline.
    pub fn classify(&self, recording: Recording) -> Result<RecordingFetch, ApiError> {
        // Ready when every entry (part) carries its URL: a recording some of whose parts
        // have none yet is still being prepared (inferred; whichever way the platform
        // does it, no part is archived before all of them can be).
        let ready = recording
            .media_uris
            .as_ref()
            .is_some_and(|uris| !uris.is_empty() && uris.values().all(|m| m.media_uri.is_some()));
        let state = recording.metadata.file_state.clone().unwrap_or(FileState::Available);
        if state.is_downloadable() && !ready {
            // Listed but not transcoded yet: the per-recording call follows it.
            let estimate = recording.estimated_transcode_time_ms.map(Duration::from_millis);
            return Ok(RecordingFetch::Pending {
                file_state: None,
                estimate,
            });
        }
        self.decide(recording)
    }

    /// The org's per-token limit (`client.credentials.token.rate.per.minute`), read from
    /// the limits the platform reports for the org; `None` when the answer lacks it.
    pub async fn org_token_limit(&self) -> Result<Option<u32>, ApiError> {
        let answer = self
            .get(
                Endpoint::Limits,
                "/api/v2/organizations/limits/namespaces/platform.api",
                &[],
            )
            .await?;
        let limits: LimitEntities = parse_json(Endpoint::Limits, &answer.body)?;
        Ok(limits
            .entities
            .iter()
            .find(|e| e.key == "client.credentials.token.rate.per.minute")
            .filter(|e| e.value >= 1.0 && e.value < f64::from(u32::MAX))
            .map(|e| e.value as u32))
    }

    /// The client's own org (`GET /api/v2/organizations/me`; no permission needed).
    pub async fn organization(&self) -> Result<Organization, ApiError> {
        let answer = self
            .get(Endpoint::Organization, "/api/v2/organizations/me", &[])
            .await?;
        parse_json(Endpoint::Organization, &answer.body)
    }

    /// Submits an asynchronous analytics job.
    pub async fn submit_job(&self, query: &AsyncQuery) -> Result<JobCreated, ApiError> {
        let answer = self
            .post(
                Endpoint::AnalyticsJobs,
                "/api/v2/analytics/conversations/details/jobs",
                query,
            )
            .await?;
        parse_json(Endpoint::AnalyticsJobs, &answer.body)
    }

    pub async fn job_status(&self, job_id: &str) -> Result<JobStatus, ApiError> {
        let path = format!(
            "/api/v2/analytics/conversations/details/jobs/{}",
            super::settings::encode_segment(job_id)
        );
        let answer = self.get(Endpoint::AnalyticsJobs, &path, &[]).await?;
        parse_json(Endpoint::AnalyticsJobs, &answer.body)
    }

    pub async fn job_results(&self, job_id: &str, cursor: Option<&str>) -> Result<JobResults, ApiError> {
        let path = format!(
            "/api/v2/analytics/conversations/details/jobs/{}/results",
            super::settings::encode_segment(job_id)
        );
        let query: Vec<(&str, &str)> = cursor.map(|c| ("cursor", c)).into_iter().collect();
        let answer = self.get(Endpoint::AnalyticsJobs, &path, &query).await?;
        parse_json(Endpoint::AnalyticsJobs, &answer.body)
    }

    /// The date before which the analytics data lake is complete.
    pub async fn data_availability(&self) -> Result<DataAvailability, ApiError> {
        let answer = self
            .get(
                Endpoint::AnalyticsJobs,
                "/api/v2/analytics/conversations/details/jobs/availability",
                &[],
            )
            .await?;
        parse_json(Endpoint::AnalyticsJobs, &answer.body)
    }

    /// The screen recordings of a conversation.
    pub async fn screen_recordings(&self, conversation_id: &str) -> Result<Vec<RecordingMetadata>, ApiError> {
        let mut all = self.recording_metadata(conversation_id).await?;
        all.retain(RecordingMetadata::is_screen);
        Ok(all)
    }

    /// One recording in the configured format: ready with its download URL, pending
    /// (transcoding, uploading, restoring), or not downloadable.
    pub async fn recording(&self, conversation_id: &str, recording_id: &str) -> Result<RecordingFetch, ApiError> {
        let path = self.settings.recording_path.render(conversation_id, recording_id);
        let format = self.settings.format_id.as_str();
        let answer = self.get(Endpoint::Recording, &path, &[("formatId", format)]).await?;
        if answer.status == StatusCode::ACCEPTED {
            #[derive(Deserialize, Default)]
            #[serde(rename_all = "camelCase")]
            struct Transcoding {
                estimated_transcode_time_ms: Option<u64>,
            }
            let t: Transcoding = serde_json::from_slice(&answer.body).unwrap_or_default();
            return Ok(RecordingFetch::Pending {
                file_state: None,
                estimate: t.estimated_transcode_time_ms.map(Duration::from_millis),
            });
        }
        let recording: Recording = parse_json(Endpoint::Recording, &answer.body)?;
        self.decide(recording)
    }

    fn decide(&self, mut recording: Recording) -> Result<RecordingFetch, ApiError> {
        let state = recording.metadata.file_state.clone().unwrap_or(FileState::Available);
        if state.is_transient() {
            let estimate = recording.estimated_transcode_time_ms.map(Duration::from_millis);
            return Ok(RecordingFetch::Pending {
                file_state: Some(state),
                estimate,
            });
        }
        if !state.is_downloadable() {
            return Ok(RecordingFetch::NotDownloadable { file_state: state });
        }
        let entries: Vec<(&String, Option<&str>)> = recording
            .media_uris
            .iter()
            .flatten()
            .map(|(name, m)| (name, m.media_uri.as_deref()))
            .collect();
        if entries.iter().all(|(_, uri)| uri.is_none()) {
            return Err(ApiError::Payload {
                endpoint: Endpoint::Recording,
                path: "mediaUris".into(),
                message: format!("no download URL in a recording whose fileState is {state}"),
            });
        }
        if entries.iter().any(|(_, uri)| uri.is_none()) {
            // Some parts ready, some not: wait for all of them (see `classify`).
            let estimate = recording.estimated_transcode_time_ms.map(Duration::from_millis);
            return Ok(RecordingFetch::Pending {
                file_state: None,
                estimate,
            });
        }
        // Every entry is a part of the recording: never keep only the first.
        let parts = entries
            .into_iter()
            .map(|(name, uri)| {
                Ok(MediaPart {
                    name: name.clone(),
                    url: self.media.policy().parse(uri.expect("checked above"))?,
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        // The URLs live on in `parts` only: the recording is described, logged and
        // stored without them.
        recording.media_uris = None;
        Ok(RecordingFetch::Ready {
            recording: Box::new(recording),
            parts,
        })
    }

    /// Sets a recording's `deleteDate` (the recording's retention update: `PUT` of the
    /// recording, `recording:recording:view` and `recording:screenRecording:editRetention`),
    /// through the budget; the delete date the platform answers with.
    ///
    /// The body is a `Recording` with `deleteDate` and, when known, the `archiveDate` as
    /// it is: whether the platform merges the fields sent or replaces the retention
    /// whole is not documented, and sending the archive date unchanged is right under
    /// both readings (a changed archive date of an archived recording would start a
    /// restore). `clearExport` is not sent.
    pub async fn set_delete_date(
        &self,
        conversation_id: &str,
        recording_id: &str,
        archive_date: Option<DateTime<Utc>>,
        delete_date: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, ApiError> {
        let path = self.settings.recording_path.render(conversation_id, recording_id);
        let mut body = serde_json::json!({
            "id": recording_id,
            "conversationId": conversation_id,
            "deleteDate": delete_date.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        });
        if let Some(archive) = archive_date {
            body["archiveDate"] = archive.to_rfc3339_opts(chrono::SecondsFormat::Millis, true).into();
        }
        let url = self.api(Endpoint::RecordingRetention, &path)?;
        let make = |http: &reqwest::Client, token: Option<&str>| {
            http.put(url.clone()).bearer_auth(token.unwrap_or_default()).json(&body)
        };
        let answer = self
            .transport
            .execute(Endpoint::RecordingRetention, &make, Some(&self.auth))
            .await?;
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase")]
        struct Retention {
            delete_date: Option<DateTime<Utc>>,
        }
        // An answer without a body (or without the date) says nothing against the change.
        if answer.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Some(delete_date));
        }
        let kept: Retention = parse_json(Endpoint::RecordingRetention, &answer.body)?;
        Ok(kept.delete_date)
    }

    /// Starts downloading media from a URL returned by [`GenesysClient::recording`].
    pub async fn open_media(&self, url: &Url) -> Result<MediaDownload, ApiError> {
        self.media.open(url).await
    }
}
