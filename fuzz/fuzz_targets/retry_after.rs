//! Retry-After values and 429 bodies come from the network: parsing must never panic,
//! and a parsed wait is never absurd (the cooldown sleeps it).
#![no_main]

use genesys_archiver::retry::retry_after::{parse_body_hint, parse_retry_after};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, SystemTime};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    for wait in [parse_retry_after(text, now), parse_body_hint(text)].into_iter().flatten() {
        assert!(wait <= Duration::from_secs(400 * 24 * 3600), "{wait:?} from {text:?}");
    }
});
