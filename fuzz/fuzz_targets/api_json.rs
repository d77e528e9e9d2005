//! API answers (recordingmetadata lists, a recording, an analytics page) are untrusted
//! JSON: every input gives a value or a typed error, never a panic.
#![no_main]

use genesys_archiver::genesys::Endpoint;
use genesys_archiver::genesys::model::{AnalyticsPage, Recording, RecordingMetadata};
use genesys_archiver::genesys::transport::parse_json;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_json::<Vec<RecordingMetadata>>(Endpoint::RecordingMetadata, data);
    let _ = parse_json::<Recording>(Endpoint::Recording, data);
    let _ = parse_json::<AnalyticsPage>(Endpoint::Analytics, data);
    // What the sidecar writes back out must serialize, whatever came in.
    if let Ok(list) = parse_json::<Vec<RecordingMetadata>>(Endpoint::RecordingMetadata, data) {
        for r in list {
            serde_json::to_string(&r).expect("metadata serializes");
        }
    }
});
