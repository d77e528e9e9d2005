//! Genesys Cloud: the endpoints, payloads and client the archiver uses.
//!
//! See `../shared/genesys-api.md` (kept beside the repository) for the platform facts
//! these follow.

pub mod address_guard;
pub mod auth;
pub mod client;
pub mod error;
pub mod media;
pub mod media_policy;
pub mod model;
pub mod pace;
pub mod settings;
pub mod token;
pub mod transport;

pub use crate::endpoint::Endpoint;
pub use client::GenesysClient;
pub use error::ApiError;
