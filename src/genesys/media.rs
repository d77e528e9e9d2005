//! Downloads of recording media from pre-signed URLs.
//!
//! A separate HTTP client from the API's: it never carries the bearer token (the URL's
//! signature is the credential), it follows redirects only to hosts the media policy
//! allows, and it has a read timeout instead of a total one, since a large recording
//! may take minutes but must never stall silently.

use super::error::{ApiError, describe_reqwest};
use super::media_policy::{MediaPolicy, UrlRejected};
use futures_util::StreamExt;
use reqwest::{StatusCode, Url};
use std::time::Duration;

pub use crate::download::ByteStream;
use crate::download::DownloadError;

pub struct MediaDownload {
    /// The announced length, if the server gave one; a stream that ends short of it is truncated.
    pub content_length: Option<u64>,
    pub stream: ByteStream,
}

/// A redirect the policy refused; its text names the host, never the URL.
#[derive(Debug, thiserror::Error)]
#[error("redirect refused: {0}")]
struct RedirectRefused(UrlRejected);

#[derive(Debug, thiserror::Error)]
#[error("too many redirects")]
struct TooManyRedirects;

/// A redirect the policy stopped is a refusal for good (the recording is parked), not a
/// network failure to retry.
fn refused_or_transport(error: reqwest::Error) -> ApiError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&error);
    while let Some(e) = source {
        if let Some(RedirectRefused(reason)) = e.downcast_ref::<RedirectRefused>() {
            return ApiError::UrlRejected(UrlRejected::Redirect(Box::new(reason.clone())));
        }
        if let Some(refused) = e.downcast_ref::<super::address_guard::AddressRefused>() {
            return ApiError::UrlRejected(UrlRejected::Resolved(format!(
                "`{}` resolves to {}",
                refused.host, refused.refused
            )));
        }
        if e.downcast_ref::<TooManyRedirects>().is_some() {
            return ApiError::UrlRejected(UrlRejected::TooManyRedirects);
        }
        source = e.source();
    }
    ApiError::Download(DownloadError::Transport(describe_reqwest(error)))
}

pub struct MediaClient {
    http: reqwest::Client,
    policy: MediaPolicy,
}

/// Most redirects followed for one download.
const MAX_REDIRECTS: usize = 5;

impl MediaClient {
    /// `proxy`: the configured media proxy; without one no proxy is used, whatever the
    /// environment says.
    pub fn new(policy: MediaPolicy, read_timeout: Duration, proxy: Option<&Url>) -> Result<Self, reqwest::Error> {
        Self::with_lookup(policy, read_timeout, super::address_guard::system_lookup(), proxy)
    }

    /// With another name lookup (tests resolve names to chosen addresses).
    pub fn with_lookup(
        policy: MediaPolicy,
        read_timeout: Duration,
        lookup: super::address_guard::Lookup,
        proxy: Option<&Url>,
    ) -> Result<Self, reqwest::Error> {
        let resolver = super::address_guard::GuardedResolver::new(policy.clone(), lookup);
        let hop_policy = policy.clone();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error(TooManyRedirects);
            }
            match hop_policy.check(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(reason) => attempt.error(RedirectRefused(reason)),
            }
        });
        let builder = match proxy {
            Some(url) => reqwest::Client::builder().proxy(reqwest::Proxy::all(url.clone())?),
            None => reqwest::Client::builder().no_proxy(),
        };
        let http = builder
            .user_agent(concat!("genesys-archiver/", env!("CARGO_PKG_VERSION")))
            .redirect(redirects)
            .dns_resolver(std::sync::Arc::new(resolver))
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(read_timeout)
            .build()?;
        Ok(Self { http, policy })
    }

    pub fn policy(&self) -> &MediaPolicy {
        &self.policy
    }

    /// Starts a download. 403 from a pre-signed URL means it expired: the caller fetches
    /// a fresh URL and starts over.
    pub async fn open(&self, url: &Url) -> Result<MediaDownload, ApiError> {
        self.policy.check(url)?;
        let response = self.http.get(url.clone()).send().await.map_err(refused_or_transport)?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::FORBIDDEN => return Err(ApiError::UrlExpired),
            other => return Err(ApiError::MediaStatus(other.as_u16())),
        }
        let content_length = response.content_length();
        let stream = response
            .bytes_stream()
            .map(|chunk| chunk.map_err(|e| DownloadError::Transport(describe_reqwest(e))))
            .boxed();
        Ok(MediaDownload { content_length, stream })
    }
}
