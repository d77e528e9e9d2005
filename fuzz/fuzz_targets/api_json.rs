//! API answers (recordingmetadata lists, a conversation's recordings, a recording, an
//! analytics page and its rows, analytics job results) are untrusted JSON: every input
//! gives a value or a typed error, never a panic.
#![no_main]

use genesys_archiver::genesys::Endpoint;
use genesys_archiver::genesys::model::{AnalyticsPage, ConversationSummary, JobResults, Recording, RecordingMetadata};
use genesys_archiver::genesys::transport::parse_json;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_json::<Vec<RecordingMetadata>>(Endpoint::RecordingMetadata, data);
    let _ = parse_json::<Recording>(Endpoint::Recording, data);
    let _ = parse_json::<Vec<Recording>>(Endpoint::ConversationRecordings, data);
    let _ = parse_json::<JobResults>(Endpoint::AnalyticsJobs, data);
    // Rows are read one by one: a bad row is an error for that row, never a panic.
    if let Ok(page) = parse_json::<AnalyticsPage>(Endpoint::Analytics, data) {
        for row in &page.conversations {
            let _ = ConversationSummary::from_row(row);
        }
    }
    // What the sidecar writes back out must serialize, whatever came in.
    if let Ok(list) = parse_json::<Vec<RecordingMetadata>>(Endpoint::RecordingMetadata, data) {
        for r in list {
            serde_json::to_string(&r).expect("metadata serializes");
        }
    }
});
