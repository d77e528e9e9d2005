//! When the platform asked to be called again.
//!
//! Genesys normalizes 429s to `Retry-After: SECONDS` plus a body saying "Retry the
//! request in [42] seconds", but integrators still meet 429s without the header
//! (proxies strip it, some endpoints omit it) and HTTP allows an HTTP-date too. The
//! parsers here accept all of those and say `None` for anything else, so the caller
//! falls back to jittered backoff instead of trusting garbage.

use std::time::{Duration, SystemTime};

/// Longest wait taken from a server hint. The official SDKs give up past 180 s; a
/// larger or absurd value is clamped rather than believed.
pub const MAX_HINT: Duration = Duration::from_secs(3600);

/// Parses a `Retry-After` value: delta-seconds or an HTTP-date (relative to `now`).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = value.parse().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_HINT));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO).min(MAX_HINT))
}

/// Reads the wait from a normalized 429 body: `"... Retry the request in [42] seconds"`.
pub fn parse_body_hint(body: &str) -> Option<Duration> {
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    let message = json.get("message")?.as_str()?;
    let open = message.find("in [")? + 4;
    let close = open + message[open..].find(']')?;
    let secs: u64 = message[open..close].trim().parse().ok()?;
    message[close..]
        .trim_start_matches(']')
        .trim_start()
        .starts_with("second")
        .then(|| Duration::from_secs(secs).min(MAX_HINT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SystemTime {
        httpdate::parse_http_date(s).unwrap()
    }

    #[test]
    fn seconds() {
        let now = SystemTime::now();
        assert_eq!(parse_retry_after("42", now), Some(Duration::from_secs(42)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("99999999999999999999", now), Some(MAX_HINT));
    }

    #[test]
    fn http_date() {
        let now = at("Mon, 23 Nov 2026 10:00:00 GMT");
        assert_eq!(
            parse_retry_after("Mon, 23 Nov 2026 10:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        // A date in the past means "now".
        assert_eq!(
            parse_retry_after("Mon, 23 Nov 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn garbage_and_absent() {
        let now = SystemTime::now();
        for bad in ["", "   ", "-5", "1.5", "soon", "30s", "Mon, 99 Nov 2026 10:00:00 GMT"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn normalized_body() {
        let body = r#"{"message":"Rate limit exceeded the maximum. Retry the request in [42] seconds","code":"too.many.requests.retry.after","status":429}"#;
        assert_eq!(parse_body_hint(body), Some(Duration::from_secs(42)));
        assert_eq!(
            parse_body_hint(r#"{"message":"Rate limit exceeded the maximum","status":429}"#),
            None
        );
        assert_eq!(parse_body_hint("not json"), None);
        assert_eq!(parse_body_hint(r#"{"message":"in [x] seconds"}"#), None);
    }
}
