//! `inin-ratelimit-*` headers steer the budget: any bytes must parse to a coherent
//! reading or to nothing, never panic.
#![no_main]

use genesys_archiver::ratelimit::headers::{ALLOWED, COUNT, RESET, RateHeaders};
use libfuzzer_sys::fuzz_target;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for (name, value) in [COUNT, ALLOWED, RESET].into_iter().zip(data.split(|b| *b == b'\n')) {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    if let Some(reading) = RateHeaders::parse(&headers) {
        let _ = (reading.count, reading.allowed, reading.reset);
    }
});
