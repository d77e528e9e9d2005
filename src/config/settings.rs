//! Checked settings: what the rest of the daemon reads.
//!
//! [`Settings::validate`] is the only way to build them, so a value that reaches a
//! component has already been checked. A bad value is reported as one line that names
//! the key (`genesys.client_id: must be set`), before any work starts.

use super::raw::{RawConfig, RawGenesys, RawLimits, RawRetry, RawWorkers};
use crate::genesys::endpoint::Endpoint;
use crate::genesys::media_policy::MediaPolicy;
use crate::genesys::model::FormatId;
use reqwest::Url;
use secrecy::SecretString;
use std::time::Duration;

/// A configuration value that cannot be used, with the key that holds it.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("config key `{key}`: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Everything the daemon needs, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub genesys: GenesysSettings,
    pub limits: LimitSettings,
    pub retry: RetrySettings,
    pub workers: WorkerSettings,
}

/// How to reach and authenticate against Genesys Cloud.
#[derive(Debug, Clone)]
pub struct GenesysSettings {
    pub api_url: Url,
    pub login_url: Url,
    pub client_id: String,
    /// Wrapped so that `Debug` and logs show `[REDACTED]`.
    pub client_secret: SecretString,
    pub recording_path: RecordingPath,
    pub format_id: FormatId,
    /// Where download URLs may point; checked before every request and redirect.
    pub media: MediaPolicy,
    pub request_timeout: Duration,
    pub max_response_bytes: u64,
}

/// The validated `recording_path` template.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingPath(String);

impl RecordingPath {
    pub const DEFAULT: &'static str = "/api/v2/conversations/{conversationId}/recordings/{recordingId}";

    fn parse(template: &str) -> Result<Self, String> {
        if !template.starts_with('/') {
            return Err("must start with `/`".into());
        }
        for placeholder in ["{conversationId}", "{recordingId}"] {
            if template.matches(placeholder).count() != 1 {
                return Err(format!("must contain {placeholder} exactly once"));
            }
        }
        if template.contains('?') || template.contains('#') {
            return Err("must be a path without query or fragment".into());
        }
        Ok(Self(template.to_owned()))
    }

    /// The path for one recording. Ids are percent-encoded as one path segment each,
    /// so an id can never add segments or climb with `..`.
    pub fn render(&self, conversation_id: &str, recording_id: &str) -> String {
        self.0
            .replace("{conversationId}", &encode_segment(conversation_id))
            .replace("{recordingId}", &encode_segment(recording_id))
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters; `.` and `..` are
/// encoded too so they cannot act as path navigation.
pub fn encode_segment(segment: &str) -> String {
    if segment == "." || segment == ".." {
        return segment.replace('.', "%2E");
    }
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// The request budgets.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// Per-token budget, in requests per `window`.
    pub token_budget: u32,
    /// The platform's counting window (one minute on Genesys Cloud).
    pub window: Duration,
    pub target_utilization: f64,
    /// Per-endpoint budgets in requests per `window`; `None` where the operator set none.
    pub endpoint_budgets: [(Endpoint, Option<u32>); 4],
}

impl LimitSettings {
    pub fn endpoint_budget(&self, endpoint: Endpoint) -> Option<u32> {
        self.endpoint_budgets
            .iter()
            .find(|(e, _)| *e == endpoint)
            .and_then(|(_, b)| *b)
    }
}

/// Timing of retries when the platform does not say when to come back.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySettings {
    pub base: Duration,
    pub cap: Duration,
    pub max_elapsed: Duration,
    pub max_attempts: u32,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(60),
            max_elapsed: Duration::from_secs(600),
            max_attempts: 10,
        }
    }
}

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub count: usize,
}

impl Settings {
    /// Checks every value and builds the settings; the first problem found is returned.
    pub fn validate(raw: RawConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            genesys: validate_genesys(raw.genesys)?,
            limits: validate_limits(raw.limits)?,
            retry: validate_retry(raw.retry)?,
            workers: validate_workers(raw.workers)?,
        })
    }
}

