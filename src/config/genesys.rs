//! `[genesys]`: the platform, the credentials, the media hosts, validated.

use super::raw::RawGenesys;
use super::settings::{ConfigError, duration_or, parse_base_url};
use crate::genesys::media_policy::MediaPolicy;
use crate::genesys::model::FormatId;
use crate::genesys::settings::{ConversationPath, GenesysSettings, RecordingPath};
use reqwest::Url;
use secrecy::SecretString;
use std::time::Duration;

pub(super) fn validate_genesys(raw: RawGenesys) -> Result<GenesysSettings, ConfigError> {
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
            (None, None) => Err(ConfigError::unset(
                "genesys.region",
                "must be set (or set both api_url and login_url)",
            )),
        }
    };
    let api_url = base("genesys.api_url", raw.api_url, "api")?;
    let login_url = base("genesys.login_url", raw.login_url, "login")?;
    let allow_http = raw.allow_http.unwrap_or(false);
    // The secret and every token travel to these: HTTPS with verified certificates
    // (there is no setting to turn verification off), plain HTTP only to loopback in tests.
    for (key, url) in [("genesys.api_url", &api_url), ("genesys.login_url", &login_url)] {
        let host = url.host_str().unwrap_or_default();
        if url.scheme() == "http" && !(allow_http && crate::genesys::media_policy::is_loopback(host)) {
            return Err(ConfigError::new(
                key,
                "must be https (plain http only to a loopback host, with allow_http = true, for tests)",
            ));
        }
    }

    let client_id = raw.client_id.unwrap_or_default().trim().to_owned();
    if client_id.is_empty() {
        return Err(ConfigError::unset("genesys.client_id", "must be set"));
    }
    let client_secret = match (raw.client_secret, raw.client_secret_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "genesys.client_secret",
                "set either client_secret or client_secret_file, not both",
            ));
        }
        (Some(secret), None) if !secret.0.is_empty() => secret.0,
        (None, Some(path)) => read_secret_file(&path)?,
        _ => {
            return Err(ConfigError::unset(
                "genesys.client_secret",
                "must be set (or client_secret_file)",
            ));
        }
    };

    let recording_path = RecordingPath::parse(raw.recording_path.as_deref().unwrap_or(RecordingPath::DEFAULT))
        .map_err(|m| ConfigError::new("genesys.recording_path", m))?;
    let recordings_path = ConversationPath::parse(raw.recordings_path.as_deref().unwrap_or(ConversationPath::DEFAULT))
        .map_err(|m| ConfigError::new("genesys.recordings_path", m))?;
    let format_id = raw
        .format_id
        .as_deref()
        .unwrap_or("WEBM")
        .parse::<FormatId>()
        .map_err(|m| ConfigError::new("genesys.format_id", m))?;

    let hosts = raw.media_hosts.unwrap_or_else(|| match region {
        Some(region) => vec![format!("*.{region}"), "*.amazonaws.com".to_owned()],
        None => Vec::new(),
    });
    let media = MediaPolicy::new(&hosts, allow_http).map_err(|m| ConfigError::new("genesys.media_hosts", m))?;
    let media_proxy = match raw.media_proxy.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(value) => {
            let url = Url::parse(value)
                .map_err(|e| ConfigError::new("genesys.media_proxy", format!("`{value}` is not a URL ({e})")))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(ConfigError::new(
                    "genesys.media_proxy",
                    "must be an http(s) URL with a host",
                ));
            }
            Some(url)
        }
    };

    let request_timeout = duration_or(
        "genesys.request_timeout",
        raw.request_timeout.as_deref(),
        Duration::from_secs(30),
    )?;
    if request_timeout.is_zero() {
        return Err(ConfigError::new("genesys.request_timeout", "must be more than zero"));
    }
    let list_max_wait = duration_or(
        "genesys.list_max_wait",
        raw.list_max_wait.as_deref(),
        Duration::from_secs(5),
    )?;
    if list_max_wait + Duration::from_secs(5) > request_timeout {
        return Err(ConfigError::new(
            "genesys.list_max_wait",
            "must be at least 5s shorter than genesys.request_timeout",
        ));
    }
    let max_response_bytes = raw.max_response_bytes.unwrap_or(16 * 1024 * 1024);
    if max_response_bytes < 1024 {
        return Err(ConfigError::new("genesys.max_response_bytes", "must be at least 1024"));
    }
    Ok(GenesysSettings {
        media_proxy,
        api_url,
        login_url,
        client_id,
        client_secret: SecretString::from(client_secret),
        recording_path,
        recordings_path,
        list_max_wait,
        format_id,
        media,
        request_timeout,
        max_response_bytes,
    })
}

pub(super) fn read_secret_file(path: &str) -> Result<String, ConfigError> {
    read_secret_file_for("genesys.client_secret_file", path)
}

/// A secret kept alone in a file (a systemd credential, a mounted Secret), `key` naming
/// the key that points at it.
pub(super) fn read_secret_file_for(key: &str, path: &str) -> Result<String, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| ConfigError::new(key, format!("cannot read `{path}`: {e}")))?;
    let secret = text.trim_end_matches(['\r', '\n']).to_owned();
    if secret.is_empty() {
        return Err(ConfigError::new(key, format!("`{path}` is empty")));
    }
    Ok(secret)
}
