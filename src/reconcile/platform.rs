//! What Genesys says exists for a range: the conversations the analytics query finds
//! with the org's discovery filter (read by the daemon's own poller into a scratch
//! ledger, so the synchronous query, its splitting and the jobs API for older ranges
//! are the same code), then each ended conversation's screen recordings from its
//! listing. Every call goes through the budget `reconcile` was given.

use super::Code;
use crate::genesys::GenesysClient;
use crate::ledger::sqlite::SqliteLedger;
use crate::ledger::{ConversationState, Ledger};
use crate::pipeline::poller::Poller;
use crate::pipeline::settings::{DiscoverySettings, FetchMode};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// A screen recording Genesys lists.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenRecording {
    pub recording_id: String,
    pub conversation_id: String,
    pub file_state: String,
}

/// What Genesys said about the range.
#[derive(Debug, Default)]
pub struct Survey {
    pub recordings: Vec<SeenRecording>,
    /// Conversations that could not be looked into: still going on, or their listing
    /// refused.
    pub conversations: Vec<(String, String, Code)>,
}

/// Reads the range from Genesys. The scratch ledger lives in `scratch` (a directory
/// of its own, removed by the caller).
pub async fn survey(
    client: Arc<GenesysClient>,
    discovery: &DiscoverySettings,
    scratch: &std::path::Path,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Survey, String> {
    let ledger: Arc<dyn Ledger> = Arc::new(
        SqliteLedger::open(&scratch.join("survey.sqlite"))
            .map_err(|e| e.to_string())?
            .for_org("survey"),
    );
    let poller = Poller {
        client: client.clone(),
        ledger: ledger.clone(),
        settings: discovery.clone(),
        stats: Arc::default(),
        work: Arc::default(),
    };
    poller.pass(from, to).await.map_err(|e| e.to_string())?;
    let mut survey = Survey::default();
    for row in ledger.active_by_next_check(u32::MAX).await.map_err(|e| e.to_string())? {
        survey.conversations.push((
            row.conversation_id,
            "still going on: its recordings are listed after its end".into(),
            Code::Active,
        ));
    }
    // Every ended conversation, each taken once.
    let far = Utc::now() + chrono::Duration::days(36_500);
    while let Some(row) = ledger.claim_conversation(far).await.map_err(|e| e.to_string())? {
        debug_assert_eq!(row.state, ConversationState::Checking);
        let cid = row.conversation_id;
        let listed = match discovery.fetch_mode {
            FetchMode::Conversation => client
                .conversation_recordings(&cid)
                .await
                .map(|all| all.into_iter().map(|r| r.metadata).collect::<Vec<_>>()),
            FetchMode::Recording => client.recording_metadata(&cid).await,
        };
        match listed {
            Ok(all) => survey
                .recordings
                .extend(all.into_iter().filter(|r| r.is_screen()).map(|r| SeenRecording {
                    recording_id: r.id,
                    conversation_id: r.conversation_id.unwrap_or_else(|| cid.clone()),
                    file_state: r.file_state.map_or_else(|| "unknown".to_owned(), |s| s.to_string()),
                })),
            Err(error) => survey
                .conversations
                .push((cid, format!("listing refused: {error}"), Code::ListingFailed)),
        }
    }
    Ok(survey)
}
