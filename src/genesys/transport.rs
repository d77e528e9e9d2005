//! Sends one API call with budget, authentication and retries.
//!
//! Each attempt: take a request from the budget, take a token, send, read the body
//! (capped), tell the budget what happened, and let the classifier sort the answer.
//! `backon` runs the loop with [`FullJitter`] timing, adjusted per outcome:
//! - 429: no sleep of its own. The budget now holds the scope's cooldown, and the next
//!   attempt's `acquire` waits it out with every other caller. Workers do not each
//!   sleep on their own clock and come back together.
//! - 502/503/504 and transport errors: the server's Retry-After if it gave one, else the
//!   jittered backoff.
//! - 401: refresh the token and try once more.

use super::error::{ApiError, describe_reqwest};
use super::token::Authenticator;
use crate::endpoint::Endpoint;
use crate::metrics::OrgMetrics;
use crate::ratelimit::{Budget, Feedback, Outcome, RateHeaders};
use crate::retry::backoff::FullJitter;
use crate::retry::classify::{RetryAction, classify_status, classify_transport};
use crate::retry::retry_after::{parse_body_hint, parse_retry_after};
use crate::retry::settings::RetrySettings;
use backon::Retryable;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

/// A finished answer (2xx, or a final error status the caller may inspect).
#[derive(Debug)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub body: Bytes,
}

/// Builds one attempt's request; the argument is the bearer token, if the call uses one.
pub type MakeRequest<'a> = dyn Fn(&reqwest::Client, Option<&str>) -> reqwest::RequestBuilder + Sync + 'a;

/// Why one attempt did not produce an answer for the caller.
#[derive(Debug)]
enum AttemptError {
    /// Refused; `wait` is the caller's own sleep (zero when the budget holds a cooldown).
    RateLimited {
        wait: Duration,
    },
    Transient {
        error: ApiError,
        retry_after: Option<Duration>,
    },
    Unauthorized {
        first: bool,
        error: ApiError,
    },
    Final(ApiError),
}

impl AttemptError {
    fn retryable(&self) -> bool {
        match self {
            AttemptError::RateLimited { .. } | AttemptError::Transient { .. } => true,
            AttemptError::Unauthorized { first, .. } => *first,
            AttemptError::Final(_) => false,
        }
    }

    /// The sleep before the next attempt; `None` ends the retries (backoff exhausted).
    fn delay(&self, next: Option<Duration>) -> Option<Duration> {
        match self {
            AttemptError::RateLimited { wait } => next.map(|_| *wait),
            AttemptError::Unauthorized { .. } => next.map(|_| Duration::ZERO),
            AttemptError::Transient { retry_after, .. } => next.map(|backoff| retry_after.unwrap_or(backoff)),
            AttemptError::Final(_) => None,
        }
    }
}

pub struct Transport {
    http: reqwest::Client,
    budget: Arc<dyn Budget>,
    retry: RetrySettings,
    max_body: u64,
    /// The org's metrics: answers, 429s, retries and budget waits.
    metrics: OrgMetrics,
}

/// Largest 429 body read: only its message matters.
const REFUSAL_BODY_LIMIT: u64 = 64 * 1024;

impl Transport {
    pub fn new(
        http: reqwest::Client,
        budget: Arc<dyn Budget>,
        retry: RetrySettings,
        max_body: u64,
        metrics: OrgMetrics,
    ) -> Self {
        Self {
            http,
            budget,
            retry,
            max_body,
            metrics,
        }
    }

    pub fn metrics(&self) -> &OrgMetrics {
        &self.metrics
    }

    pub fn budget(&self) -> &Arc<dyn Budget> {
        &self.budget
    }

    /// Runs one call to completion: an answer, or the error that ended its retries.
    pub async fn execute(
        &self,
        endpoint: Endpoint,
        make: &MakeRequest<'_>,
        auth: Option<&dyn Authenticator>,
    ) -> Result<ApiResponse, ApiError> {
        let reauthenticated = AtomicBool::new(false);
        let attempts = AtomicU32::new(0);
        let attempt = || async {
            attempts.fetch_add(1, Ordering::Relaxed);
            self.attempt(endpoint, make, auth, &reauthenticated).await
        };
        let result = attempt
            .retry(FullJitter::new(self.retry.clone()))
            .sleep(tokio::time::sleep)
            .when(AttemptError::retryable)
            .adjust(|error, next| error.delay(next))
            .notify(|error, delay| {
                self.metrics.retried(endpoint);
                tracing::debug!(message = "Retrying API call.", %endpoint, error = ?error, delay_ms = delay.as_millis() as u64);
            })
            .await;
        result.map_err(|error| match error {
            AttemptError::RateLimited { .. } => ApiError::RateLimited {
                endpoint,
                attempts: attempts.load(Ordering::Relaxed),
            },
            AttemptError::Transient { error, .. }
            | AttemptError::Unauthorized { error, .. }
            | AttemptError::Final(error) => error,
        })
    }

