//! The Genesys Cloud client: one typed method per endpoint.
//!
//! Every method goes through [`Transport::execute`], so every attempt spends the shared
//! budget and follows the retry rules; this file only knows paths, payloads and how to
//! read the answers.

use super::auth::{OAuthSource, TokenCache};
use super::endpoint::Endpoint;
use super::error::ApiError;
use super::media::{MediaClient, MediaDownload};
use super::model::{AnalyticsPage, AnalyticsQuery, FileState, Media, Recording, RecordingFetch, RecordingMetadata};
use super::transport::{Transport, parse_json};
use crate::config::settings::{GenesysSettings, Settings};
use crate::ratelimit::Budget;
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
    pub fn new(settings: &Settings, budget: Arc<dyn Budget>) -> Result<Self, BuildError> {
        let g = &settings.genesys;
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
            settings.retry.clone(),
            g.max_response_bytes,
        ));
        let token_url = g.login_url.join("oauth/token").map_err(|e| BuildError(e.to_string()))?;
        let auth = TokenCache::new(OAuthSource {
            transport: transport.clone(),
            token_url,
            client_id: g.client_id.clone(),
            client_secret: g.client_secret.clone(),
        });
        let media = MediaClient::new(g.media.clone(), g.request_timeout).map_err(|e| BuildError(e.to_string()))?;
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

    /// Tokens fetched so far.
    pub fn token_refreshes(&self) -> u64 {
        self.auth.refreshes()
    }

    /// Gets a token now (used by `check-config --connect` and readiness).
    pub async fn authenticate(&self) -> Result<(), ApiError> {
        self.auth.get().await.map(|_| ())
    }

    fn api(&self, path: &str) -> Url {
        let mut url = self.settings.api_url.clone();
        // Paths are built from templates and encoded ids; set_path keeps `%2F` as is.
        url.set_path(path);
        url
    }

    /// One page of conversations matching `query`.
    pub async fn analytics_page(&self, query: &AnalyticsQuery) -> Result<AnalyticsPage, ApiError> {
        let url = self.api("/api/v2/analytics/conversations/details/query");
        let make = |http: &reqwest::Client, token: Option<&str>| {
            http.post(url.clone())
                .bearer_auth(token.unwrap_or_default())
                .json(query)
        };
        let answer = self
            .transport
            .execute(Endpoint::Analytics, &make, Some(&self.auth))
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
        let url = self.api(&format!(
            "/api/v2/conversations/{}/recordingmetadata",
            crate::config::settings::encode_segment(conversation_id)
        ));
        let make =
            |http: &reqwest::Client, token: Option<&str>| http.get(url.clone()).bearer_auth(token.unwrap_or_default());
        let answer = self
            .transport
            .execute(Endpoint::RecordingMetadata, &make, Some(&self.auth))
            .await?;
        parse_json(Endpoint::RecordingMetadata, &answer.body)
    }

    /// The screen recordings of a conversation.
    pub async fn screen_recordings(&self, conversation_id: &str) -> Result<Vec<RecordingMetadata>, ApiError> {
        let mut all = self.recording_metadata(conversation_id).await?;
        all.retain(|r| r.media == Media::Screen);
        Ok(all)
    }

    /// One recording in the configured format: ready with its download URL, pending
    /// (transcoding, uploading, restoring), or not downloadable.
    pub async fn recording(&self, conversation_id: &str, recording_id: &str) -> Result<RecordingFetch, ApiError> {
        let url = self.api(&self.settings.recording_path.render(conversation_id, recording_id));
        let format = self.settings.format_id.as_str();
        let make = |http: &reqwest::Client, token: Option<&str>| {
            http.get(url.clone())
                .query(&[("formatId", format)])
                .bearer_auth(token.unwrap_or_default())
        };
        let answer = self
            .transport
            .execute(Endpoint::Recording, &make, Some(&self.auth))
            .await?;
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

    fn decide(&self, recording: Recording) -> Result<RecordingFetch, ApiError> {
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
        let uri = recording
            .media_uris
            .as_ref()
            .and_then(|uris| uris.values().find_map(|m| m.media_uri.as_deref()))
            .ok_or_else(|| ApiError::Payload {
                endpoint: Endpoint::Recording,
                path: "mediaUris".into(),
                message: format!("no download URL in a recording whose fileState is {state}"),
            })?;
        let media_uri = self.media.policy().parse(uri)?;
        Ok(RecordingFetch::Ready {
            recording: Box::new(recording),
            media_uri,
        })
    }

    /// Starts downloading media from a URL returned by [`GenesysClient::recording`].
    pub async fn open_media(&self, url: &Url) -> Result<MediaDownload, ApiError> {
        self.media.open(url).await
    }
}
