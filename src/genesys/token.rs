//! The token a call carries, and the trait of whatever hands tokens out.
//!
//! Its own small file so the arrows point one way: the transport needs only this
//! trait, and `auth` (which sends its login through the transport) implements it.

use super::error::ApiError;
use futures_util::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;

/// A token handed to a caller: the secret plus which refresh produced it.
#[derive(Clone)]
pub struct AccessToken {
    secret: Arc<SecretString>,
    generation: u64,
}

impl AccessToken {
    pub fn new(secret: Arc<SecretString>, generation: u64) -> Self {
        Self { secret, generation }
    }

    /// Which refresh produced it (a newer token has a higher one).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The bearer value, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        self.secret.expose_secret()
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccessToken(generation {}, [REDACTED])", self.generation)
    }
}

/// What the transport needs from authentication.
pub trait Authenticator: Send + Sync {
    fn token(&self) -> BoxFuture<'_, Result<AccessToken, ApiError>>;
    /// The platform refused `token`: forget it unless a newer one replaced it already.
    fn invalidate<'a>(&'a self, token: &'a AccessToken) -> BoxFuture<'a, ()>;
}
