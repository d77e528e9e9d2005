//! Errors of the Genesys client, typed so the pipeline can branch on them.
//!
//! No variant holds a URL with its query, a token or a secret: these errors end up in
//! log lines and in the ledger's `last_error`.

use super::media_policy::UrlRejected;
use crate::endpoint::Endpoint;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The platform answered with a status that is not retried (or retries ran out).
    #[error("{endpoint}: HTTP {status}{}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Status {
        endpoint: Endpoint,
        status: u16,
        code: Option<String>,
    },

    /// Still refused with 429 after every attempt the retry policy allows.
    #[error("{endpoint}: still rate limited after {attempts} attempts")]
    RateLimited { endpoint: Endpoint, attempts: u32 },

    /// Connection, timeout or body read failure (text without the URL).
    #[error("{endpoint}: transport error: {message}")]
    Transport { endpoint: Endpoint, message: String },

    /// A payload that does not have the shape the archiver needs.
    #[error("{endpoint}: invalid payload at `{path}`: {message}")]
    Payload {
        endpoint: Endpoint,
        path: String,
        message: String,
    },

    /// A response body larger than `genesys.max_response_bytes`.
    #[error("{endpoint}: response body larger than {limit} bytes")]
    TooLarge { endpoint: Endpoint, limit: u64 },

    /// The OAuth login was refused.
    #[error("authentication failed: {0}")]
    Auth(String),

    /// A download URL that the media policy refuses.
    #[error("{0}")]
    UrlRejected(#[from] UrlRejected),

    /// The pre-signed download URL answered 403: it expired (or was revoked). Fetch a fresh one.
    #[error("download URL expired (HTTP 403)")]
    UrlExpired,

    /// The media host answered with another unexpected status.
    #[error("download: HTTP {0}")]
    MediaStatus(u16),

    /// The download's body broke, ran short or long, or trickled.
    #[error("download: {0}")]
    Download(#[from] crate::download::DownloadError),
}

impl ApiError {
    /// Wraps a reqwest error without the URL it may print.
    pub fn transport(endpoint: Endpoint, error: reqwest::Error) -> Self {
        ApiError::Transport {
            endpoint,
            message: describe_reqwest(error),
        }
    }

    /// Whether trying the same thing again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Status { status, .. } => matches!(status, 408 | 429 | 500 | 502 | 503 | 504),
            ApiError::RateLimited { .. }
            | ApiError::Transport { .. }
            | ApiError::UrlExpired
            | ApiError::Download(_) => true,
            ApiError::MediaStatus(status) => *status >= 500,
            ApiError::Auth(_) | ApiError::Payload { .. } | ApiError::TooLarge { .. } | ApiError::UrlRejected(_) => {
                false
            }
        }
    }
}

/// reqwest's error text with the URL removed, plus its source chain (which says
/// "connection refused" or "operation timed out").
pub fn describe_reqwest(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connect failed"
    } else if error.is_body() || error.is_decode() {
        "body read failed"
    } else if error.is_redirect() {
        "redirect refused"
    } else {
        "request failed"
    };
    let error = error.without_url();
    let mut text = kind.to_owned();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&error);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
