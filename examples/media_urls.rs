//! The download URLs of every ready screen recording an org lists, one line per file:
//! `URL KEY`, the form `rclone copyurl` takes (`xargs -n 2`). The data-plane benchmark
//! (`scripts/bench/dataplane.sh`) hands the same files to rclone that the archiver
//! copies.
//!
//! It asks the platform only what the daemon asks, through the daemon's own client:
//! analytics pages over the configured lookback (at most the query's 7-day reach,
//! filtered to conversations with a screen recording), then one recordings listing per
//! conversation, every `mediaUris` entry of a ready recording (a screen recording can be
//! several files). A request the platform would refuse fails here as it would fail the
//! daemon, so the benchmark cannot drift from the API it measures.
//!
//!   media_urls --config FILE [--prefix DEST]   (DEST default `rclone:rclone`)

use chrono::Utc;
use genesys_archiver::config::Sources;
use genesys_archiver::genesys::GenesysClient;
use genesys_archiver::genesys::model::{AnalyticsQuery, ConversationSummary, Media, RecordingFetch};
use genesys_archiver::ratelimit::{Budget, LocalBudget};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// The synchronous query's reach per interval: a longer lookback is read from its end.
const MAX_INTERVAL: chrono::Duration = chrono::Duration::days(7);

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
async fn print_urls(config: &std::path::Path, prefix: &str) -> Result<usize, Box<dyn std::error::Error>> {
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
    let mut printed = 0;
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
            let conversation = ConversationSummary::from_row(row).map_err(|bad| bad.error)?;
            for recording in client.conversation_recordings(&conversation.conversation_id).await? {
                if recording.metadata.media != Media::Screen {
                    continue;
                }
                let id = recording.metadata.id.clone();
                if let RecordingFetch::Ready { parts, .. } = client.classify(recording)? {
                    for (i, part) in parts.iter().enumerate() {
                        println!("{} {prefix}/{id}-{i}.webm", part.url);
                        printed += 1;
                    }
                }
            }
        }
        if (answer.conversations.len() as u32) < org.discovery.page_size {
            return Ok(printed);
        }
        page += 1;
    }
}