    async fn attempt(
        &self,
        endpoint: Endpoint,
        make: &MakeRequest<'_>,
        auth: Option<&dyn Authenticator>,
        reauthenticated: &AtomicBool,
    ) -> Result<ApiResponse, AttemptError> {
        let metrics = &self.metrics;
        metrics.waited(self.budget.acquire(endpoint).await);
        let token = match auth {
            Some(auth) => Some(auth.token().await.map_err(|e| {
                if e.is_transient() {
                    AttemptError::Transient {
                        error: e,
                        retry_after: None,
                    }
                } else {
                    AttemptError::Final(e)
                }
            })?),
            None => None,
        };
        let sent = make(&self.http, token.as_ref().map(|t| t.expose())).send().await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => {
                crate::progress::tick();
                metrics.answered(endpoint, "transport_error");
                self.budget.observe(
                    endpoint,
                    &Feedback {
                        outcome: Outcome::NoAnswer,
                        headers: None,
                    },
                );
                let action = classify_transport(&error);
                let error = ApiError::transport(endpoint, error);
                return Err(match action {
                    RetryAction::Retry => AttemptError::Transient {
                        error,
                        retry_after: None,
                    },
                    _ => AttemptError::Final(error),
                });
            }
        };
        // An answer, whatever it says, is the daemon working (liveness).
        crate::progress::tick();
        let status = response.status();
        metrics.answered(endpoint, status.as_str());
        let headers = RateHeaders::parse(response.headers());
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let action = classify_status(status);

        if action == RetryAction::RateLimited {
            let body = read_capped(endpoint, response, REFUSAL_BODY_LIMIT)
                .await
                .unwrap_or_default();
            let hint = retry_after.or_else(|| parse_body_hint(&String::from_utf8_lossy(&body)));
            self.budget.observe(
                endpoint,
                &Feedback {
                    outcome: Outcome::Refused { retry_after: hint },
                    headers,
                },
            );
            return Err(AttemptError::RateLimited {
                wait: self.budget.refusal_wait(hint),
            });
        }
        self.budget.observe(
            endpoint,
            &Feedback {
                outcome: Outcome::Accepted,
                headers,
            },
        );
        let body = match read_capped(endpoint, response, self.max_body).await {
            Ok(body) => body,
            Err(error @ ApiError::TooLarge { .. }) => return Err(AttemptError::Final(error)),
            Err(error) => {
                return Err(AttemptError::Transient {
                    error,
                    retry_after: None,
                });
            }
        };
        let status_error = || ApiError::Status {
            endpoint,
            status: status.as_u16(),
            code: error_code(&body),
        };
        match action {
            RetryAction::Done => Ok(ApiResponse { status, body }),
            RetryAction::Retry => Err(AttemptError::Transient {
                error: status_error(),
                retry_after,
            }),
            RetryAction::Reauthenticate => {
                if let (Some(auth), Some(token)) = (auth, token.as_ref()) {
                    auth.invalidate(token).await;
                }
                let first = auth.is_some() && !reauthenticated.swap(true, Ordering::Relaxed);
                if first {
                    tracing::info!(message = "Token refused; refreshing it once.", %endpoint);
                }
                Err(AttemptError::Unauthorized {
                    first,
                    error: status_error(),
                })
            }
            RetryAction::RateLimited | RetryAction::Fail => Err(AttemptError::Final(status_error())),
        }
    }
}

/// Reads a body up to `limit` bytes; a longer one is an error, never an allocation.
pub async fn read_capped(endpoint: Endpoint, response: reqwest::Response, limit: u64) -> Result<Bytes, ApiError> {
    if response.content_length().is_some_and(|len| len > limit) {
        return Err(ApiError::TooLarge { endpoint, limit });
    }
    let mut body = BytesMut::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::Transport {
            endpoint,
            message: describe_reqwest(e),
        })?;
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(ApiError::TooLarge { endpoint, limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The `code` of a Genesys error body, for error messages.
fn error_code(body: &[u8]) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = json.get("code")?.as_str()?;
    Some(code.chars().take(80).filter(|c| c.is_ascii_graphic()).collect())
}

/// Parses a JSON body; an error names the path of the offending field.
pub fn parse_json<T: serde::de::DeserializeOwned>(endpoint: Endpoint, body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ApiError::Payload {
            endpoint,
            path: if path == "." { "(root)".into() } else { path },
            message: inner.to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genesys::model::RecordingMetadata;

    #[test]
    fn payload_errors_name_the_field() {
        let body = br#"[{"id":"a","media":"screen"},{"media":"screen"}]"#;
        let e = parse_json::<Vec<RecordingMetadata>>(Endpoint::RecordingMetadata, body).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("[1]") && text.contains("missing field `id`"), "{text}");
        let e = parse_json::<Vec<RecordingMetadata>>(Endpoint::RecordingMetadata, br#"[{"id":7,"media":"screen"}]"#)
            .unwrap_err();
        assert!(e.to_string().contains("[0].id"), "{e}");
    }
}
