//! OAuth client credentials, with a token cache that refreshes single-flight.
//!
//! Every worker asks the cache for a token before each attempt. The cache holds its
//! lock while it fetches, so however many workers find the token missing or about to
//! expire, one login is made and the others get its result. A 401 invalidates only the
//! token that was refused (by generation), so a burst of 401s from requests that all
//! carried the same stale token still causes one refresh.

use super::error::ApiError;
use super::token::{AccessToken, Authenticator};
use super::transport::{Transport, parse_json};
use crate::endpoint::Endpoint;
use futures_util::future::BoxFuture;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// A token as the login answered it.
pub struct IssuedToken {
    pub secret: SecretString,
    pub lifetime: Duration,
}

/// Where tokens come from (the OAuth endpoint; a counter in tests).
pub trait TokenSource: Send + Sync {
    fn fetch(&self) -> BoxFuture<'_, Result<IssuedToken, ApiError>>;
}

struct Cached {
    token: AccessToken,
    refresh_at: Instant,
}

pub struct TokenCache<S> {
    source: S,
    slot: tokio::sync::Mutex<Option<Cached>>,
    generation: AtomicU64,
}

impl<S: TokenSource> TokenCache<S> {
    pub fn new(source: S) -> Self {
        Self {
            source,
            slot: tokio::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
        }
    }

    /// How many tokens were fetched so far.
    pub fn refreshes(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// Refresh ahead of expiry by a tenth of the lifetime, at most five minutes: a
    /// 24-hour token is renewed 5 minutes early, a 5-minute one 30 seconds early.
    fn refresh_at(lifetime: Duration) -> Instant {
        let margin = (lifetime / 10).min(Duration::from_secs(300));
        Instant::now() + lifetime.saturating_sub(margin)
    }

    pub async fn get(&self) -> Result<AccessToken, ApiError> {
        let mut slot = self.slot.lock().await;
        if let Some(cached) = slot.as_ref().filter(|c| Instant::now() < c.refresh_at) {
            return Ok(cached.token.clone());
        }
        let issued = self.source.fetch().await?;
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let token = AccessToken::new(Arc::new(issued.secret), generation);
        *slot = Some(Cached {
            token: token.clone(),
            refresh_at: Self::refresh_at(issued.lifetime),
        });
        tracing::info!(
            message = "Access token obtained.",
            generation,
            expires_in_s = issued.lifetime.as_secs()
        );
        Ok(token)
    }

    pub async fn forget(&self, token: &AccessToken) {
        let mut slot = self.slot.lock().await;
        if slot
            .as_ref()
            .is_some_and(|c| c.token.generation() == token.generation())
        {
            *slot = None;
        }
    }
}

impl<S: TokenSource> Authenticator for TokenCache<S> {
    fn token(&self) -> BoxFuture<'_, Result<AccessToken, ApiError>> {
        Box::pin(self.get())
    }

    fn invalidate<'a>(&'a self, token: &'a AccessToken) -> BoxFuture<'a, ()> {
        Box::pin(self.forget(token))
    }
}

/// The real login: `POST {login}/oauth/token` with HTTP Basic client credentials.
pub struct OAuthSource {
    pub transport: Arc<Transport>,
    pub token_url: Url,
    pub client_id: String,
    pub client_secret: SecretString,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl TokenSource for OAuthSource {
    fn fetch(&self) -> BoxFuture<'_, Result<IssuedToken, ApiError>> {
        Box::pin(async move {
            let make = |http: &reqwest::Client, _: Option<&str>| {
                http.post(self.token_url.clone())
                    .basic_auth(&self.client_id, Some(self.client_secret.expose_secret()))
                    .form(&[("grant_type", "client_credentials")])
            };
            let answer = self
                .transport
                .execute(Endpoint::Token, &make, None)
                .await
                .map_err(|e| match e {
                    ApiError::Status {
                        status: 400 | 401 | 403,
                        code,
                        ..
                    } => ApiError::Auth(format!(
                        "the login refused the client credentials{}",
                        code.map(|c| format!(" ({c})")).unwrap_or_default()
                    )),
                    other => other,
                })?;
            let parsed: TokenAnswer = parse_json(Endpoint::Token, &answer.body)?;
            self.transport.metrics().token_refreshed();
            if parsed.access_token.is_empty() {
                return Err(ApiError::Payload {
                    endpoint: Endpoint::Token,
                    path: "access_token".into(),
                    message: "empty".into(),
                });
            }
            Ok(IssuedToken {
                secret: SecretString::from(parsed.access_token),
                // Genesys allows 5 minutes to 48 hours; default 24 hours.
                lifetime: Duration::from_secs(parsed.expires_in.unwrap_or(86_400).clamp(60, 172_800)),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    struct Counting {
        calls: AtomicU32,
        lifetime: Duration,
    }

    impl TokenSource for Arc<Counting> {
        fn fetch(&self) -> BoxFuture<'_, Result<IssuedToken, ApiError>> {
            Box::pin(async move {
                let n = self.calls.fetch_add(1, Ordering::SeqCst);
                // A slow login: every concurrent caller arrives while it is in flight.
                tokio::time::sleep(Duration::from_millis(500)).await;
                Ok(IssuedToken {
                    secret: SecretString::from(format!("t{n}")),
                    lifetime: self.lifetime,
                })
            })
        }
    }

    fn cache(lifetime: Duration) -> (Arc<TokenCache<Arc<Counting>>>, Arc<Counting>) {
        let source = Arc::new(Counting {
            calls: AtomicU32::new(0),
            lifetime,
        });
        (Arc::new(TokenCache::new(source.clone())), source)
    }

    #[tokio::test(start_paused = true)]
    async fn refresh_is_single_flight() {
        let (cache, source) = cache(Duration::from_secs(3600));
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                tokio::spawn({
                    let cache = cache.clone();
                    async move { cache.get().await.unwrap().expose().to_owned() }
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), "t0");
        }
        assert_eq!(source.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn refreshed_before_expiry() {
        let (cache, source) = cache(Duration::from_secs(300));
        assert_eq!(cache.get().await.unwrap().expose(), "t0");
        tokio::time::advance(Duration::from_secs(265)).await;
        assert_eq!(cache.get().await.unwrap().expose(), "t0");
        tokio::time::advance(Duration::from_secs(10)).await; // 30 s before expiry
        assert_eq!(cache.get().await.unwrap().expose(), "t1");
        assert_eq!(source.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn many_401s_for_one_token_refresh_once() {
        let (cache, source) = cache(Duration::from_secs(3600));
        let stale = cache.get().await.unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                tokio::spawn({
                    let (cache, stale) = (cache.clone(), stale.clone());
                    async move {
                        cache.forget(&stale).await;
                        cache.get().await.unwrap().expose().to_owned()
                    }
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), "t1");
        }
        assert_eq!(source.calls.load(Ordering::SeqCst), 2);
        assert!(!format!("{stale:?}").contains("t0"));
    }
}