/// Parses a human duration such as `"60s"`, `"2h"` or `"500ms"`.
pub fn parse_duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value.trim())
        .map_err(|e| ConfigError::new(key, format!("`{value}` is not a duration like \"60s\" or \"2h\" ({e})")))
}

fn duration_or(key: &str, value: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
    value.map_or(Ok(default), |v| parse_duration(key, v))
}

fn parse_base_url(key: &str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value).map_err(|e| ConfigError::new(key, format!("`{value}` is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::new(key, "must be an http(s) URL with a host"));
    }
    if url.query().is_some() || url.path() != "/" {
        return Err(ConfigError::new(key, "must be a base URL without path or query"));
    }
    Ok(url)
}

fn validate_genesys(raw: RawGenesys) -> Result<GenesysSettings, ConfigError> {
    let region = raw.region.as_deref().map(str::trim).filter(|r| !r.is_empty());
    if let Some(region) = region
        && !region
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        return Err(ConfigError::new(
            "genesys.region",
            format!("`{region}` is not a domain like mypurecloud.com"),
        ));
    }
    let base = |key: &str, explicit: Option<String>, prefix: &str| -> Result<Url, ConfigError> {
        match (explicit, region) {
            (Some(url), _) => parse_base_url(key, &url),
            (None, Some(region)) => parse_base_url(key, &format!("https://{prefix}.{region}")),
            (None, None) => Err(ConfigError::new(
                "genesys.region",
                "must be set (or set both api_url and login_url)",
            )),
        }
    };
    let api_url = base("genesys.api_url", raw.api_url, "api")?;
    let login_url = base("genesys.login_url", raw.login_url, "login")?;

    let client_id = raw.client_id.unwrap_or_default().trim().to_owned();
    if client_id.is_empty() {
        return Err(ConfigError::new("genesys.client_id", "must be set"));
    }
    let client_secret = match (raw.client_secret, raw.client_secret_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "genesys.client_secret",
                "set either client_secret or client_secret_file, not both",
            ));
        }
        (Some(secret), None) if !secret.is_empty() => secret,
        (None, Some(path)) => read_secret_file(&path)?,
        _ => {
            return Err(ConfigError::new(
                "genesys.client_secret",
                "must be set (or client_secret_file)",
            ));
        }
    };

    let recording_path = RecordingPath::parse(raw.recording_path.as_deref().unwrap_or(RecordingPath::DEFAULT))
        .map_err(|m| ConfigError::new("genesys.recording_path", m))?;
    let format_id = raw
        .format_id
        .as_deref()
        .unwrap_or("WEBM")
        .parse::<FormatId>()
        .map_err(|m| ConfigError::new("genesys.format_id", m))?;

    let allow_http = raw.allow_http.unwrap_or(false);
    let hosts = raw.media_hosts.unwrap_or_else(|| match region {
        Some(region) => vec![format!("*.{region}"), "*.amazonaws.com".to_owned()],
        None => Vec::new(),
    });
    let media = MediaPolicy::new(&hosts, allow_http).map_err(|m| ConfigError::new("genesys.media_hosts", m))?;

    let request_timeout = duration_or(
        "genesys.request_timeout",
        raw.request_timeout.as_deref(),
        Duration::from_secs(30),
    )?;
    if request_timeout.is_zero() {
        return Err(ConfigError::new("genesys.request_timeout", "must be more than zero"));
    }
    let max_response_bytes = raw.max_response_bytes.unwrap_or(16 * 1024 * 1024);
    if max_response_bytes < 1024 {
        return Err(ConfigError::new("genesys.max_response_bytes", "must be at least 1024"));
    }
    Ok(GenesysSettings {
        api_url,
        login_url,
        client_id,
        client_secret: SecretString::from(client_secret),
        recording_path,
        format_id,
        media,
        request_timeout,
        max_response_bytes,
    })
}

