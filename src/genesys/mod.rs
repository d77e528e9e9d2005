//! Genesys Cloud: the endpoints, payloads and client the archiver uses.
//!
//! See `../shared/genesys-api.md` (kept beside the repository) for the platform facts
//! these follow.

pub mod address_guard;
pub mod auth;
pub mod client;
pub mod endpoint;
pub mod error;
pub mod media;
pub mod media_policy;
pub mod model;
pub mod pace;
pub mod transport;

pub use client::GenesysClient;
pub use endpoint::Endpoint;
pub use error::ApiError;
