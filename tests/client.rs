//! The Genesys client against the simulator: discovery, recording states, media,
//! expiry, host policy, token refresh and fault handling.

mod common;

use chrono::Utc;
use futures_util::StreamExt;
use genesys_archiver::genesys::ApiError;
use genesys_archiver::genesys::media_policy::UrlRejected;
use genesys_archiver::genesys::model::{AnalyticsQuery, ConversationSummary, FileState, RecordingFetch, SegmentFilter};
use genesys_sim::SimConfig;
use genesys_sim::media::{expected_sha256, hex};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::time::Duration;

fn mixed_org() -> SimConfig {
    SimConfig {
        conversations: 60,
        no_recording_share: 0.3,
        screen_per_conversation: (1, 3),
        audio_share: 0.5,
        archived_share: 0.15,
        deleted_share: 0.15,
        transcoding_share: 0.3,
        transcode_time: Duration::from_millis(300),
        media_size: (10_000, 300_000),
        multipart_share: 0.3,
        token_limit: 10_000,
        endpoint_limits: Default::default(),
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn discovery_pages_through_recorded_conversations_and_keeps_screen_recordings() {
    let sim = common::start(mixed_org()).await;
    let client = common::client(&common::settings(&sim, ""));
    let (start, end) = (Utc::now() - chrono::Duration::hours(2), Utc::now());
    let mut found = Vec::new();
    for page in 1.. {
        let answer = client
            .analytics_page(&AnalyticsQuery::started_between(
                start,
                end,
                page,
                7,
                &SegmentFilter::screen_recorded(),
            ))
            .await
            .unwrap();
        if answer.conversations.is_empty() {
            break;
        }
        assert!(answer.conversations.len() <= 7);
        found.extend(
            answer
                .conversations
                .iter()
                .map(|row| ConversationSummary::from_row(row).unwrap()),
        );
    }
    let starts: Vec<_> = found.iter().map(|c| c.conversation_start).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "ascending by start");

    let catalog = sim.catalog();
    let recorded: BTreeSet<_> = catalog
        .iter()
        .filter(|e| e.media == "screen")
        .map(|e| e.conversation_id.clone())
        .collect();
    let discovered: BTreeSet<_> = found.iter().map(|c| c.conversation_id.clone()).collect();
    assert_eq!(
        discovered, recorded,
        "the segment filter keeps exactly the conversations with a screen recording"
    );
    assert!(recorded.len() < 60, "some conversations have no recording at all");

    let mut screen = BTreeSet::new();
    for c in &discovered {
        for r in client.screen_recordings(c).await.unwrap() {
            screen.insert(r.id);
        }
    }
    let expected: BTreeSet<_> = catalog
        .iter()
        .filter(|e| e.media == "screen")
        .map(|e| e.recording_id.clone())
        .collect();
    assert_eq!(screen, expected);
    assert!(
        catalog.iter().any(|e| e.media == "audio"),
        "audio recordings exist and were filtered out"
    );
    let stats = sim.stats();
    assert_eq!(
        stats.calls("recordingmetadata"),
        discovered.len() as u64,
        "one metadata call per recorded conversation"
    );
}

#[tokio::test]
async fn recording_states_transcoding_archived_deleted_and_media_bytes() {
    let sim = common::start(mixed_org()).await;
    let client = common::client(&common::settings(&sim, ""));
    let screen: Vec<_> = sim.catalog().into_iter().filter(|e| e.media == "screen").collect();
    let (mut ready, mut pending, mut parked, mut multipart) = (0, 0, 0, 0);
    for entry in &screen {
        let mut fetch = client
            .recording(&entry.conversation_id, &entry.recording_id)
            .await
            .unwrap();
        if let RecordingFetch::Pending { estimate, file_state } = &fetch {
            assert!(entry.needs_transcode);
            assert_eq!(*file_state, None);
            let estimate = estimate.expect("202 carries estimatedTranscodeTimeMs");
            assert!(estimate <= Duration::from_millis(300));
            pending += 1;
            tokio::time::sleep(estimate + Duration::from_millis(50)).await;
            fetch = client
                .recording(&entry.conversation_id, &entry.recording_id)
                .await
                .unwrap();
        }
        match fetch {
            RecordingFetch::Ready { parts, recording } => {
                assert_eq!(entry.file_state, "AVAILABLE");
                assert_eq!(recording.output_size_in_bytes, Some(entry.size));
                // Every entry of `mediaUris` is a part, in the simulator's order.
                assert_eq!(parts.len(), entry.parts.len(), "{}", entry.recording_id);
                multipart += usize::from(parts.len() > 1);
                for (part, (name, size)) in parts.iter().zip(&entry.parts) {
                    let download = client.open_media(&part.url).await.unwrap();
                    assert_eq!(download.content_length, Some(*size));
                    let mut hasher = Sha256::new();
                    let mut stream = download.stream;
                    while let Some(chunk) = stream.next().await {
                        hasher.update(chunk.unwrap());
                    }
                    assert_eq!(hex(&hasher.finalize()), expected_sha256(name, *size));
                }
                ready += 1;
            }
            RecordingFetch::NotDownloadable { file_state } => {
                assert!(matches!(file_state, FileState::Archived | FileState::Deleted));
                assert_eq!(file_state.to_string(), entry.file_state);
                parked += 1;
            }
            RecordingFetch::Pending { .. } => panic!("still transcoding after the estimate"),
        }
    }
    assert!(
        ready > 0 && pending > 0 && parked > 0 && multipart > 0,
        "ready {ready}, pending {pending}, parked {parked}, of several parts {multipart}"
    );
    assert_eq!(sim.stats().count("recording", "202"), pending);
}

#[tokio::test]
async fn an_expired_download_url_is_reported_as_such() {
    let sim = common::start(SimConfig {
        url_ttl: Duration::from_millis(1),
        ..common::flat_org(1)
    })
    .await;
    let client = common::client(&common::settings(&sim, ""));
    let entry = &sim.catalog()[0];
    let RecordingFetch::Ready { parts, .. } = client
        .recording(&entry.conversation_id, &entry.recording_id)
        .await
        .unwrap()
    else {
        panic!("ready expected");
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(matches!(
        client.open_media(&parts[0].url).await,
        Err(ApiError::UrlExpired)
    ));
    assert_eq!(sim.stats().count("media", "403"), 1);
}

#[tokio::test]
async fn download_urls_outside_media_hosts_are_refused_before_any_request() {
    let sim = common::start(common::flat_org(1)).await;
    let settings = common::settings(&sim, "");
    let text = sim
        .client_config()
        .replace("media_hosts = [\"127.0.0.1\"]", "media_hosts = [\"media.example.com\"]");
    let strict = common::settings_from_text(&text);
    assert_ne!(strict.first_org().genesys.media, settings.first_org().genesys.media);
    let client = common::client(&strict);
    let entry = &sim.catalog()[0];
    let error = client
        .recording(&entry.conversation_id, &entry.recording_id)
        .await
        .unwrap_err();
    assert_eq!(error, ApiError::UrlRejected(UrlRejected::Host("127.0.0.1".into())));
    assert_eq!(sim.stats().calls("media"), 0);
}

#[tokio::test]
async fn a_revoked_token_is_refreshed_once() {
    let sim = common::start(common::flat_org(20)).await;
    let client = common::client(&common::settings(&sim, ""));
    let catalog = sim.catalog();
    client
        .recording(&catalog[0].conversation_id, &catalog[0].recording_id)
        .await
        .unwrap();
    sim.revoke_tokens();
    let calls: Vec<_> = catalog[1..]
        .iter()
        .map(|e| {
            let client = client.clone();
            let (c, r) = (e.conversation_id.clone(), e.recording_id.clone());
            tokio::spawn(async move { client.recording(&c, &r).await })
        })
        .collect();
    for call in calls {
        assert!(matches!(call.await.unwrap(), Ok(RecordingFetch::Ready { .. })));
    }
    assert_eq!(
        client.token_refreshes(),
        2,
        "one login at start, one after the revocation"
    );
    assert_eq!(sim.stats().count("token", "200"), 2);
}

#[tokio::test]
async fn wrong_credentials_fail_without_retrying() {
    let sim = common::start(common::flat_org(1)).await;
    let text = sim
        .client_config()
        .replace("client_secret = \"sim-secret\"", "client_secret = \"wrong\"");
    let settings = common::settings_from_text(&text);
    let client = common::client(&settings);
    let entry = &sim.catalog()[0];
    let error = client
        .recording(&entry.conversation_id, &entry.recording_id)
        .await
        .unwrap_err();
    assert!(matches!(error, ApiError::Auth(_)), "{error:?}");
    assert!(!error.to_string().contains("wrong"), "the secret is not in the error");
    assert_eq!(sim.stats().count("token", "401"), 1);
    assert_eq!(sim.stats().calls("recording"), 0);
}

#[tokio::test]
async fn not_found_is_final_and_spends_one_call() {
    let sim = common::start(common::flat_org(1)).await;
    let client = common::client(&common::settings(&sim, ""));
    let error = client
        .recording("no-such-conversation", "no-such-recording")
        .await
        .unwrap_err();
    assert!(matches!(error, ApiError::Status { status: 404, .. }), "{error:?}");
    assert_eq!(sim.stats().calls("recording"), 1);
}

/// An id that is a dot segment would make the URL parser climb to another endpoint
/// (`/conversations/%2E%2E/recordings` resolves like `/conversations/../recordings`):
/// refused before any call, on every endpoint an id shapes. Other ids are encoded
/// (`%2e%2e` is sent as `%252e%252e`, an id the platform does not know).
#[tokio::test]
async fn ids_that_would_climb_the_path_are_refused_before_any_call() {
    let sim = common::start(common::flat_org(1)).await;
    let client = common::client(&common::settings(&sim, ""));
    for id in ["..", "."] {
        for error in [
            client.recording(id, "r").await.unwrap_err(),
            client.recording("c", id).await.unwrap_err(),
            client.conversation_recordings(id).await.unwrap_err(),
            client.recording_metadata(id).await.unwrap_err(),
            client.job_status(id).await.unwrap_err(),
        ] {
            assert!(
                matches!(&error, ApiError::Payload { path, .. } if path == "id"),
                "{id:?}: {error:?}"
            );
        }
    }
    let stats = sim.stats();
    assert_eq!(
        stats.api_calls() - stats.calls("token"),
        0,
        "nothing was sent: {stats:?}"
    );
    let encoded = client.recording("%2e%2e", "r").await.unwrap_err();
    assert!(matches!(encoded, ApiError::Status { status: 404, .. }), "{encoded:?}");
}

#[tokio::test]
async fn server_errors_and_dropped_connections_are_retried() {
    let sim = common::start(SimConfig {
        error_share: 0.2,
        drop_share: 0.1,
        token_limit: 10_000,
        ..common::flat_org(60)
    })
    .await;
    let client = common::client(&common::settings(
        &sim,
        "[retry]\nbase = \"10ms\"\ncap = \"100ms\"\nmax_attempts = 30\n",
    ));
    for entry in sim.catalog() {
        let fetch = client
            .recording(&entry.conversation_id, &entry.recording_id)
            .await
            .unwrap();
        assert!(matches!(fetch, RecordingFetch::Ready { .. }));
    }
    let stats = sim.stats();
    let failures: u64 = ["502", "503", "504", "dropped"]
        .iter()
        .map(|s| stats.count("recording", s))
        .sum();
    assert!(failures > 0, "{stats:?}");
    assert_eq!(stats.count("recording", "200"), 60);
    assert_eq!(stats.calls("recording"), 60 + failures);
}

/// `requests_per_minute = "auto"`: the org's own per-token limit, read from the platform.
#[tokio::test]
async fn the_auto_budget_is_the_org_limit_the_platform_reports() {
    use genesys_archiver::ratelimit::{Budget, LocalBudget};
    let sim = common::start(SimConfig {
        token_limit: 123,
        ..SimConfig::default()
    })
    .await;
    let text = sim
        .client_config()
        .replace("requests_per_minute = 123", "requests_per_minute = \"auto\"");
    let settings = common::settings_from_text(&text);
    assert!(settings.first_org().limits.auto_budget);
    let metrics = genesys_archiver::metrics::OrgMetrics::unregistered("default");
    let budget = std::sync::Arc::new(LocalBudget::new(
        &settings.first_org().limits,
        &settings.retry,
        metrics.clone(),
    ));
    assert_eq!(
        budget.token_scope().effective_limit(),
        Some(300),
        "the documented default first"
    );
    let client = genesys_archiver::genesys::GenesysClient::new(
        &settings.first_org().genesys,
        &settings.retry,
        budget.clone(),
        metrics,
    )
    .unwrap();
    genesys_archiver::app::read_token_limit(&client, budget.as_ref() as &dyn Budget).await;
    assert_eq!(budget.token_scope().effective_limit(), Some(123));
    assert_eq!(sim.stats().calls("limits"), 1);
}

/// The platform counts its budget per access token, as documented; the simulator can
/// also count it per OAuth client (every token of the org together), the stricter
/// reading under which replicas that each log in are measured too.
#[tokio::test]
async fn the_budget_is_counted_per_token_or_per_client() {
    async fn accepted_of_two_tokens(per_client: bool) -> usize {
        let sim = common::start(SimConfig {
            token_limit: 10,
            window: Duration::from_secs(60),
            limit_per_client: per_client,
            ..SimConfig::default()
        })
        .await;
        let http = reqwest::Client::new();
        let config = sim.config().clone();
        let mut accepted = 0;
        for _ in 0..2 {
            let token: serde_json::Value = http
                .post(format!("{}/oauth/token", sim.url()))
                .basic_auth(&config.client_id, Some(&config.client_secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let bearer = token["access_token"].as_str().unwrap().to_owned();
            for _ in 0..15 {
                let answer = http
                    .get(format!("{}/api/v2/organizations/me", sim.url()))
                    .bearer_auth(&bearer)
                    .send()
                    .await
                    .unwrap();
                accepted += usize::from(answer.status() == 200);
            }
        }
        accepted
    }
    assert_eq!(accepted_of_two_tokens(false).await, 20, "10 for each token");
    assert_eq!(accepted_of_two_tokens(true).await, 10, "10 for the client");
}
