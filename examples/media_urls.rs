//! The download URLs of every ready screen recording an org lists, one line per file:
//! `URL KEY`, the form `rclone copyurl` takes (`xargs -n 2`). The data-plane benchmark
//! (`scripts/bench/dataplane.sh`) hands the same files to rclone that the archiver
//! copies.
//!
//! It asks the platform only what the daemon asks, through the daemon's own client:
//! analytics pages over the configured lookback (at most the query's 7-day reach,
//! filtered to conversations with a screen recording), then per conversation what the
//! configured `fetch_mode` calls (the recordings listing, or recordingmetadata and one
//! call per screen recording), every `mediaUris` entry of a ready recording (a screen
//! recording can be several files). A request the platform would refuse fails here as
//! it would fail the daemon, so the benchmark cannot drift from the API it measures.
//! Unlike the daemon it does not split a window holding more than the query's
//! `max_results`: a bench org is far smaller.
//!
//!   media_urls --config FILE [--prefix DEST]   (DEST default `rclone:rclone`)

use chrono::Utc;
use genesys_archiver::config::Sources;
use genesys_archiver::genesys::model::{AnalyticsQuery, ConversationSummary, RecordingFetch};
use genesys_archiver::genesys::{ApiError, GenesysClient};
use genesys_archiver::pipeline::poller::MAX_INTERVAL;
use genesys_archiver::pipeline::settings::FetchMode;
use genesys_archiver::ratelimit::{Budget, LocalBudget};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

fn value_of(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(config) = value_of(&args, "--config").map(PathBuf::from) else {
        eprintln!("usage: media_urls --config FILE [--prefix DEST]");
        return ExitCode::from(2);
    };
    let prefix = value_of(&args, "--prefix").unwrap_or_else(|| "rclone:rclone".into());
    match print_urls(&config, &prefix).await {
        Ok(0) => {
            eprintln!("error: no ready screen recording listed");
            ExitCode::FAILURE
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Prints every ready screen recording's files; how many lines it printed.
async fn print_urls(config: &Path, prefix: &str) -> Result<usize, Box<dyn std::error::Error>> {
    let settings = Sources {
        file: Some(config),
        text: None,
        env: None,
    }
    .load()?;
    let org = settings.first_org();
    let metrics = genesys_archiver::metrics::OrgMetrics::unregistered(&org.name);
    let budget: Arc<dyn Budget> = Arc::new(LocalBudget::new(&org.limits, &settings.retry, metrics.clone()));
    let client = GenesysClient::new(&org.genesys, &settings.retry, budget, metrics)?;
    let end = Utc::now();
    let start = end - chrono::Duration::from_std(org.discovery.lookback)?.min(MAX_INTERVAL);
    let (mut printed, mut not_ready) = (0, 0);
    let mut page = 1;
    loop {
        let query = AnalyticsQuery::started_between(
            start,
            end,
            page,
            org.discovery.page_size,
            &org.discovery.segment_filters,
        );
        let answer = client.analytics_page(&query).await?;
        for row in &answer.conversations {
            // An unreadable row is skipped, as discovery skips (and counts) it.
            let conversation = match ConversationSummary::from_row(row) {
                Ok(c) => c,
                Err(bad) => {
                    eprintln!("skipped: {}", bad.error);
                    continue;
                }
            };
            for fetch in screen_recordings(&client, org.discovery.fetch_mode, &conversation.conversation_id).await? {
                match fetch {
                    RecordingFetch::Ready { recording, parts } => {
                        for (i, part) in parts.iter().enumerate() {
                            println!("{} {prefix}/{}-{i}.webm", part.url, recording.metadata.id);
                            printed += 1;
                        }
                    }
                    // The daemon would ask again later; rclone gets fewer files than the
                    // archiver may copy, so the bench says so.
                    RecordingFetch::Pending { .. } => not_ready += 1,
                    RecordingFetch::NotDownloadable { .. } => {}
                }
            }
        }
        if (answer.conversations.len() as u32) < org.discovery.page_size {
            break;
        }
        page += 1;
    }
    if not_ready > 0 {
        eprintln!("warning: {not_ready} screen recordings were not ready yet; their files are not listed");
    }
    Ok(printed)
}

/// What a conversation's screen recordings are now, by the calls `mode` makes.
async fn screen_recordings(
    client: &GenesysClient,
    mode: FetchMode,
    conversation_id: &str,
) -> Result<Vec<RecordingFetch>, ApiError> {
    let mut fetched = Vec::new();
    match mode {
        FetchMode::Conversation => {
            for recording in client.conversation_recordings(conversation_id).await? {
                if recording.metadata.is_screen() {
                    fetched.push(client.classify(recording)?);
                }
            }
        }
        FetchMode::Recording => {
            for metadata in client.screen_recordings(conversation_id).await? {
                fetched.push(client.recording(conversation_id, &metadata.id).await?);
            }
        }
    }
    Ok(fetched)
}