fn read_secret_file(path: &str) -> Result<String, ConfigError> {
    let key = "genesys.client_secret_file";
    let text =
        std::fs::read_to_string(path).map_err(|e| ConfigError::new(key, format!("cannot read `{path}`: {e}")))?;
    let secret = text.trim_end_matches(['\r', '\n']).to_owned();
    if secret.is_empty() {
        return Err(ConfigError::new(key, format!("`{path}` is empty")));
    }
    Ok(secret)
}

fn validate_limits(raw: RawLimits) -> Result<LimitSettings, ConfigError> {
    let token_budget = raw.requests_per_minute.unwrap_or(300);
    if token_budget == 0 {
        return Err(ConfigError::new("limits.requests_per_minute", "must be at least 1"));
    }
    let window = duration_or("limits.window", raw.window.as_deref(), Duration::from_secs(60))?;
    if window < Duration::from_millis(100) {
        return Err(ConfigError::new("limits.window", "must be at least 100ms"));
    }
    let target_utilization = raw.target_utilization.unwrap_or(0.98);
    if !(0.5..=1.0).contains(&target_utilization) {
        return Err(ConfigError::new(
            "limits.target_utilization",
            "must be between 0.5 and 1.0",
        ));
    }
    let mut endpoint_budgets = Endpoint::ALL.map(|e| (e, None));
    for (name, budget) in raw.endpoints {
        let key = format!("limits.endpoints.{name}");
        let Some(slot) = endpoint_budgets.iter_mut().find(|(e, _)| e.as_str() == name) else {
            return Err(ConfigError::new(
                key,
                "unknown endpoint (known: token, analytics, recordingmetadata, recording)",
            ));
        };
        if budget == 0 {
            return Err(ConfigError::new(key, "must be at least 1"));
        }
        slot.1 = Some(budget);
    }
    Ok(LimitSettings {
        token_budget,
        window,
        target_utilization,
        endpoint_budgets,
    })
}

fn validate_retry(raw: RawRetry) -> Result<RetrySettings, ConfigError> {
    let d = RetrySettings::default();
    let settings = RetrySettings {
        base: duration_or("retry.base", raw.base.as_deref(), d.base)?,
        cap: duration_or("retry.cap", raw.cap.as_deref(), d.cap)?,
        max_elapsed: duration_or("retry.max_elapsed", raw.max_elapsed.as_deref(), d.max_elapsed)?,
        max_attempts: raw.max_attempts.unwrap_or(d.max_attempts),
    };
    if settings.base.is_zero() {
        return Err(ConfigError::new("retry.base", "must be more than zero"));
    }
    if settings.cap < settings.base {
        return Err(ConfigError::new("retry.cap", "must not be less than retry.base"));
    }
    if settings.max_attempts == 0 {
        return Err(ConfigError::new("retry.max_attempts", "must be at least 1"));
    }
    Ok(settings)
}

fn validate_workers(raw: RawWorkers) -> Result<WorkerSettings, ConfigError> {
    let count = raw.count.unwrap_or(8);
    if !(1..=256).contains(&count) {
        return Err(ConfigError::new("workers.count", "must be between 1 and 256"));
    }
    Ok(WorkerSettings { count })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_path_needs_both_placeholders_once() {
        assert!(RecordingPath::parse(RecordingPath::DEFAULT).is_ok());
        assert!(RecordingPath::parse("/api/v2/screen-recordings/{recordingId}").is_err());
        assert!(RecordingPath::parse("api/{conversationId}/{recordingId}").is_err());
        assert!(RecordingPath::parse("/{conversationId}/{recordingId}?x=1").is_err());
    }

    #[test]
    fn ids_cannot_change_the_path_shape() {
        let path = RecordingPath::parse(RecordingPath::DEFAULT).unwrap();
        assert_eq!(
            path.render("../../x", "a/b?c"),
            "/api/v2/conversations/..%2F..%2Fx/recordings/a%2Fb%3Fc"
        );
        assert_eq!(path.render("..", "."), "/api/v2/conversations/%2E%2E/recordings/%2E");
    }
}
