//! Whether an answer is worth another attempt.
//!
//! Deliberately ignorant of timing: it only sorts outcomes. 429 and 502/503/504,
//! timeouts and connection failures are transient; 401 means the token must be
//! refreshed (once); other 4xx are the request's own fault and are never retried, so a
//! bad id cannot burn the shared budget.

use reqwest::StatusCode;

/// What to do after one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAction {
    /// The answer is final (success or not): hand it to the caller.
    Done,
    /// Refused by the rate limiter: wait (the budget holds the shared cooldown) and try again.
    RateLimited,
    /// A transient failure: try again after a backoff (or the server's Retry-After).
    Retry,
    /// The token was refused: refresh it and try again, once.
    Reauthenticate,
    /// Not worth another attempt.
    Fail,
}

/// Sorts an HTTP status.
pub fn classify_status(status: StatusCode) -> RetryAction {
    match status.as_u16() {
        200..=299 => RetryAction::Done,
        401 => RetryAction::Reauthenticate,
        429 => RetryAction::RateLimited,
        502..=504 => RetryAction::Retry,
        _ => RetryAction::Fail,
    }
}

/// Sorts a transport error: timeouts and failures to connect or to read the answer are
/// transient; building a request or following a refused redirect is not.
pub fn classify_transport(error: &reqwest::Error) -> RetryAction {
    if error.is_builder() || error.is_redirect() {
        RetryAction::Fail
    } else if error.is_timeout() || error.is_connect() || error.is_request() || error.is_body() || error.is_decode() {
        RetryAction::Retry
    } else {
        RetryAction::Fail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let c = |s: u16| classify_status(StatusCode::from_u16(s).unwrap());
        assert_eq!(c(200), RetryAction::Done);
        assert_eq!(c(202), RetryAction::Done);
        assert_eq!(c(429), RetryAction::RateLimited);
        for s in [502, 503, 504] {
            assert_eq!(c(s), RetryAction::Retry);
        }
        assert_eq!(c(401), RetryAction::Reauthenticate);
        for s in [400, 403, 404, 409, 500, 501] {
            assert_eq!(c(s), RetryAction::Fail, "{s}");
        }
    }

    #[tokio::test]
    async fn connection_refused_is_transient() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let error = reqwest::get(format!("http://{addr}/")).await.unwrap_err();
        assert_eq!(classify_transport(&error), RetryAction::Retry);
    }
}
